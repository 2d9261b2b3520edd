"""Segmentation metrics from a confusion matrix, with the mIoU formula named explicitly.

Two mIoU formulas are in use for the same detectron2 ``SemSegEvaluator`` (catseg-reference §3.2):

* ``present`` (default): mean IoU over the classes present in the ground truth. detectron2's git main
  since July 2022, which CAT-Seg installs and whose numbers it publishes.
* ``d2-v0.6``: the tagged detectron2 v0.6 release (and its wheels): the IoUs of classes present in the
  ground truth are summed and divided by the number of classes present in the ground truth *or* in the
  predictions, so a class predicted but absent counts as 0. It gives lower numbers on A-847 and PC-459.

Per-class IoU and accuracy are NaN (``null`` in JSON) for classes absent from the ground truth in both.
Pixel accuracy, mean accuracy and frequency-weighted IoU are the same in both formulas.
All values are percentages, as detectron2 reports them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from infoclip.errors import InputError

MIOU_FORMULAS: dict[str, str] = {
    "present": "mean over classes present in the ground truth (detectron2 main; CAT-Seg's published numbers)",
    "d2-v0.6": "classes predicted but absent from the ground truth count as 0 (detectron2 v0.6 release)",
}
DEFAULT_FORMULA = "present"


def check_formula(formula: str) -> str:
    if formula not in MIOU_FORMULAS:
        raise InputError(f"unknown mIoU formula {formula!r}; choose one of: {', '.join(MIOU_FORMULAS)}")
    return formula


def _counts(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """tp, gt, pred counts per class of a (K, K) matrix, or of a (K, K + 1) one whose last column counts pixels
    predicted as no class (a background threshold or a vocabulary's "other"): misses of their ground truth."""
    confusion = np.asarray(confusion)
    if confusion.ndim != 2 or confusion.shape[1] not in (confusion.shape[0], confusion.shape[0] + 1):
        raise InputError(f"confusion matrix must be (K, K) or (K, K + 1), got shape {confusion.shape}")
    k = confusion.shape[0]
    tp = np.diag(confusion[:, :k]).astype(np.float64)
    gt = confusion.sum(axis=1).astype(np.float64)
    pred = confusion[:, :k].sum(axis=0).astype(np.float64)
    return tp, gt, pred


def per_class_iou(tp: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU per class in [0, 1]; NaN where the class is absent from the ground truth."""
    iou = np.full(tp.shape, np.nan)
    present = gt > 0
    iou[present] = tp[present] / (gt[present] + pred[present] - tp[present])
    return iou


def mean_iou(
    iou: np.ndarray, gt: np.ndarray, pred: np.ndarray, formula: str = DEFAULT_FORMULA, subset: np.ndarray | None = None
) -> float:
    """mIoU in [0, 1] with ``formula`` over all classes or the boolean ``subset``; NaN if nothing counts."""
    check_formula(formula)
    mask = np.ones(iou.shape, dtype=bool) if subset is None else np.asarray(subset, dtype=bool)
    present = mask & (gt > 0)
    if formula == "present":
        denominator = int(present.sum())
    else:
        denominator = int((mask & ((gt + pred) > 0)).sum())
    return float(iou[present].sum() / denominator) if denominator else math.nan


def harmonic_mean(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or a + b == 0:
        return math.nan
    return 2 * a * b / (a + b)


def compute_metrics(
    confusion: np.ndarray,
    class_names: Sequence[str],
    formula: str = DEFAULT_FORMULA,
    seen: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """All metrics of a (K, K) confusion matrix (rows ground truth, columns prediction).

    Returns a dict with ``mIoU``, ``fwIoU``, ``mAcc``, ``pAcc`` (percent, NaN when no pixel counted),
    ``miou_formula`` and its description, ``mIoU_by_formula`` (both formulas, for reference),
    ``classes_in_ground_truth``, ``classes_predicted_not_in_ground_truth``, ``per_class`` (list of dicts:
    index, name, iou, acc, gt_pixels, pred_pixels, seen) and ``seen_unseen`` (``None`` unless ``seen``
    marks each class as seen in training: then mIoU of seen and unseen classes and their harmonic mean).
    """
    check_formula(formula)
    tp, gt, pred = _counts(confusion)
    k = tp.shape[0]
    if len(class_names) != k:
        raise InputError(f"{len(class_names)} class names for a {k}-class confusion matrix")
    iou = per_class_iou(tp, gt, pred)
    present = gt > 0
    acc = np.full(k, np.nan)
    acc[present] = tp[present] / gt[present]
    total = gt.sum()
    weights = gt / total if total > 0 else np.zeros(k)
    by_formula = {name: 100 * mean_iou(iou, gt, pred, name) for name in MIOU_FORMULAS}
    result: dict[str, Any] = {
        "mIoU": by_formula[formula],
        "fwIoU": 100 * float(np.sum(iou[present] * weights[present])) if total > 0 else math.nan,
        "mAcc": 100 * float(np.mean(acc[present])) if present.any() else math.nan,
        "pAcc": 100 * float(tp.sum() / total) if total > 0 else math.nan,
        "miou_formula": formula,
        "miou_formula_description": MIOU_FORMULAS[formula],
        "mIoU_by_formula": by_formula,
        "num_classes": k,
        "classes_in_ground_truth": int(present.sum()),
        "classes_predicted_not_in_ground_truth": int(((pred > 0) & ~present).sum()),
        "pixels": int(total),
    }
    seen_mask = None if seen is None else np.asarray(seen, dtype=bool)
    if seen_mask is not None and seen_mask.shape != (k,):
        raise InputError(f"seen mask must have one entry per class ({k}), got {seen_mask.shape}")
    result["per_class"] = [
        {
            "index": i,
            "name": class_names[i],
            "iou": 100 * float(iou[i]),
            "acc": 100 * float(acc[i]),
            "gt_pixels": int(gt[i]),
            "pred_pixels": int(pred[i]),
            "seen": None if seen_mask is None else bool(seen_mask[i]),
        }
        for i in range(k)
    ]
    result["seen_unseen"] = None if seen_mask is None else seen_unseen(iou, gt, pred, seen_mask, formula)
    return result


def seen_unseen(
    iou: np.ndarray, gt: np.ndarray, pred: np.ndarray, seen: np.ndarray, formula: str = DEFAULT_FORMULA
) -> dict[str, Any]:
    """mIoU over seen and over unseen classes (same ``formula``) and their harmonic mean hIoU, in percent."""
    seen = np.asarray(seen, dtype=bool)
    s = 100 * mean_iou(iou, gt, pred, formula, seen)
    u = 100 * mean_iou(iou, gt, pred, formula, ~seen)
    return {
        "seen_classes": int(seen.sum()),
        "unseen_classes": int((~seen).sum()),
        "mIoU_seen": s,
        "mIoU_unseen": u,
        "hIoU": harmonic_mean(s, u),
    }
