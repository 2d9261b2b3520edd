"""``infoclip segment`` with SAN weights: the published (whole) protocol by default, the official score map with
--save-probs, and SAN's vocabulary expansion ("other")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.segmentation.conftest import photo, run_cli  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def san_weights(tmp_path_factory):
    from infoclip.adapters.san import build_model, preset_model_config
    from infoclip.weights import WeightsMeta, save_weights

    torch.manual_seed(0)
    model = build_model(preset_model_config("san-tiny"))
    path = tmp_path_factory.mktemp("w") / "san-tiny.safetensors"
    save_weights(path, model.state_dict(), WeightsMeta(adapter="san", config=model.model_config(), clip_tag=model.clip_tag))
    return path, model.eval()


def test_segment_writes_the_official_score_map(run_cli, san_weights, photo, tmp_path):  # noqa: F811
    path, model = san_weights
    out = tmp_path / "out"
    code, _, stderr = run_cli("segment", photo, "--classes", "cat,dog,sky", "--weights", path, "-o", out, "--save-probs")
    assert code == 0, stderr
    scores = np.load(out / "photo_probs.npy")
    image = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB")).copy()).permute(2, 0, 1).float()
    expected = model.predict(image, ["cat", "dog", "sky"]).numpy()
    np.testing.assert_array_equal(scores, expected)
    summary = json.loads((out / "photo.json").read_text())
    assert summary["protocol"] == "whole" and "softmax(class logits)" in summary["scores"]
    labels = np.asarray(Image.open(out / "photo.png"))
    np.testing.assert_array_equal(labels, scores.argmax(0))


def test_sliding_is_refused_for_san(run_cli, san_weights, photo, tmp_path):  # noqa: F811
    code, _, stderr = run_cli("segment", photo, "--classes", "cat", "--weights", san_weights[0], "-o", tmp_path / "o", "--protocol", "sliding")
    assert code == 1 and "unknown protocol 'sliding'" in stderr and "whole" in stderr and "Traceback" not in stderr


def test_vocabulary_expansion_reports_other(run_cli, san_weights, photo, tmp_path):  # noqa: F811
    from infoclip.segmentation.classes import load_vocabulary

    path, model = san_weights
    out = tmp_path / "out"
    code, _, stderr = run_cli("segment", photo, "--classes", "cat,Sky,lamp", "--weights", path, "-o", out,
                              "--save-probs", "--expand-vocab", "coco-stuff")  # fmt: skip
    assert code == 0, stderr
    summary = json.loads((out / "photo.json").read_text())
    assert summary["classes"] == ["cat", "Sky", "lamp", "other"]
    added = [n for n in load_vocabulary("coco") if n.lower() not in ("cat", "sky", "lamp")]
    assert summary["vocabulary_expansion"] == {"vocabulary": "coco-stuff", "added_classes": len(added), "other_id": 3,
                                               "other_score": "maximum over the added classes"}  # fmt: skip
    image = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB")).copy()).permute(2, 0, 1).float()
    full = model.predict(image, ["cat", "Sky", "lamp", *added]).numpy()
    official = np.minimum(full.argmax(0), 3)  # predict.py: ids beyond the user's list -> len(list)
    labels = np.asarray(Image.open(out / "photo.png"))
    np.testing.assert_array_equal(labels, official)
    scores = np.load(out / "photo_probs.npy")
    assert scores.shape == (4, *labels.shape)
    np.testing.assert_allclose(scores[3], full[3:].max(0))


def test_expansion_refuses_an_other_class_and_unknown_vocabulary(run_cli, san_weights, photo, tmp_path):  # noqa: F811
    code, _, stderr = run_cli("segment", photo, "--classes", "cat,Other", "--weights", san_weights[0], "-o", tmp_path / "o", "--expand-vocab", "coco-stuff")
    assert code == 1 and "holds 'other'" in stderr
    code, _, stderr = run_cli("segment", photo, "--classes", "cat", "--weights", san_weights[0], "-o", tmp_path / "o", "--expand-vocab", "nope")
    assert code == 1 and "unknown vocabulary expansion 'nope'" in stderr
