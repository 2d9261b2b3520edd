"""``evaluate`` over the synthetic benchmarks with deterministic models (small ``OVSSModel`` subclasses)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from torch import nn

from infoclip.adapters.contract import EvalProtocol, OVSSModel
from infoclip.data import get_dataset
from infoclip.data.synthetic import write_custom_dataset
from infoclip.errors import AdapterError, DatasetError, InputError
from infoclip.evaluation import evaluate


class ScoringModel(OVSSModel):
    """An ``OVSSModel`` that only predicts (its scores are set by the subclass); it has nothing to train."""

    adapter_name = "scoring-test"
    protocols = (EvalProtocol("sliding", "test: the default"), EvalProtocol("whole", "test: another"))

    def forward_train(self, images, class_names, lpam=None):  # noqa: ANN001
        raise AssertionError("evaluate never trains")

    def task_loss(self, logits, labels):  # noqa: ANN001
        raise AssertionError("evaluate never trains")


class OracleModel(ScoringModel):
    """Predicts each image's ground truth, found by the image's pixels; ``background_as`` renames class 20."""

    def __init__(self, dataset, background_as: int | None = None) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.labels = {dataset[i].image.tobytes(): dataset[i].label for i in range(len(dataset))}
        self.background_as = background_as
        self.calls: list[tuple[tuple[int, ...], int, str, bool]] = []

    def predict(self, image, class_names, protocol="sliding"):
        assert image.dtype == torch.float32 and image.shape[0] == 3 and 0 <= float(image.min()) <= float(image.max()) <= 255
        self.calls.append((tuple(image.shape), len(class_names), protocol, self.training))
        label = self.labels[image.permute(1, 2, 0).to(torch.uint8).numpy().tobytes()].copy()
        if self.background_as is not None:
            label[label == 20] = self.background_as
        label[label < 0] = len(class_names) - 1  # whatever it predicts on ignored pixels must not count
        return torch.nn.functional.one_hot(torch.from_numpy(label), len(class_names)).permute(2, 0, 1).float()


class ConstantModel(ScoringModel):
    """Predicts class ``index`` everywhere (a model without parameters: images stay on the CPU)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def predict(self, image, class_names, protocol="sliding"):
        scores = torch.zeros(len(class_names), *image.shape[1:])
        scores[self.index] = 1
        return scores


@pytest.mark.parametrize("name", ["ade150", "ade847", "pc459", "voc20", "coco171"])
def test_oracle_scores_100(datasets_root, name):
    ds = get_dataset(name)
    model = OracleModel(ds).train()
    result = evaluate(model, ds, protocol="whole")
    assert result.miou == pytest.approx(100.0) and result.metrics["pAcc"] == pytest.approx(100.0)
    assert result.num_images == 3 and result.protocol == "whole" and result.formula == "present"
    assert all(call[1] == len(ds.class_names) and call[2] == "whole" and not call[3] for call in model.calls)
    assert model.training, "evaluate restores the training mode"


def test_voc20b_uses_59_names_and_scores_21_classes(datasets_root):
    ds = get_dataset("voc20b")
    model = OracleModel(ds, background_as=45)  # a Pascal Context "context" class stands for background
    result = evaluate(model, ds)
    assert {call[1] for call in model.calls} == {59}
    assert result.confusion.shape == (21, 21) and result.class_names[-1] == "background"
    assert result.miou == pytest.approx(100.0), "predictions >= 20 must count as background"


def test_constant_model_matches_hand_counted_confusion(datasets_root):
    ds = get_dataset("pc59")
    result = evaluate(ConstantModel(7), ds, limit=2)
    expected = np.zeros((59, 59), dtype=np.int64)
    for i in range(2):
        label = ds[i].label
        for cls, count in zip(*np.unique(label[label >= 0], return_counts=True)):
            expected[cls, 7] += count
    np.testing.assert_array_equal(result.confusion, expected)
    assert result.num_images == 2
    present = int((expected.sum(1) > 0).sum())
    assert result.metrics["classes_in_ground_truth"] == present
    hit = expected[7, 7] / (expected[7].sum() + expected[:, 7].sum() - expected[7, 7]) if expected[7].sum() else 0.0
    assert result.miou == pytest.approx(100 * hit / present)
    assert result.metrics["mIoU_by_formula"]["d2-v0.6"] == pytest.approx(100 * hit / len({*np.nonzero(expected.sum(1))[0], 7}))


def test_indices_with_confusion_and_outputs(datasets_root, tmp_path):
    ds = get_dataset("ade150")
    first = evaluate(ConstantModel(0), ds, indices=[0, 2])
    second = evaluate(ConstantModel(0), ds, indices=[1])
    whole = evaluate(ConstantModel(0), ds)
    merged = first.with_confusion(first.confusion + second.confusion, num_images=3)
    np.testing.assert_array_equal(merged.confusion, whole.confusion)
    drop_timing = lambda r: {k: v for k, v in r.to_json().items() if not k.startswith("seconds")}  # noqa: E731
    assert drop_timing(merged) == drop_timing(whole) and merged.num_images == 3
    metrics_path, csv_path = whole.write(tmp_path / "out")
    payload = json.loads(metrics_path.read_text())
    assert payload["dataset"] == "ade150" and payload["miou_formula"] == "present" and payload["num_images"] == 3
    assert payload["per_class"][0]["name"] == "wall" and len(payload["per_class"]) == 150
    assert any(row["iou"] is None for row in payload["per_class"]), "NaN is written as null"
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 150 and rows[0].keys() >= {"index", "name", "iou", "acc", "gt_pixels", "pred_pixels"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.json", "per_class.csv"]


def test_seen_classes_from_custom_dataset_and_argument(tmp_path):
    folder = write_custom_dataset(tmp_path / "mine", ["cat", "sofa", "sky", "floor"], num_images=3,
                                  seen_classes=["cat", "sofa"])
    ds = get_dataset(folder)
    result = evaluate(OracleModel(ds), ds)
    split = result.metrics["seen_unseen"]
    assert split["seen_classes"] == 2 and split["unseen_classes"] == 2 and split["hIoU"] == pytest.approx(100.0)
    other = evaluate(ConstantModel(0), ds, seen_classes=["sky, heavens"])
    assert [row["seen"] for row in other.metrics["per_class"]] == [False, False, True, False]


def test_bad_model_and_bad_arguments(datasets_root):
    ds = get_dataset("ade150")

    class Wrong(ScoringModel):
        def predict(self, image, class_names, protocol="sliding"):
            return torch.zeros(3, *image.shape[1:])

    class DuckTyped:  # has predict, but is no OVSSModel: the contract is the one door
        def predict(self, image, class_names, protocol="sliding"):
            raise AssertionError("never called")

    with pytest.raises(AdapterError, match=r"model.predict returned \(3, 40, 56\) for .*expected scores of shape \(150, 40, 56\)"):
        evaluate(Wrong(), ds)
    with pytest.raises(AdapterError, match="^evaluate scores an OVSSModel .*, not a DuckTyped$"):
        evaluate(DuckTyped(), ds)
    with pytest.raises(InputError, match="unknown protocol 'tiles'"):
        evaluate(ConstantModel(0), ds, protocol="tiles")
    with pytest.raises(InputError, match="unknown mIoU formula"):
        evaluate(ConstantModel(0), ds, miou_formula="mean")


def test_a_broken_label_stops_with_its_name(writable_root):
    labels = writable_root / "ADEChallengeData2016/annotations_detectron2/validation"
    victim = sorted(labels.iterdir())[1]
    victim.write_bytes(b"truncated")
    with pytest.raises(DatasetError, match=f"cannot read {victim}"):
        evaluate(ConstantModel(0), get_dataset("ade150"))
