"""Readers of the seven built-in layouts, custom datasets, vocabularies and the dataset registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from infoclip.data import IGNORE_INDEX, get_dataset, get_spec, load_vocabulary, registered_datasets
from infoclip.data.readers import (
    LabelValueError,
    SizeMismatchError,
    UnreadableFileError,
    image_size,
    read_image,
    read_label,
    read_raw_label,
)
from infoclip.data.registry import datasets_root
from infoclip.data.synthetic import write_custom_dataset
from infoclip.errors import DatasetError

EXPECTED = {
    # name: (vocabulary size, label classes, label suffix, on-disk ignore value, on-disk dtype)
    "coco171": (171, 171, ".png", 255, np.uint8),
    "ade150": (150, 150, ".png", 255, np.uint8),
    "ade847": (847, 847, ".tif", 65535, np.uint16),
    "pc59": (59, 59, ".png", 255, np.uint8),
    "pc459": (459, 459, ".tif", 459, np.uint16),
    "voc20": (20, 20, ".png", 255, np.uint8),
    "voc20b": (59, 21, ".png", 255, np.uint8),
}


def test_registered_names_and_conventions():
    specs = registered_datasets()
    assert list(specs) == ["coco171", "ade150", "ade847", "pc59", "pc459", "voc20", "voc20b", "coco-panoptic"]
    for name, (vocab, label_classes, suffix, ignore, _) in EXPECTED.items():
        spec = specs[name]
        assert (len(spec.class_names), spec.num_label_classes, spec.label_suffix, spec.ignore_value) == (
            vocab, label_classes, suffix, ignore,
        ), name
    assert set(specs["coco171"].splits) == {"train", "val"}
    assert specs["voc20b"].eval_class_names[-1] == "background" and specs["voc20b"].background_index == 20
    assert specs["ade847"].splits["val"].labels == "ADE20K_2021_17_01/annotations_detectron2/validation"
    assert specs["pc459"].splits["val"].images == "VOCdevkit/VOC2010/JPEGImages"
    assert specs["voc20b"].splits["val"].labels == "VOCdevkit/VOC2012/annotations_detectron2_bg/val"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_layout_reads_with_ignore_mapped(datasets_root, name):
    vocab, label_classes, suffix, ignore, dtype = EXPECTED[name]
    ds = get_dataset(name)
    assert len(ds) == 3 and len(ds.class_names) == vocab and len(ds.eval_class_names) == label_classes
    for i in range(len(ds)):
        sample = ds[i]
        raw = read_raw_label(sample.label_path)
        assert raw.dtype == dtype, "the on-disk format must be the real one"
        assert sample.image.dtype == np.uint8 and sample.image.shape == (*raw.shape, 3)
        assert sample.label.dtype == np.int64 and sample.label.shape == raw.shape
        np.testing.assert_array_equal(sample.label == IGNORE_INDEX, raw == ignore)
        np.testing.assert_array_equal(sample.label[raw != ignore], raw[raw != ignore].astype(np.int64))
        assert sample.label.max() < label_classes and sample.label_path.suffix == suffix


def test_sixteen_bit_values_survive(datasets_root):
    ds = get_dataset("ade847")
    assert max(int(ds[i].label.max()) for i in range(len(ds))) > 255


def test_coco_train_split_and_unknown_split(datasets_root):
    assert len(get_dataset("coco171", split="train")) == 3
    with pytest.raises(DatasetError, match="has no split 'train'; its splits: val"):
        get_dataset("ade150", split="train")


def test_aliases_and_unknown_names():
    assert get_spec("A-150").name == "ade150"
    assert get_spec("ade20k_full_sem_seg_freq_val_all").name == "ade847"
    assert get_spec("PAS-20b").name == "voc20b"
    with pytest.raises(DatasetError, match="unknown dataset 'ade9000'; registered datasets: coco171"):
        get_spec("ade9000")


def test_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("INFOCLIP_DATASETS", "/a")
    monkeypatch.setenv("DETECTRON2_DATASETS", "/b")
    assert datasets_root() == Path("/a")
    monkeypatch.delenv("INFOCLIP_DATASETS")
    assert datasets_root() == Path("/b")
    monkeypatch.delenv("DETECTRON2_DATASETS")
    monkeypatch.chdir(tmp_path)
    assert datasets_root() == Path("datasets")
    with pytest.raises(DatasetError, match=r"labels folder not found: datasets/ADEChallengeData2016.*infoclip data prepare ade150"):
        get_dataset("ade150")


def test_shipped_vocabularies_are_catseg_lists():
    counts = {"coco": 171, "ade150": 150, "ade847": 847, "pc59": 59, "pc459": 459, "voc20": 20, "voc20b": 59}
    for name, count in counts.items():
        assert len(load_vocabulary(name)) == count
    assert "bed " in load_vocabulary("ade150"), "the trailing space of CAT-Seg's list is kept verbatim"
    assert load_vocabulary("voc20b")[:20] == load_vocabulary("voc20")
    assert load_vocabulary("ade847")[1] == "building, edifice"


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, :5] = 255  # a bright left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    image = read_image(tmp_path / "r.jpg")
    assert image.shape == (30, 10, 3) and image_size(tmp_path / "r.jpg") == (30, 10)
    assert image[:5].mean() > 200 and image[-5:].mean() < 50, "the left edge must end up on top"


def _pair(root: Path, stem: str, label: np.ndarray, hw: tuple[int, int] | None = None) -> None:
    (root / "images").mkdir(exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    h, w = hw or label.shape
    Image.fromarray(np.zeros((h, w, 3), dtype=np.uint8)).save(root / "images" / f"{stem}.jpg")
    Image.fromarray(label).save(root / "labels" / f"{stem}.png")


def _yaml(root: Path, **extra: object) -> Path:
    import yaml

    desc = {"name": "mine", "classes": ["cat", "sofa", "sky"], "images": "images", "labels": "labels", **extra}
    (root / "dataset.yaml").write_text(yaml.safe_dump(desc), encoding="utf-8")
    return root


def test_custom_dataset_reads_and_errors_name_the_file(tmp_path):
    _pair(tmp_path, "a", np.array([[0, 1], [2, 255]], dtype=np.uint8))
    _pair(tmp_path, "b", np.array([[0, 3], [2, 2]], dtype=np.uint8))  # 3 is outside the 3 classes
    _pair(tmp_path, "c", np.zeros((2, 2), dtype=np.uint8), hw=(4, 4))
    ds = get_dataset(_yaml(tmp_path))
    assert ds.name == "mine" and ds.class_names == ["cat", "sofa", "sky"] and len(ds) == 3
    np.testing.assert_array_equal(ds[0].label, [[0, 1], [2, -1]])
    with pytest.raises(LabelValueError, match=r"labels/b\.png has values 3 outside the classes 0\.\.2 \(ignore value 255\)"):
        ds[1]
    with pytest.raises(SizeMismatchError, match=r"labels/c\.png is 2x2 \(WxH\) but its image .*c\.jpg is 4x4"):
        ds[2]


def test_custom_dataset_folder_errors(tmp_path):
    _pair(tmp_path, "a", np.zeros((2, 2), dtype=np.uint8))
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(tmp_path / "images" / "lonely.jpg")
    with pytest.raises(DatasetError, match=r"image .*lonely\.jpg has no label in .*labels \(1 such images\)"):
        get_dataset(_yaml(tmp_path))
    os.remove(tmp_path / "images" / "lonely.jpg")
    Image.fromarray(np.zeros((2, 2), dtype=np.uint8)).save(tmp_path / "labels" / "orphan.png")
    with pytest.raises(DatasetError, match=r"label .*orphan\.png has no image"):
        get_dataset(tmp_path)
    with pytest.raises(DatasetError, match="unknown key"):
        get_dataset(_yaml(tmp_path, colour="red"))
    with pytest.raises(DatasetError, match="seen_classes 'dog' are not in its classes"):
        get_dataset(_yaml(tmp_path, seen_classes=["cat", "dog"]))
    with pytest.raises(DatasetError, match="has no dataset.yaml"):
        get_dataset(tmp_path / "images")


def test_custom_dataset_with_splits_json_classes_and_seen(tmp_path):
    folder = write_custom_dataset(tmp_path / "kitchens", ["cat", "sofa", "sky", "floor"], num_images=2,
                                  seen_classes=["cat", "sky"], splits=["train", "val"])
    train, val = get_dataset(folder, split="train"), get_dataset(str(folder / "dataset.yaml"), split="val")
    assert len(train) == 2 and len(val) == 2 and train.spec.seen_classes == ("cat", "sky")
    assert train[0].image.shape[:2] == train[0].label.shape
    assert json.loads((folder / "classes.json").read_text()) == train.class_names
    with pytest.raises(DatasetError, match="no split 'test'"):
        get_dataset(folder, split="test")


def test_label_decoding_errors(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(UnreadableFileError, match=r"cannot read .*junk\.png \(.*\); re-extract or re-create"):
        read_label(tmp_path / "junk.png", 3, 255)
    Image.fromarray(np.zeros((2, 2, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(UnreadableFileError, match="RGB image; labels must be single-channel"):
        read_label(tmp_path / "rgb.png", 3, 255)
    tifffile.imwrite(tmp_path / "wide.tif", np.array([[0, 458], [459, 500]], dtype=np.uint16))
    with pytest.raises(LabelValueError, match="values 500 outside the classes 0..458"):
        read_label(tmp_path / "wide.tif", 459, 459)
    tifffile.imwrite(tmp_path / "f.tif", np.array([[0.0, 2.0], [459.0, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(read_label(tmp_path / "f.tif", 459, 459), [[0, 2], [-1, 1]])
    tifffile.imwrite(tmp_path / "i32.tif", np.array([[-3, 1]], dtype=np.int32))
    with pytest.raises(LabelValueError, match="values -3"):
        read_label(tmp_path / "i32.tif", 3, 255)


def test_palette_pngs_read_as_indices(tmp_path):
    label = Image.fromarray(np.array([[0, 1], [2, 255]], dtype=np.uint8), mode="L").convert("P")
    label.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253)
    label.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label(tmp_path / "p.png", 3, 255), [[0, 1], [2, -1]])


def test_plugin_contributes_a_dataset(tmp_path, monkeypatch):
    from infoclip import hookimpl
    from infoclip.adapters import get_plugin_manager
    from infoclip.data import DatasetSpec, SplitLayout

    folder = write_custom_dataset(tmp_path / "d", ["a", "b"], num_images=1)

    class Plugin:
        @staticmethod
        @hookimpl
        def infoclip_register_datasets():
            return [DatasetSpec(name="plugged", title="Plugged", class_names=("a", "b"),
                                splits={"val": SplitLayout("images", "labels")}, image_suffixes=(".jpg",), base=folder)]

    get_plugin_manager().register(Plugin(), name="plugged-datasets")
    assert len(get_dataset("plugged")) == 1

    class Clash:
        @staticmethod
        @hookimpl
        def infoclip_register_datasets():
            from infoclip.data.builtin import builtin_specs

            return [spec for spec in builtin_specs() if spec.name == "ade150"]

    get_plugin_manager().register(Clash(), name="clash")
    with pytest.raises(DatasetError, match="'ade150' is registered twice"):
        registered_datasets()
