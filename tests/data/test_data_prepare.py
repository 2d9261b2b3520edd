"""``infoclip data prepare``: conversions from synthetic copies of the official archives."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from infoclip.data import get_dataset
from infoclip.data.prepare import coco_id_to_train_id, prepare
from infoclip.data.readers import read_raw_label
from infoclip.errors import DatasetError
from infoclip_cli.main import app

runner = CliRunner()


def _image(path, hw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((*hw, 3), dtype=np.uint8)).save(path)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def test_ade150_shift_and_unlabelled(tmp_path, monkeypatch):
    ade = tmp_path / "ADEChallengeData2016"
    _png(ade / "annotations/validation/ADE_val_1.png", [[0, 1, 2], [150, 0, 75]])
    _image(ade / "images/validation/ADE_val_1.jpg", (2, 3))
    folders = prepare("ade150", tmp_path)
    assert [f.path.name for f in folders] == ["validation"] and folders[0].written == 1
    out = read_raw_label(ade / "annotations_detectron2/validation/ADE_val_1.png")
    np.testing.assert_array_equal(out, [[255, 0, 1], [149, 255, 74]])
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path))
    np.testing.assert_array_equal(get_dataset("ade150")[0].label, [[-1, 0, 1], [149, -1, 74]])


def test_coco_182_to_171_mapping(tmp_path):
    table = coco_id_to_train_id()
    assert (table != 255).sum() == 171
    # COCO id 12 (stop sign, 0-based 11 is the unused "street sign") -> trainId 11; the last stuff id 181 -> 170.
    assert table[0] == 0 and table[10] == 10 and table[11] == 255 and table[12] == 11
    assert table[91] == 80 and table[181] == 170 and table[255] == 255 and table[182] == 255
    _png(tmp_path / "coco-stuff/annotations/val2017/000001.png", [[0, 11, 12], [91, 181, 255]])
    prepare("coco171", tmp_path)
    out = read_raw_label(tmp_path / "coco-stuff/annotations_detectron2/val2017/000001.png")
    np.testing.assert_array_equal(out, [[0, 255, 11], [80, 170, 255]])


def _voc_sources(tmp_path):
    voc = tmp_path / "VOCdevkit/VOC2012"
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (voc / "ImageSets/Segmentation/val.txt").write_text("2007_000001\n2007_000002\n")
    _png(voc / "SegmentationClassAug/2007_000001.png", [[0, 1, 20], [255, 15, 0]])
    _png(voc / "SegmentationClassAug/2007_000002.png", [[0, 0], [255, 0]])  # background only
    for stem, hw in (("2007_000001", (2, 3)), ("2007_000002", (2, 2)), ("2007_009999", (2, 2))):
        _image(voc / f"JPEGImages/{stem}.jpg", hw)
    return voc


def test_voc_both_variants(tmp_path, monkeypatch):
    voc = _voc_sources(tmp_path)
    plain, with_bg = prepare("voc20b", tmp_path)
    assert (plain.written, plain.skipped) == (1, 1), "a map with no class left is not written (as CAT-Seg)"
    assert (with_bg.written, with_bg.skipped) == (2, 0)
    np.testing.assert_array_equal(read_raw_label(voc / "annotations_detectron2/val/2007_000001.png"),
                                  [[255, 0, 19], [255, 14, 255]])
    np.testing.assert_array_equal(read_raw_label(voc / "annotations_detectron2_bg/val/2007_000001.png"),
                                  [[20, 0, 19], [255, 14, 20]])
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path))
    assert len(get_dataset("voc20")) == 1 and len(get_dataset("voc20b")) == 2
    np.testing.assert_array_equal(get_dataset("voc20b")[1].label, [[20, 20], [-1, 20]])


def test_existing_output_needs_overwrite_and_failures_leave_nothing(tmp_path):
    voc = _voc_sources(tmp_path)
    prepare("voc20", tmp_path)
    with pytest.raises(DatasetError, match="already exists and is not empty; allow overwriting it"):
        prepare("voc20", tmp_path)
    (voc / "SegmentationClassAug/2007_000002.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="2007_000002.png"):
        prepare("voc20", tmp_path, overwrite=True)
    # the failed rebuild left the previous output untouched and no partial folder behind
    assert sorted(p.name for p in (voc / "annotations_detectron2").iterdir()) == ["val"]
    assert len(list((voc / "annotations_detectron2/val").iterdir())) == 1
    _png(voc / "SegmentationClassAug/2007_000002.png", [[3, 0], [0, 0]])
    prepare("voc20", tmp_path, overwrite=True)
    assert len(list((voc / "annotations_detectron2/val").iterdir())) == 2


def test_pc459_from_mat(tmp_path, monkeypatch):
    scipy_io = pytest.importorskip("scipy.io")
    voc = tmp_path / "VOCdevkit/VOC2010"
    (voc / "trainval").mkdir(parents=True)
    label_map = np.array([[1, 459, 300], [2, 2, 1]], dtype=np.uint16)
    scipy_io.savemat(voc / "trainval/2008_000002.mat", {"LabelMap": label_map})
    _image(voc / "JPEGImages/2008_000002.jpg", (2, 3))
    (folder,) = prepare("pc459", tmp_path)  # ids from the shipped pascalcontext_val.txt
    assert folder.written == 1 and folder.skipped == 5103  # the shipped list holds 5104 ids
    out = tifffile.imread(voc / "annotations_detectron2/pc459_val/2008_000002.tif")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, label_map - 1)
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path))
    np.testing.assert_array_equal(get_dataset("pc459")[0].label, [[0, 458, 299], [1, 1, 0]])


def test_external_conversions_and_cli(tmp_path):
    with pytest.raises(DatasetError, match="prepare_ade20k_full.py"):
        prepare("ade847", tmp_path)
    with pytest.raises(DatasetError, match="Detail API"):
        prepare("pc59", tmp_path)
    missing = runner.invoke(app, ["data", "prepare", "ade150", "--root", str(tmp_path)])
    assert missing.exit_code == 1 and "annotations folder (from ADEChallengeData2016.zip) not found" in str(missing.exception)
    _png(tmp_path / "ADEChallengeData2016/annotations/validation/a.png", [[1]])
    done = runner.invoke(app, ["data", "prepare", "ade150", "--root", str(tmp_path)])
    assert done.exit_code == 0 and "wrote 1 labels to" in done.output
