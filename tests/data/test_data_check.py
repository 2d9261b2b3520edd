"""``infoclip data check``: healthy and broken trees, the table, exit codes and JSON."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import tifffile
from PIL import Image
from typer.testing import CliRunner

from infoclip.data import get_spec, load_custom_spec
from infoclip.data.check import check_dataset
from infoclip_cli.main import app

runner = CliRunner()


def test_healthy_tree_is_ok(datasets_root):
    for name in ("coco171", "ade150", "ade847", "pc59", "pc459", "voc20", "voc20b"):
        report = check_dataset(get_spec(name))
        assert report.status == "ok", report.problems()
        assert report.num_pairs == 3 and report.num_checked == 3
    shared = check_dataset(get_spec("pc459"))
    assert shared.unlabelled_images_expected and len(shared.images_without_labels) == 1 and not shared.problems()
    result = runner.invoke(app, ["data", "check"])
    assert result.exit_code == 0, result.output
    for name in ("coco171", "ade150", "ade847", "pc59", "pc459", "voc20", "voc20b"):
        assert name in result.output
    assert "broken" not in result.output


def _break_ade150(root):
    images = root / "ADEChallengeData2016/images/validation"
    labels = root / "ADEChallengeData2016/annotations_detectron2/validation"
    stems = sorted(p.stem for p in labels.iterdir())
    os.remove(images / f"{stems[0]}.jpg")  # label without image
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(images / "extra.jpg")  # image without label
    Image.fromarray(np.full((40, 56), 200, dtype=np.uint8)).save(labels / f"{stems[1]}.png")  # 200 > 149 (and size)
    (labels / f"{stems[2]}.png").write_bytes(b"\x89PNG broken")  # unreadable label
    (images / "zz.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # unreadable image
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(labels / "zz.png")
    return images, labels, stems


def test_broken_tree_reports_every_problem(writable_root):
    images, labels, stems = _break_ade150(writable_root)
    report = check_dataset(get_spec("ade150"))
    assert report.status == "broken"
    assert report.labels_without_images == [labels / f"{stems[0]}.png"]
    assert report.images_without_labels == [images / "extra.jpg"]
    assert report.bad_values == [(labels / f"{stems[1]}.png", [200])]
    assert [p for p, _ in report.size_mismatches] == [labels / f"{stems[1]}.png"]
    assert [p for p, _ in report.unreadable] == [labels / f"{stems[2]}.png", images / "zz.jpg"]
    lines = "\n".join(report.problems())
    assert "values outside vocabulary" in lines and "size mismatch" in lines and "label without image" in lines


def test_cli_exit_code_lists_files_and_json(writable_root):
    _, labels, stems = _break_ade150(writable_root)
    result = runner.invoke(app, ["data", "check", "ade150", "ade847"])
    assert result.exit_code == 1
    assert f"{stems[1]}.png" in result.output and "values 200" in result.output
    assert "1 dataset(s) broken or missing: ade150" in result.output
    as_json = runner.invoke(app, ["data", "check", "ade150", "--json"])
    assert as_json.exit_code == 1
    payload = json.loads(as_json.stdout)
    assert payload[0]["status"] == "broken" and payload[0]["bad_values"][0]["values"] == [200]


def test_uint16_and_459_ignore_values_are_checked(writable_root):
    labels = writable_root / "VOCdevkit/VOC2010/annotations_detectron2/pc459_val"
    first = sorted(labels.iterdir())[0]
    raw = tifffile.imread(first)
    raw[0, 0] = 460  # above the ignore value 459
    tifffile.imwrite(first, raw)
    report = check_dataset(get_spec("pc459"))
    assert report.status == "broken" and report.bad_values == [(first, [460])]


def test_missing_datasets_fail_only_when_named(writable_root):
    shutil.rmtree(writable_root / "ADE20K_2021_17_01")
    (writable_root / "ADE20K_2021_17_01/images/ADE/validation").mkdir(parents=True)  # raw data, not converted
    report = check_dataset(get_spec("ade847"))
    assert report.status == "missing" and "prepare_ade20k_full.py" in report.message
    assert "raw data found" in report.message
    assert runner.invoke(app, ["data", "check"]).exit_code == 0
    named = runner.invoke(app, ["data", "check", "ade847"])
    assert named.exit_code == 1 and "missing" in named.output


def test_custom_dataset_folder_and_limit(tmp_path):
    from infoclip.data.synthetic import write_custom_dataset

    folder = write_custom_dataset(tmp_path / "mine", ["a", "b", "c"], num_images=3)
    result = runner.invoke(app, ["data", "check", str(folder), "--limit", "2", "--decode-images"])
    assert result.exit_code == 0, result.output
    report = check_dataset(load_custom_spec(folder), limit=2, decode_images=True)
    assert report.num_checked == 2 and report.num_pairs == 3
