"""Confusion matrix and metrics against hand-computed values; the two mIoU formulas where they differ."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from infoclip.errors import InputError
from infoclip.evaluation import ConfusionMatrix, collapse_background, compute_metrics, harmonic_mean

# 3 classes. Ground truth holds classes 0 and 1 (plus 2 ignored pixels); class 2 is predicted once but absent.
LABEL = np.array([[0, 0, 0, 1], [1, 1, -1, -1]])
PRED = np.array([[0, 0, 2, 1], [1, 0, 2, 0]])
# rows = ground truth, columns = prediction, ignored pixels dropped
HAND_CONFUSION = np.array([[2, 0, 1], [1, 2, 0], [0, 0, 0]])


def test_confusion_matrix_by_hand():
    cm = ConfusionMatrix(3)
    cm.update(torch.from_numpy(PRED), torch.from_numpy(LABEL))
    np.testing.assert_array_equal(cm.numpy(), HAND_CONFUSION)
    cm.update(PRED, LABEL)  # numpy accepted; counts accumulate
    np.testing.assert_array_equal(cm.numpy(), 2 * HAND_CONFUSION)
    batch = ConfusionMatrix(3)
    batch.update(np.stack([PRED, PRED]), np.stack([LABEL, LABEL]))
    np.testing.assert_array_equal(batch.numpy(), cm.numpy())
    other = ConfusionMatrix(3)
    other.update(PRED[:1], LABEL[:1])
    np.testing.assert_array_equal(cm.merge(other).numpy(), 2 * HAND_CONFUSION + [[2, 0, 1], [0, 1, 0], [0, 0, 0]])
    unchecked = ConfusionMatrix(3)
    unchecked.update(PRED, LABEL, check=False)
    np.testing.assert_array_equal(unchecked.numpy(), HAND_CONFUSION)
    cm.reset()
    assert cm.numpy().sum() == 0


def test_metrics_by_hand_and_the_two_formulas_differ():
    m = compute_metrics(HAND_CONFUSION, ["a", "b", "c"])
    iou_a, iou_b = 2 / (3 + 3 - 2), 2 / (3 + 2 - 2)  # TP / (GT + PRED - TP)
    assert m["miou_formula"] == "present"
    assert m["mIoU"] == pytest.approx(100 * (iou_a + iou_b) / 2)  # 58.33: over the 2 classes in the GT
    assert m["mIoU_by_formula"]["d2-v0.6"] == pytest.approx(100 * (iou_a + iou_b) / 3)  # 38.89: c counts as 0
    assert m["pAcc"] == pytest.approx(100 * 4 / 6)
    assert m["mAcc"] == pytest.approx(100 * (2 / 3 + 2 / 3) / 2)
    assert m["fwIoU"] == pytest.approx(100 * (0.5 * iou_a + 0.5 * iou_b))
    assert m["classes_in_ground_truth"] == 2 and m["classes_predicted_not_in_ground_truth"] == 1
    rows = m["per_class"]
    assert rows[0]["iou"] == pytest.approx(50.0) and rows[1]["acc"] == pytest.approx(100 * 2 / 3)
    assert math.isnan(rows[2]["iou"]) and rows[2]["pred_pixels"] == 1 and rows[2]["gt_pixels"] == 0
    old = compute_metrics(HAND_CONFUSION, ["a", "b", "c"], formula="d2-v0.6")
    assert old["mIoU"] == pytest.approx(100 * (iou_a + iou_b) / 3) and old["miou_formula"] == "d2-v0.6"
    assert old["fwIoU"] == m["fwIoU"] and old["pAcc"] == m["pAcc"]
    with pytest.raises(InputError, match="unknown mIoU formula 'v0.7'"):
        compute_metrics(HAND_CONFUSION, ["a", "b", "c"], formula="v0.7")


def test_seen_unseen_harmonic_mean_by_hand():
    m = compute_metrics(HAND_CONFUSION, ["a", "b", "c"], seen=[True, False, False])
    split = m["seen_unseen"]
    assert split["mIoU_seen"] == pytest.approx(50.0)
    assert split["mIoU_unseen"] == pytest.approx(100 * 2 / 3)  # class c is absent from the GT: not averaged
    assert split["hIoU"] == pytest.approx(2 * 50 * (200 / 3) / (50 + 200 / 3))
    old = compute_metrics(HAND_CONFUSION, ["a", "b", "c"], formula="d2-v0.6", seen=[True, False, False])
    assert old["seen_unseen"]["mIoU_unseen"] == pytest.approx(100 * (2 / 3) / 2)  # c predicted: counts as 0
    assert [r["seen"] for r in m["per_class"]] == [True, False, False]
    assert math.isnan(harmonic_mean(math.nan, 3.0)) and math.isnan(harmonic_mean(0.0, 0.0))


def test_empty_and_invalid_inputs():
    m = compute_metrics(np.zeros((2, 2), dtype=np.int64), ["a", "b"])
    assert math.isnan(m["mIoU"]) and math.isnan(m["pAcc"])
    cm = ConfusionMatrix(3)
    with pytest.raises(InputError, match="differs from label shape"):
        cm.update(np.zeros((2, 2), dtype=np.int64), np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(InputError, match=r"predictions must be class indices in 0\.\.2, got values 0\.\.3"):
        cm.update(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(InputError, match=r"labels must be class indices in 0\.\.2 or -1, got values -2\.\.1"):
        cm.update(np.array([0, 1]), np.array([-2, 1]))
    with pytest.raises(InputError, match="integer class indices"):
        cm.update(np.zeros(2, dtype=np.float32), np.zeros(2, dtype=np.int64))
    with pytest.raises(InputError, match="2 class names for a 3-class"):
        compute_metrics(HAND_CONFUSION, ["a", "b"])


def test_voc20b_collapse():
    pred = torch.tensor([0, 19, 20, 21, 40, 58])
    assert collapse_background(pred, 20).tolist() == [0, 19, 20, 20, 20, 20]


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 12), n=st.integers(1, 300), seed=st.integers(0, 2**31 - 1))
def test_bincount_matches_a_plain_loop(k, n, seed):
    rng = np.random.default_rng(seed)
    label = rng.integers(-1, k, size=n)
    pred = rng.integers(0, k, size=n)
    expected = np.zeros((k, k), dtype=np.int64)
    for g, p in zip(label, pred):
        if g >= 0:
            expected[g, p] += 1
    cm = ConfusionMatrix(k)
    cm.update(pred, label)
    np.testing.assert_array_equal(cm.numpy(), expected)
