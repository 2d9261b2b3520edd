import json

import numpy as np
import pytest
from PIL import Image

from infoclip.data import load_vocabulary
from infoclip.data.panoptic import (
    PanopticDataset,
    coco_panoptic_categories,
    coco_panoptic_spec,
    id_to_rgb,
    read_segment_ids,
    rgb_to_id,
)
from infoclip.data.readers import UnreadableFileError
from infoclip.data.synthetic import write_coco_panoptic
from infoclip.errors import DatasetError


@pytest.fixture(scope="module")
def panoptic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("panoptic")
    write_coco_panoptic(root, num_images=3, seed=4)
    return root


def test_rgb_encoding_of_segment_ids():
    rgb = np.array([[[1, 2, 3], [0, 0, 0]]], dtype=np.uint8)
    assert rgb_to_id(rgb).tolist() == [[1 + 2 * 256 + 3 * 65536, 0]]
    ids = np.array([[0, 255, 256, 256**3 - 1]])
    assert np.array_equal(rgb_to_id(id_to_rgb(ids)), ids)
    with pytest.raises(ValueError):
        id_to_rgb(np.array([256**3]))


def test_the_133_coco_panoptic_categories():
    cats = coco_panoptic_categories()
    assert len(cats) == 133 and sum(c.isthing for c in cats) == 80
    assert all(c.isthing for c in cats[:80]) and not any(c.isthing for c in cats[80:])
    assert [c.id for c in cats] == sorted(c.id for c in cats)
    assert (cats[0].id, cats[0].name) == (1, "person")
    assert (cats[79].id, cats[79].name) == (90, "toothbrush")
    assert (cats[80].id, cats[80].name) == (92, "banner")
    assert (cats[-1].id, cats[-1].name) == (200, "rug-merged")
    assert load_vocabulary("coco_panoptic") == [c.name for c in cats]


def test_reader_maps_categories_and_reads_the_png(panoptic_root):
    ds = PanopticDataset(coco_panoptic_spec(panoptic_root), "train")
    assert len(ds) == 3 and len(ds.class_names) == 133
    data = json.loads((panoptic_root / "coco/annotations/panoptic_train2017.json").read_text())
    contiguous = {c.id: i for i, c in enumerate(coco_panoptic_categories())}
    for index, annotation in enumerate(data["annotations"]):
        sample = ds[index]
        assert sample.name == annotation["file_name"][:-4] and sample.image_id == annotation["image_id"]
        assert sample.image.shape[:2] == sample.segment_ids.shape and sample.image.dtype == np.uint8
        assert [s.id for s in sample.segments] == [s["id"] for s in annotation["segments_info"]]
        for segment, info in zip(sample.segments, annotation["segments_info"]):
            assert segment.category == contiguous[info["category_id"]]
            assert segment.iscrowd == bool(info["iscrowd"])
            assert segment.isthing == (segment.category < 80)
            assert int((sample.segment_ids == segment.id).sum()) == info["area"]
        assert (sample.segment_ids == 0).any()  # the unlabelled corner
        assert sum(s.iscrowd for s in sample.segments) == 1
        crowd = next(s for s in sample.segments if s.iscrowd)
        assert crowd not in sample.training_segments()
        label = sample.semantic_label()
        assert label.dtype == np.int64 and (label[sample.segment_ids == 0] == -1).all()
        assert (label[sample.segment_ids == crowd.id] == crowd.category).all()


def test_reader_errors(panoptic_root, tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found.*panoptic_annotations_trainval2017.zip"):
        PanopticDataset(coco_panoptic_spec(tmp_path), "train")
    with pytest.raises(DatasetError, match="no split 'test'"):
        PanopticDataset(coco_panoptic_spec(panoptic_root), "test")

    def broken(edit):
        root = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        write_coco_panoptic(root, splits=("val",), num_images=1, seed=0)
        path = root / "coco/annotations/panoptic_val2017.json"
        data = json.loads(path.read_text())
        edit(data, root)
        path.write_text(json.dumps(data))
        return root

    def unknown_category(data, root):
        data["annotations"][0]["segments_info"][0]["category_id"] = 91

    with pytest.raises(DatasetError, match="unknown category id 91"):
        PanopticDataset(coco_panoptic_spec(broken(unknown_category)), "val")

    def foreign_table(data, root):
        data["categories"][0]["name"] = "human"

    with pytest.raises(DatasetError, match="'human' is not in the COCO panoptic 2017.*another dataset"):
        PanopticDataset(coco_panoptic_spec(broken(foreign_table)), "val")

    def small_png(data, root):
        name = data["annotations"][0]["file_name"]
        Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "coco/panoptic_val2017" / name)

    with pytest.raises(DatasetError, match="5x5 .*but its image"):
        PanopticDataset(coco_panoptic_spec(broken(small_png)), "val")[0]

    def corrupt_png(data, root):
        (root / "coco/panoptic_val2017" / data["annotations"][0]["file_name"]).write_bytes(b"not a png")

    with pytest.raises(UnreadableFileError, match="cannot read"):
        PanopticDataset(coco_panoptic_spec(broken(corrupt_png)), "val")[0]


def test_read_segment_ids_ignores_alpha(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 7, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert read_segment_ids(tmp_path / "a.png").tolist() == [[7, 7], [7, 7]]


# ---------------------------------------------------------------- the registered dataset and its check


@pytest.fixture
def panoptic_datasets(tmp_path, monkeypatch):
    """A private synthetic COCO panoptic tree as the datasets root (tests break it)."""
    write_coco_panoptic(tmp_path, num_images=3, seed=4)
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path))
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    return tmp_path


def test_coco_panoptic_is_a_registered_dataset_with_a_semantic_view(panoptic_datasets):
    from infoclip.data import get_dataset, get_spec

    assert get_spec("coco_panoptic").name == "coco-panoptic" and get_spec("coco133").name == "coco-panoptic"
    ds = get_dataset("coco-panoptic", "train")
    assert isinstance(ds, PanopticDataset) and ds.eval_class_names == ds.class_names and len(ds.class_names) == 133
    sample = ds[1]
    crowd = [i for i, s in enumerate(sample.segments) if s.iscrowd]
    assert crowd, "the synthetic images hold a crowd segment"
    slots = sample.slot_map()
    for index, segment in enumerate(sample.segments):
        assert np.array_equal(slots == index, sample.segment_ids == segment.id)
        assert (sample.label[slots == index] == segment.category).all(), "crowd segments keep their class"
    assert (sample.label[sample.segment_ids == 0] == -1).all() and (slots[sample.segment_ids == 0] == -1).all()
    assert np.array_equal(ds.read_label(1), sample.label)


def test_data_check_reports_missing_pngs_entries_and_unlisted_ids(panoptic_datasets):
    from typer.testing import CliRunner

    from infoclip.data import get_dataset, get_spec
    from infoclip.data.check import check_dataset
    from infoclip_cli.main import app

    runner = CliRunner()
    assert check_dataset(get_spec("coco-panoptic"), "train").status == "ok"
    ok = runner.invoke(app, ["data", "check", "coco-panoptic", "--split", "train"])
    assert ok.exit_code == 0, ok.output
    pngs = panoptic_datasets / "coco/panoptic_train2017"
    first, second = sorted(pngs.iterdir())[:2]
    first.unlink()  # the JSON entry has no PNG
    ids = read_segment_ids(second)
    ids[0, 0] = 77  # an id the entry does not list
    Image.fromarray(id_to_rgb(ids)).save(second)
    Image.fromarray(id_to_rgb(np.zeros((40, 56), np.int64))).save(pngs / "stray.png")  # a PNG no entry names
    report = check_dataset(get_spec("coco-panoptic"), "train")
    assert report.status == "broken"
    assert report.entries_without_labels == [first.name] and report.labels_without_entries == [pngs / "stray.png"]
    assert report.bad_values == [(second, [77])]
    with pytest.raises(DatasetError, match=r"1 entries of panoptic_train2017.json have no panoptic PNG .*infoclip data check coco-panoptic --split train"):
        get_dataset("coco-panoptic", "train")
    result = runner.invoke(app, ["data", "check", "coco-panoptic", "--split", "train"])
    assert result.exit_code == 1
    assert f"coco-panoptic: annotation entry without PNG: {first}" in result.output
    assert "PNG without annotation entry" in result.output and "values 77" in result.output
    (panoptic_datasets / "coco/annotations/panoptic_val2017.json").unlink()
    missing = runner.invoke(app, ["data", "check", "coco-panoptic"])
    assert missing.exit_code == 1 and "annotation file not found" in missing.output
