from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def make_distribution(root: Path, dist: str, module: str, entry_name: str, source: str, version: str = "0.1") -> Path:
    """Write an importable module plus a ``.dist-info`` declaring it in the ``infoclip`` entry-point group.

    This is what ``pip install`` leaves behind for a third-party adapter, so the manager finds it through
    ``importlib.metadata`` exactly as it would find a real one.
    """
    (root / f"{module}.py").write_text(source, encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[infoclip]\n{entry_name} = {module}\n", encoding="utf-8")
    return root


@pytest.fixture
def installed_toy(tmp_path, monkeypatch):
    """The toy adapter installed as a third-party distribution ``infoclip-toy`` with entry point ``toy``."""
    source = (HERE / "toy_adapter.py").read_text(encoding="utf-8")
    make_distribution(tmp_path, "infoclip-toy", "infoclip_toy_adapter", "toy", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("INFOCLIP_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    yield tmp_path
    sys.modules.pop("infoclip_toy_adapter", None)


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    """Install a plugin distribution whose hook raises, and one whose module fails to import."""

    def install(kind: str) -> None:
        if kind == "raises":
            src = textwrap.dedent(
                """
                from infoclip import hookimpl

                @hookimpl
                def infoclip_register_adapters():
                    raise RuntimeError("cannot find my framework")
                """
            )
        else:
            src = "raise ImportError('missing dependency frobnicate')\n"
        make_distribution(tmp_path, f"infoclip-{kind}", f"infoclip_{kind}_plugin", kind, src)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delenv("INFOCLIP_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    yield install
    for kind in ("raises", "import"):
        sys.modules.pop(f"infoclip_{kind}_plugin", None)
