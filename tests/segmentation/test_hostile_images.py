"""Regression tests of issue #18 for images and ``infoclip segment``: decompression bombs through every reader,
the documented pixel limit (``--max-pixels`` / ``INFOCLIP_MAX_PIXELS``), per-image failures that do not stop
the batch, symbolic-link loops, outputs of two runs mixing in one folder, and class names sharing a prompt."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from infoclip.errors import InputError
from infoclip.segmentation.classes import load_vocabulary, parse_classes, validate_class_names
from infoclip.segmentation.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, load_image, pixel_limit
from tests.memory_limit import refusal_under_limit
from tests.segmentation.images_on_disk import gradient_rgb


@pytest.fixture(autouse=True)
def _default_pixel_limit(monkeypatch):
    """Each test starts at the default limit, and ``--max-pixels`` (which sets the variable) does not leak."""
    monkeypatch.setenv(MAX_PIXELS_ENV, "1")  # records the original state for teardown ...
    monkeypatch.delenv(MAX_PIXELS_ENV)  # ... then runs with the variable unset


def tiff_claiming(path, width, height, dtype):
    """A small valid TIFF whose header is then edited to claim ``width`` x ``height`` (a decompression bomb:
    a reader that trusts the header allocates width x height x 3 values before it finds the data short)."""
    import tifffile

    tifffile.imwrite(path, np.zeros((16, 16, 3), dtype), photometric="rgb")
    with tifffile.TiffFile(path) as tif:
        offsets = [tif.pages.first.tags[name].valueoffset for name in ("ImageWidth", "ImageLength")]
    data = bytearray(path.read_bytes())
    for offset, value in zip(offsets, (width, height)):
        data[offset : offset + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data))
    return path


def png_claiming(path, width, height):
    """A tiny RGB PNG whose IHDR claims ``width`` x ``height`` (CRC fixed, so Pillow opens it)."""
    Image.new("RGB", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = 8 + 8  # signature, then length + type of the first chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_tifffile_images_get_the_pixel_limit_before_decoding(tmp_path, dtype):
    bomb = tiff_claiming(tmp_path / "bomb.tif", 13_000, 13_000, dtype)  # under Pillow's own limit; 6 KB on disk
    assert bomb.stat().st_size < 10_000
    message = refusal_under_limit("infoclip.segmentation.images.load_image", "infoclip.errors.InputError", str(bomb),
                                  timeout=60)  # fmt: skip
    assert "13000x13000 exceeds the pixel limit" in message


def test_label_tiffs_get_the_pixel_limit_too(tmp_path):
    from infoclip.data.readers import UnreadableFileError, read_raw_label

    bomb = tiff_claiming(tmp_path / "label.tif", 13_000, 13_000, np.uint16)
    with pytest.raises(UnreadableFileError, match="exceeds the pixel limit"):
        read_raw_label(bomb)


def test_the_pixel_limit_is_documented_and_adjustable(tmp_path, monkeypatch):
    photo = tmp_path / "p.png"
    Image.fromarray(gradient_rgb(30, 40)).save(photo)
    assert pixel_limit() == DEFAULT_MAX_PIXELS == 64_000_000
    assert load_image(photo).shape == (30, 40, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    with pytest.raises(InputError, match=f"40x30 exceeds the pixel limit of 1000 pixels.*{MAX_PIXELS_ENV}"):
        load_image(photo)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(InputError, match="must be a positive whole number"):
        load_image(photo)
    huge = png_claiming(tmp_path / "huge.png", 12_000, 12_000)  # 144 megapixels, under Pillow's own limit
    monkeypatch.delenv(MAX_PIXELS_ENV)
    with pytest.raises(InputError, match="12000x12000 exceeds the pixel limit"):
        load_image(huge)


def test_segment_reports_each_failing_image_and_runs_the_others(run_cli, tiny_weights, tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(gradient_rgb(30, 40)).save(good)
    huge = png_claiming(tmp_path / "huge.png", 12_000, 12_000)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    out = tmp_path / "out"
    code, _, stderr = run_cli("segment", huge, loop, good, "-c", "cat,sky", "-w", tiny_weights, "-o", out,
                              "--protocol", "whole", "--no-overlay")  # fmt: skip
    assert code == 1 and "Traceback" not in stderr
    assert f"error: {huge}: image of 12000x12000 exceeds the pixel limit" in stderr and "--max-pixels" in stderr
    assert f"error: {loop}: cannot follow this path (symbolic link loop)" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["good.json", "good.png"]
    # --max-pixels lowers (or raises) the limit for this run
    code, _, stderr = run_cli("segment", good, "-c", "cat,sky", "-w", tiny_weights, "-o", tmp_path / "o2",
                              "--max-pixels", "100", "--protocol", "whole")  # fmt: skip
    assert code == 1 and "40x30 exceeds the pixel limit of 100 pixels" in stderr


def test_segment_keeps_going_after_an_image_runs_out_of_memory(run_cli, tiny_weights, tmp_path, monkeypatch):
    from infoclip.segmentation.segmenter import Segmenter

    first, second = tmp_path / "a.png", tmp_path / "b.png"
    for path in (first, second):
        Image.fromarray(gradient_rgb(30, 40)).save(path)
    real = Segmenter.predict

    def predict(self, image, classes, protocol=None):
        if str(image).endswith("a.png"):
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")
        return real(self, image, classes, protocol)

    monkeypatch.setattr(Segmenter, "predict", predict)
    code, _, stderr = run_cli("segment", first, second, "-c", "cat,sky", "-w", tiny_weights, "-o", tmp_path / "out",
                              "--protocol", "whole", "--no-overlay")  # fmt: skip
    assert code == 1 and f"error: {first}: out of memory while segmenting it" in stderr
    assert (tmp_path / "out" / "b.png").is_file() and not (tmp_path / "out" / "a.png").exists(), stderr


def test_a_symlink_loop_given_as_the_only_image_is_one_line(run_cli, tiny_weights, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    code, _, stderr = run_cli("segment", loop, "-c", "cat,sky", "-w", tiny_weights, "-o", tmp_path / "out")
    assert code == 1 and "Traceback" not in stderr and "symbolic link loop" in stderr
    assert stderr.count("error:") == 2  # the input, then "no image to segment" naming it


def test_segment_warns_when_two_runs_would_mix_in_one_folder(run_cli, tiny_weights, tmp_path):
    images = []
    for name in ("a", "b"):
        images.append(tmp_path / f"{name}.png")
        Image.fromarray(gradient_rgb(30, 40)).save(images[-1])
    out = tmp_path / "out"
    common = ("-w", tiny_weights, "-o", out, "--protocol", "whole")
    code, _, stderr = run_cli("segment", *images, "-c", "cat,sky", "--save-probs", *common)
    assert code == 0 and "warning" not in stderr
    code, _, stderr = run_cli("segment", *images, "-c", "cat,sky", "--save-probs", *common)
    assert code == 0 and "warning" not in stderr, "the same run again replaces its own outputs"
    code, _, stderr = run_cli("segment", images[0], "-c", "cat,sofa", *common)
    assert code == 0 and f"warning: {out} already holds segment outputs of another run" in stderr
    assert "outputs of 1 other image(s): b" in stderr
    assert "other settings that this run replaces: a (classes)" in stderr
    assert "does not rewrite: a_probs.npy" in stderr


def test_classes_sharing_their_first_synonym_are_refused_naming_both(tmp_path):
    with pytest.raises(InputError, match=r"'building, edifice' \(#1\) and 'Building,  house' \(#3\)"):
        validate_class_names(["building, edifice", "sky", "Building,  house"])
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["cat", "building, edifice", "building, house"]))
    with pytest.raises(InputError, match="share their first synonym"):
        parse_classes(f"@{names}")
    assert validate_class_names(["building, edifice", "house, building"]) == ["building, edifice", "house, building"]
    # the published ADE-847 list has such pairs ('pot, flowerpot' and 'pot'), and it stays as shipped
    ade847 = load_vocabulary("ade847")
    assert "pot" in ade847 and len(parse_classes(ade847)) == 847
