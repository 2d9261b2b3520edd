"""The Python API: ``from infoclip import Segmenter``; predict on paths, PIL images and arrays; overlay; save."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from infoclip.errors import InputError
from tests.segmentation.images_on_disk import gradient_rgb


@pytest.fixture(scope="module")
def segmenter(tiny_weights):
    from infoclip import Segmenter

    return Segmenter.from_pretrained(tiny_weights, device="cpu")


def test_predict_on_path_pil_and_array_agree(segmenter, photo):
    from infoclip import SegmentationResult

    array = gradient_rgb(48, 64)
    results = [segmenter.predict(x, ["cat", "sofa", "floor"]) for x in (photo, Image.open(photo), array)]
    for result in results:
        assert isinstance(result, SegmentationResult)
        assert result.labels.shape == (48, 64) and np.issubdtype(result.labels.dtype, np.integer)
        assert result.probs.shape == (3, 48, 64) and result.probs.dtype == np.float32
        np.testing.assert_array_equal(result.labels, result.probs.argmax(0))
    np.testing.assert_array_equal(results[0].probs, results[1].probs)
    np.testing.assert_array_equal(results[0].probs, results[2].probs)
    assert results[0].name == "photo" and results[2].name == "image"
    assert abs(sum(results[0].shares.values()) - 1.0) < 1e-9


def test_protocols_and_templates_change_the_prediction(segmenter):
    from infoclip import Segmenter

    image = gradient_rgb(40, 56)
    sliding = segmenter.predict(image, "cat,sofa")
    whole = segmenter.predict(image, "cat,sofa", protocol="whole")
    assert sliding.protocol == "sliding" and whole.protocol == "whole"
    assert not np.allclose(sliding.probs, whole.probs)
    other = Segmenter.from_pretrained(segmenter.source, template="a bad photo of the {}.")
    assert other.template == "a bad photo of the {}." and segmenter.template == "A photo of a {} in the scene"
    assert not np.allclose(other.predict(image, "cat,sofa").probs, sliding.probs)
    with pytest.raises(InputError, match="exactly once"):
        other.set_template("no placeholder")


def test_bf16_runs_on_cpu_close_to_fp32(segmenter, tiny_weights):
    from infoclip import Segmenter

    image = gradient_rgb(40, 56)
    fp32 = segmenter.predict(image, "cat,sofa", protocol="whole")
    bf16 = Segmenter.from_pretrained(tiny_weights, precision="bf16").predict(image, "cat,sofa", protocol="whole")
    assert bf16.probs.dtype == np.float32 and bf16.precision == "bf16"
    assert np.abs(bf16.probs - fp32.probs).max() < 0.05


def test_overlay_and_save(segmenter, tmp_path):
    result = segmenter.predict(gradient_rgb(48, 64), ["cat", "sofa"])
    overlay = result.overlay()
    assert overlay.mode == "RGB" and overlay.size[0] > 64
    files = result.save(tmp_path, stem="mine", save_probs=True)
    assert {p.name for p in files.values()} == {"mine.png", "mine_overlay.png", "mine.json", "mine_probs.npy"}
    np.testing.assert_array_equal(np.load(files["probs"]), result.probs)


def test_bad_inputs_raise_input_errors(segmenter, tmp_path):
    with pytest.raises(InputError, match=r"nothing\.jpg: image not found"):
        segmenter.predict(tmp_path / "nothing.jpg", ["cat"])
    with pytest.raises(InputError, match="repeats class names"):
        segmenter.predict(gradient_rgb(), ["cat", "cat "])
    with pytest.raises(InputError, match="unknown protocol"):
        segmenter.predict(gradient_rgb(), ["cat"], protocol="tiles")
    outcomes = list(segmenter.predict_many([tmp_path / "nothing.jpg", gradient_rgb(20, 20)], ["cat", "dog"]))
    assert isinstance(outcomes[0], InputError) and outcomes[1].labels.shape == (20, 20)


def test_clip_baseline_probabilities_are_a_softmax(tmp_path):
    from infoclip import Segmenter

    baseline = Segmenter.from_clip("infoclip-tiny-clip:none", protocol="whole")
    result = baseline.predict(gradient_rgb(40, 56), ["cat", "sofa", "floor"])
    np.testing.assert_allclose(result.probs.sum(0), 1.0, atol=1e-5)
    assert result.is_baseline and result.source == "training-free baseline: infoclip-tiny-clip:none"
    again = Segmenter.from_clip("infoclip-tiny-clip:none", protocol="whole").predict(gradient_rgb(40, 56), "cat,sofa,floor")
    np.testing.assert_array_equal(result.probs, again.probs)  # random weights are seeded
    sliding = baseline.predict(gradient_rgb(40, 56), ["cat", "sofa", "floor"], protocol="sliding")
    np.testing.assert_allclose(sliding.probs.sum(0), 1.0, atol=1e-5)
    assert not np.allclose(sliding.probs, result.probs)


def test_the_example_script_runs(tmp_path, monkeypatch, capsys, photo):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "segment_image.py"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "infoclip-tiny-clip:none", str(photo), "cat,sofa"])
    runpy.run_path(str(script), run_name="__main__")
    assert "(48, 64) (2, 48, 64)" in capsys.readouterr().out
    assert (tmp_path / "photo_overlay.png").is_file() and (tmp_path / "segment_output" / "photo.json").is_file()
