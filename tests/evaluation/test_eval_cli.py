"""``infoclip eval`` end to end with the tiny CAT-Seg (random init) on the synthetic benchmarks."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from infoclip.data.synthetic import write_custom_dataset

PAPER_ORDER = ["A-847", "PC-459", "A-150", "PC-59", "PAS-20", "PAS-20b"]


def test_all_six_benchmarks_summary_in_paper_order(datasets_root, tiny_weights, run_cli, tmp_path):
    out = tmp_path / "eval"
    code, stdout, stderr = run_cli("eval", "--weights", tiny_weights, "--dataset", "all", "--limit", "1",
                                   "--protocol", "whole", "--miou-formula", "d2-v0.6", "--output-dir", out)
    assert code == 0, stderr
    header = next(line for line in stdout.splitlines() if "A-847" in line and "PAS-20b" in line)
    assert [header.index(name + " ") for name in PAPER_ORDER] == sorted(header.index(name + " ") for name in PAPER_ORDER)
    assert "mIoU formula: d2-v0.6" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert [d["dataset"] for d in summary["datasets"]] == ["ade847", "pc459", "ade150", "pc59", "voc20", "voc20b"]
    assert summary["miou_formula"] == "d2-v0.6" and summary["adapter"] == "catseg" and summary["protocol"] == "whole"
    for name, classes in (("ade847", 847), ("pc459", 459), ("voc20b", 21)):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert metrics["num_images"] == 1 and metrics["num_classes"] == classes
        assert metrics["mIoU"] == metrics["mIoU_by_formula"]["d2-v0.6"]
        assert len(list(csv.DictReader((out / name / "per_class.csv").open()))) == classes


def test_default_sliding_protocol_and_progress_on_stderr(datasets_root, tiny_weights, run_cli, tmp_path):
    code, stdout, stderr = run_cli("eval", "-w", tiny_weights, "-d", "voc20", "--limit", "1", "-o", tmp_path)
    assert code == 0, stderr
    assert "Pascal VOC-20 (PAS-20), val split: 1 images, sliding protocol" in stdout
    assert "mIoU formula: present" in stdout and "best and worst classes" in stdout
    assert "voc20 (1 images)" in stderr and "voc20 (1 images)" not in stdout
    metrics = json.loads((tmp_path / "voc20" / "metrics.json").read_text())
    assert metrics["protocol"] == "sliding" and metrics["extra"]["weights"] == str(tiny_weights)
    assert metrics["extra"]["adapter"] == "catseg" and metrics["extra"]["prompt_templates"]


def test_custom_dataset_flags_with_seen_split(tiny_weights, run_cli, tmp_path):
    folder = write_custom_dataset(tmp_path / "mine", ["cat", "sofa", "sky", "floor"], num_images=2)
    (tmp_path / "seen.txt").write_text("cat\nsky\n")
    code, stdout, stderr = run_cli("eval", "-w", tiny_weights, "--images", folder / "images", "--labels",
                                   folder / "labels", "--classes", folder / "classes.json", "--seen",
                                   tmp_path / "seen.txt", "--protocol", "whole", "-o", tmp_path / "out")
    assert code == 0, stderr
    assert "seen / unseen classes" in stdout and "hIoU" in stdout
    split = json.loads((tmp_path / "out" / "custom" / "metrics.json").read_text())["seen_unseen"]
    assert split["seen_classes"] == 2 and split["unseen_classes"] == 2


def test_bad_input_is_one_line(writable_root, tiny_weights, run_cli, tmp_path):
    def one_error_line(*args):
        code, stdout, stderr = run_cli("eval", "-w", tiny_weights, *args)
        lines = stderr.strip().splitlines()
        assert code == 1 and "Traceback" not in stderr, stderr
        return lines[-2]  # the last line is the INFOCLIP_DEBUG hint

    root = writable_root
    labels = root / "ADEChallengeData2016/annotations_detectron2/validation"
    first = sorted(labels.iterdir())[0]
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(first)
    assert one_error_line("-d", "ade150", "--protocol", "whole").startswith(f"error: label {first} is 5x5 (WxH) but its image")
    first.unlink()
    line = one_error_line("-d", "ade150")
    assert line.startswith(f"error: ADE20K-150 (A-150): image ") and f"{first.stem}.jpg has no label" in line
    shutil.rmtree(root / "ADE20K_2021_17_01")
    line = one_error_line("-d", "ade847")
    assert line.startswith("error: ADE20K-847 (A-847): labels folder not found") and "prepare_ade20k_full.py" in line
    assert one_error_line("-d", "nope").startswith("error: unknown dataset 'nope'")
    assert one_error_line("-d", "voc20", "--protocol", "tiles").startswith("error: --protocol must be one of")
    code, _, stderr = run_cli("eval", "-w", tmp_path / "missing.safetensors", "-d", "voc20")
    assert code == 1 and "weights file not found" in stderr
    assert "no CUDA device is available here" in one_error_line("-d", "voc20", "--device", "cuda")
    assert "is not a device name" in one_error_line("-d", "voc20", "--device", "gpu7")
    images = root / "VOCdevkit/VOC2012/JPEGImages"
    for image in images.iterdir():
        if not image.name.startswith("unlabelled"):
            image.unlink()
            break
    assert "has no image" in one_error_line("-d", "voc20")


def test_training_free_baseline_through_the_command(run_cli, tmp_path):
    folder = write_custom_dataset(tmp_path / "mine", ["cat", "sofa", "sky"], num_images=2, seen_classes=["cat"])
    code, stdout, stderr = run_cli("eval", "--clip", "infoclip-tiny-clip:none", "-d", folder, "--protocol", "whole",
                                   "-o", tmp_path / "out")
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "out" / "mine" / "metrics.json").read_text())
    assert metrics["extra"]["clip"] == "infoclip-tiny-clip:none"
    assert metrics["extra"]["adapter"].startswith("dense-clip-baseline")
    assert 0.0 <= metrics["mIoU"] <= 100.0 and metrics["seen_unseen"]["seen_classes"] == 1


@pytest.mark.parametrize("args", [[], ["-w", "x.safetensors", "--clip", "infoclip-tiny-clip:none"]])
def test_weights_or_clip_exactly_one(run_cli, tmp_path, args):
    folder = write_custom_dataset(tmp_path / "mine", ["cat", "sofa"], num_images=1)
    code, _, stderr = run_cli("eval", *args, "-d", folder)
    assert code == 1 and stderr.startswith("error: give either --weights")


def test_max_pixels_refuses_a_too_large_image_by_name(tiny_weights, run_cli, tmp_path, monkeypatch):
    from infoclip.segmentation.images import MAX_PIXELS_ENV

    monkeypatch.setenv(MAX_PIXELS_ENV, "1")  # restored after the test (--max-pixels sets it for the process)
    folder = write_custom_dataset(tmp_path / "mine", ["cat", "sky"], num_images=1)
    code, _, stderr = run_cli("eval", "-w", tiny_weights, "--images", folder / "images", "--labels", folder / "labels",
                              "--classes", folder / "classes.json", "--protocol", "whole", "--max-pixels", "50")  # fmt: skip
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 1 and len(errors) == 1 and "exceeds the pixel limit of 50 pixels" in errors[0], stderr
    assert "Traceback" not in stderr
