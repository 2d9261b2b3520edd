"""Test-wide settings: CPU only, one thread, no network, no third-party plugins."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ["INFOCLIP_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.pop("INFOCLIP_LOAD_ADAPTERS", None)

import sys  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Each test sees a plugin manager built from the current environment."""
    from infoclip.adapters import reset_plugin_manager

    reset_plugin_manager()
    yield
    reset_plugin_manager()


HERE = Path(__file__).parent / "plugins"


def make_distribution(
    root: Path, dist: str, module: str, entry_name: str, source: str, version: str = "0.1", data: dict[str, str] | None = None
) -> Path:
    """Write an importable module plus a ``.dist-info`` declaring it in the ``infoclip`` entry-point group.

    This is what ``pip install`` leaves behind for a third-party adapter, so the manager finds it through
    ``importlib.metadata`` exactly as it would find a real one.
    """
    (root / f"{module}.py").write_text(source, encoding="utf-8")
    for name, text in (data or {}).items():  # files shipped beside the module (presets)
        (root / name).write_text(text, encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[infoclip]\n{entry_name} = {module}\n", encoding="utf-8")
    return root


@pytest.fixture
def installed_toy(tmp_path, monkeypatch):
    """The toy adapter installed as a third-party distribution ``infoclip-toy`` with entry point ``toy``, its
    preset ``toy-tiny.yaml`` beside the module."""
    source = (HERE / "toy_adapter.py").read_text(encoding="utf-8")
    preset = {"toy-tiny.yaml": (HERE / "toy-tiny.yaml").read_text(encoding="utf-8")}
    make_distribution(tmp_path, "infoclip-toy", "infoclip_toy_adapter", "toy", source, data=preset)
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
