"""Palette, overlay legend, and the files a SegmentationResult writes (complete or absent)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from infoclip.errors import InputError
from infoclip.segmentation.overlay import blend, draw_overlay, palette, pixel_shares
from infoclip.segmentation.segmenter import BASELINE_PREFIX, SegmentationResult, check_output_dir
from tests.segmentation.images_on_disk import gradient_rgb


def _result(num_classes=3, height=40, width=60, source="model.safetensors", name="photo") -> SegmentationResult:
    rng = np.random.default_rng(0)
    probs = rng.random((num_classes, height, width), dtype=np.float32)
    probs[0, :, : width // 2] += 2.0  # class 0 owns the left half
    labels = probs.argmax(0).astype(np.int64)
    classes = [f"class {i}" for i in range(num_classes)]
    return SegmentationResult(gradient_rgb(height, width), probs, labels, classes, "sliding", source, name=name)


def test_palette_is_distinct_and_stable():
    colours = palette(300)
    assert colours.shape == (300, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == 300
    np.testing.assert_array_equal(palette(20), colours[:20])


def test_blend_and_shares():
    image = np.zeros((4, 4, 3), np.uint8)
    labels = np.array([[0, 0, 1, 1]] * 4)
    out = blend(image, labels, np.array([[200, 0, 0], [0, 100, 0]], np.uint8), alpha=0.5)
    assert tuple(out[0, 0]) == (100, 0, 0) and tuple(out[0, 3]) == (0, 50, 0)
    assert tuple(out[0, 2]) == (0, 18, 0)  # a boundary pixel is darkened
    np.testing.assert_allclose(pixel_shares(labels, 3), [0.5, 0.5, 0.0])
    with pytest.raises(InputError, match="does not match"):
        blend(image, labels[:2], palette(2))


def test_overlay_has_a_legend_with_swatches_names_and_shares():
    image = gradient_rgb(120, 160)
    labels = np.zeros((120, 160), np.int64)
    labels[:, 100:] = 2  # class 1 absent: it must not appear in the legend
    overlay = draw_overlay(image, labels, ["cat", "dog", "building, edifice"], caption=BASELINE_PREFIX + "X:none")
    canvas = np.asarray(overlay.image)
    assert canvas.shape[1] > 160 and canvas.shape[0] >= 120  # the legend panel is beside the image
    assert [(e.name, round(e.share, 3)) for e in overlay.entries] == [("cat", 0.625), ("building", 0.375)]
    for entry in overlay.entries:
        x0, y0, x1, y1 = entry.swatch_box
        assert x0 >= 160
        assert tuple(canvas[(y0 + y1) // 2, (x0 + x1) // 2]) == entry.colour == tuple(palette(3)[entry.class_index])
        text_strip = canvas[y0:y1 + 1, x1 + 2 :]
        assert (text_strip.sum(-1) < 300).any(), "no text drawn next to the swatch"
    caption_rows = canvas[overlay.entries[-1].swatch_box[3] + 2 :, 160:]
    assert (caption_rows.sum(-1) < 600).any(), "no caption drawn"


def test_legend_is_capped_with_a_more_line():
    labels = np.arange(100 * 50).reshape(50, 100) % 40
    overlay = draw_overlay(gradient_rgb(50, 100), labels, [f"c{i}" for i in range(40)])
    assert len(overlay.entries) == 11 and overlay.more == 29  # 12 rows: 11 classes + "+ 29 more"


def test_save_writes_label_map_overlay_summary_and_probs(tmp_path):
    result = _result()
    files = result.save(tmp_path / "out", save_probs=True)
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "photo.png", "photo_overlay.png", "photo.json", "photo_probs.npy"
    }
    label_map = np.asarray(Image.open(files["labels"]))
    assert label_map.dtype == np.uint8
    np.testing.assert_array_equal(label_map, result.labels)
    probs = np.load(files["probs"])
    assert probs.dtype == np.float32 and probs.shape == (3, 40, 60)
    np.testing.assert_array_equal(probs, result.probs)
    summary = json.loads(files["summary"].read_text())
    assert summary["classes"] == result.classes
    assert summary["image_size"] == {"height": 40, "width": 60}
    assert summary["weights"] == "model.safetensors" and summary["training_free_baseline"] is False
    assert summary["protocol"] == "sliding" and summary["infoclip_version"]
    assert abs(sum(summary["pixel_shares"].values()) - 1) < 1e-9 and summary["pixel_shares"]["class 0"] >= 0.5
    assert summary["outputs"] == {
        "labels": "photo.png", "overlay": "photo_overlay.png", "probs": "photo_probs.npy", "summary": "photo.json"
    }
    assert Image.open(files["overlay"]).size[0] > 60


def test_label_map_is_uint16_above_255_classes(tmp_path):
    for num_classes, dtype in ((255, np.uint8), (256, np.uint16), (300, np.uint16)):
        result = _result(num_classes=num_classes, height=20, width=30)
        result.labels[0, 0] = num_classes - 1
        path = result.save(tmp_path, stem=f"t{num_classes}", overlay=False)["labels"]
        stored = np.asarray(Image.open(path))
        assert stored.dtype == dtype, num_classes
        np.testing.assert_array_equal(stored, result.labels)


def test_baseline_results_say_so(tmp_path):
    result = _result(source=BASELINE_PREFIX + "ViT-B-16:openai")
    summary = json.loads(result.save(tmp_path)["summary"].read_text())
    assert summary["weights"] == "training-free baseline: ViT-B-16:openai"
    assert summary["training_free_baseline"] is True


def test_unwritable_output_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"cannot write to output folder .*file[/\\]out"):
        check_output_dir(blocker / "out")
    with pytest.raises(InputError, match="cannot write to output folder"):
        _result().save(blocker / "out")


def test_a_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    result = _result()

    def broken_overlay(alpha=0.5):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(result, "overlay", broken_overlay)
    with pytest.raises(InputError, match="no space left on the device holding"):
        result.save(tmp_path, save_probs=True)
    assert list(tmp_path.iterdir()) == []  # neither the label map written before, nor temporary files

    def interrupted(tmp, array, dtype):
        raise KeyboardInterrupt

    monkeypatch.setattr("infoclip.segmentation.segmenter._write_probs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _result().save(tmp_path, save_probs=True)
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_ordinary_file_mode(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        files = _result().save(tmp_path, save_probs=True)
    finally:
        os.umask(umask)
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
