"""Fixtures of the weights-by-name tests: a loopback Hub (``FakeHub``) serving a tiny official CAT-Seg checkpoint,
with ``HF_ENDPOINT``, the Hugging Face cache and infoclip's conversion cache pointed into the test's folder."""

from __future__ import annotations

import io

import pytest
import torch

from tests.hub.hub_server import FakeHub
from tests.segmentation.conftest import photo, run_cli, tiny_weights  # noqa: F401  (fixtures)


def _tiny_official_state() -> dict[str, torch.Tensor]:
    from infoclip.adapters.catseg import build_model, preset_model_config
    from tests.catseg.test_convert import official_names

    config = preset_model_config("catseg-tiny")
    torch.manual_seed(0)
    model = build_model(config).eval()
    return official_names(model.state_dict(), windows=4, window=4, layers=config["aggregator"]["num_layers"])


@pytest.fixture(scope="session")
def tiny_official_bytes() -> bytes:
    """A tiny CAT-Seg checkpoint in the official layout (detectron2's ``{"model": state_dict}``), as file bytes."""
    buffer = io.BytesIO()
    torch.save({"model": _tiny_official_state(), "iteration": 79999}, buffer)
    return buffer.getvalue()


@pytest.fixture
def allow_tiny_official(monkeypatch):
    """Let the CAT-Seg importer recognise the tiny architecture (the released ones are ViT-B/16 and ViT-L/14)."""
    from infoclip.adapters.catseg import convert

    monkeypatch.setattr(convert, "OFFICIAL_PRESETS", {**convert.OFFICIAL_PRESETS, "catseg-tiny": "tiny CLIP"})


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty Hugging Face and infoclip caches in the test folder, online mode (the suite runs offline)."""
    import huggingface_hub.constants

    hf_cache = tmp_path / "hf-cache"
    infoclip_cache = tmp_path / "infoclip-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("INFOCLIP_CACHE", str(infoclip_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "5")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once at import; the test session imported it offline
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return hf_cache, infoclip_cache


@pytest.fixture
def hub(caches, monkeypatch, tiny_official_bytes, allow_tiny_official):
    """A running ``FakeHub`` that holds the tiny official checkpoint where the name ``catseg-b16`` points."""
    with FakeHub(lifetime=120) as server:
        server.add_file("hamacojr/CAT-Seg-weights", "model_base.pth", tiny_official_bytes, repo_type="space")
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server
