"""CAT-Seg fidelity guard: infoclip against golden outputs of the official code (cvlab-kaist/CAT-Seg @ 6d3a188).

``golden/`` holds what the official ViT-B/16 CAT-Seg computed from seeded random weights (``golden_weights``)
on a seeded image and four classes: model-level probabilities and the sliding-window protocol end to end.
Here the same weights are made again, saved as an official checkpoint file, imported through the library's
converter (``infoclip.conversion.import_checkpoint``, what ``infoclip convert`` uses), and infoclip must reproduce
the official numbers within 1e-4 absolute (docs/catseg-fidelity.md: the faithful code is ~1e-6 off, known
deviations such as an antialiased position-table resize are 5e-3). ``golden/README.md`` says how the files
were made.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from infoclip.adapters.catseg import convert
from tests.catseg.golden_weights import GOLDEN_DIR, official_state_dict, read_layout, seeded_image

TOLERANCE = 1e-4
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def record():
    return json.loads((GOLDEN_DIR / "stats.json").read_text())


@pytest.fixture(scope="module")
def golden():
    return load_file(str(GOLDEN_DIR / "catseg_vitb16.safetensors"))


@pytest.fixture(scope="module")
def official_weights(record):
    layout = read_layout(GOLDEN_DIR / "official_layout_vitb16.json")
    return official_state_dict(layout, record["weights_seed"])


@pytest.fixture(scope="module")
def model(official_weights, tmp_path_factory):
    """The seeded official checkpoint, written as detectron2 saves it and imported by the library's converter."""
    from infoclip.adapters import get_adapter
    from infoclip.conversion import import_checkpoint
    from infoclip.weights import load_state_strict

    path = tmp_path_factory.mktemp("official") / "model_final.pth"
    torch.save({"model": official_weights, "iteration": 0}, path)
    try:
        state, meta, _ = import_checkpoint(path, "catseg")
    finally:
        path.unlink()  # 600 MB
    assert meta.clip_tag.startswith("ViT-B-16") and meta.config["clip"]["resolution"] == 384  # the ViT-B/16 preset
    net = get_adapter(meta.adapter).build_model(meta.config)
    load_state_strict(net, state, path)
    return net.eval()


def test_layout_is_the_official_one(official_weights):
    # the layout the harness read off the official module equals the converter's idea of it
    assert {k: tuple(v.shape) for k, v in official_weights.items()} == convert.official_layout("catseg-vit-b16")


def test_model_level_probabilities_match_official(model, record, golden):
    expected = golden["model_probs"]  # sigmoid(official head logits), (1, T, 96, 96)
    image = seeded_image(**record["model_image"]).float().unsqueeze(0)
    with torch.no_grad():
        probs = model(image, record["classes"]).sigmoid()
    assert probs.shape == expected.shape
    diff = (probs - expected).abs().max().item()
    assert diff <= TOLERANCE, f"model-level probabilities differ from the official code by {diff:.2e}"
    assert probs.double().mean().item() == pytest.approx(record["model_probs"]["mean"], abs=TOLERANCE)


def test_sliding_protocol_matches_official(model, record, golden):
    expected = golden["sliding_probs"]  # official CATSeg.inference_sliding_window at the original size, (T, H, W)
    image = seeded_image(**record["e2e_image"])
    probs = model.predict(image, record["classes"], protocol="sliding")
    assert probs.shape == expected.shape
    diff = (probs - expected).abs().max().item()
    assert diff <= TOLERANCE, f"sliding-window probabilities differ from the official code by {diff:.2e}"
    assert probs.double().std().item() == pytest.approx(record["sliding_probs"]["std"], abs=TOLERANCE)
