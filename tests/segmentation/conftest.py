"""Fixtures of the segmentation tests: a tiny random CAT-Seg saved as an infoclip weights file, test images."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from tests.segmentation.images_on_disk import gradient_rgb


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A ``catseg-tiny`` model (random init, seeded) exported the way ``infoclip export`` writes weights."""
    from infoclip.adapters import get_adapter, reset_plugin_manager
    from infoclip.config import load_config
    from infoclip.weights import WeightsMeta, save_weights

    reset_plugin_manager()
    adapter = get_adapter("catseg")
    config = load_config(adapter.config_path("catseg-tiny"))
    model = adapter.build_model(config["model"])
    path = tmp_path_factory.mktemp("weights") / "catseg-tiny.safetensors"
    meta = WeightsMeta(adapter="catseg", config=model.model_config(), clip_tag=model.clip_tag, source="test fixture")
    save_weights(path, model.inference_state_dict(), meta)
    return path


@pytest.fixture
def photo(tmp_path):
    """A 48 x 64 lossless RGB test image on disk."""
    path = tmp_path / "photo.png"
    Image.fromarray(gradient_rgb(48, 64)).save(path)
    return path


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``infoclip ARGS...`` through the real entry point (errors mapped); returns (exit code, stdout, stderr)."""
    from infoclip_cli.main import main

    monkeypatch.delenv("INFOCLIP_DEBUG", raising=False)

    def run(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["infoclip", *map(str, args)])
        code: int | str | None = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return int(code or 0), captured.out, captured.err

    return run


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)
