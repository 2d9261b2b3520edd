"""Machine-readable outputs: per-class statistics, COCO RLE (decoded by pycocotools), indexed PNG, float16
probabilities, ``to_hf()``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


def _result(labels, probs=None, classes=("cat", "sofa", "floor")):
    from infoclip.segmentation.segmenter import SegmentationResult

    h, w = labels.shape
    if probs is None:
        probs = np.stack([(labels == i).astype(np.float32) * 0.5 + 0.25 for i in range(len(classes))])
    return SegmentationResult(
        image=np.zeros((h, w, 3), np.uint8), probs=probs.astype(np.float32), labels=labels.astype(np.int64),
        classes=list(classes), protocol="whole", source="test", name="pic",
    )


def _labels():
    labels = np.zeros((6, 8), np.int64)
    labels[1:3, 2:6] = 1  # sofa: rows 1-2, columns 2-5
    labels[5, 7] = 2
    return labels


def test_class_statistics_mean_max_and_box():
    probs = np.random.default_rng(0).random((3, 6, 8)).astype(np.float32)
    stats = {s["name"]: s for s in _result(_labels(), probs).class_statistics()}
    sofa = stats["sofa"]
    assert sofa["bbox"] == [2, 1, 5, 2] and sofa["pixels"] == 8 and sofa["share"] == pytest.approx(8 / 48)
    assert sofa["mean_score"] == pytest.approx(float(probs[1, 1:3, 2:6].mean()))
    assert sofa["max_score"] == pytest.approx(float(probs[1, 1:3, 2:6].max()))
    assert stats["floor"]["bbox"] == [7, 5, 7, 5]
    assert _result(_labels(), probs).summary()["class_statistics"][1]["name"] == "sofa"


def test_coco_rle_decodes_back_to_the_masks(tmp_path):
    from pycocotools import mask as mask_util

    labels = _labels()
    files = _result(labels).save(tmp_path, rle=True)
    records = json.loads(files["rle"].read_text())
    assert {r["category_id"] for r in records} == {0, 1, 2}
    for record in records:
        assert set(record) == {"file_name", "category_id", "segmentation"}
        assert record["segmentation"]["size"] == [6, 8] and isinstance(record["segmentation"]["counts"], str)
        decoded = mask_util.decode(record["segmentation"])
        np.testing.assert_array_equal(decoded.astype(bool), labels == record["category_id"])


def test_background_pixels_are_left_out_of_the_rle():
    labels = _labels()
    labels[0, 0] = -1
    records = _result(labels).to_coco_rle()
    assert all(r["category_id"] >= 0 for r in records)
    from pycocotools import mask as mask_util

    union = sum(mask_util.decode(r["segmentation"]).astype(int) for r in records)
    assert union[0, 0] == 0 and union.sum() == labels.size - 1


def test_indexed_png_keeps_the_values_and_carries_the_palette(tmp_path):
    from infoclip.segmentation.overlay import palette

    labels = _labels()
    labels[0, 0] = -1
    files = _result(labels).save(tmp_path, indexed=True)
    with Image.open(files["labels"]) as image:
        assert image.mode == "P"
        values = np.asarray(image)
        colours = np.asarray(image.getpalette()[: 3 * 256]).reshape(256, 3)
    expected = np.where(labels < 0, 255, labels)
    np.testing.assert_array_equal(values, expected)
    np.testing.assert_array_equal(colours[:3], palette(3))
    assert tuple(colours[255]) == (128, 128, 128)


def test_float16_probs(tmp_path):
    result = _result(_labels())
    files = result.save(tmp_path, save_probs=True, probs_dtype="float16")
    stored = np.load(files["probs"])
    assert stored.dtype == np.float16 and stored.shape == (3, 6, 8)
    np.testing.assert_allclose(stored, result.probs, atol=1e-3)
    assert np.load(result.save(tmp_path / "full", save_probs=True)["probs"]).dtype == np.float32


def test_to_hf_is_the_transformers_pipeline_form():
    hf = _result(_labels()).to_hf()
    assert [entry["label"] for entry in hf] == ["cat", "sofa", "floor"]
    sofa = hf[1]
    assert set(sofa) == {"label", "score", "mask"} and sofa["score"] == pytest.approx(0.75)
    assert sofa["mask"].mode == "L" and sofa["mask"].size == (8, 6)
    np.testing.assert_array_equal(np.asarray(sofa["mask"]) == 255, _labels() == 1)
