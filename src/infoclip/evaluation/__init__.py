"""Evaluation: streaming confusion matrix, mIoU with a named formula, seen/unseen split, ``evaluate``.

    >>> from infoclip.data import get_dataset                          # doctest: +SKIP
    >>> from infoclip.evaluation import evaluate
    >>> result = evaluate(model, get_dataset("ade150"), protocol="sliding")
    >>> result.miou, result.formula
    (31.8, 'present')
    >>> result.write("runs/eval/ade150")   # metrics.json + per_class.csv
"""

from infoclip.evaluation.confusion import ConfusionMatrix
from infoclip.evaluation.evaluator import EvalResult, collapse_background, evaluate
from infoclip.evaluation.metrics import (
    DEFAULT_FORMULA,
    MIOU_FORMULAS,
    compute_metrics,
    harmonic_mean,
    mean_iou,
    per_class_iou,
    seen_unseen,
)
from infoclip.runtime import PROTOCOLS

__all__ = [
    "DEFAULT_FORMULA",
    "MIOU_FORMULAS",
    "PROTOCOLS",
    "ConfusionMatrix",
    "EvalResult",
    "collapse_background",
    "compute_metrics",
    "evaluate",
    "harmonic_mean",
    "mean_iou",
    "per_class_iou",
    "seen_unseen",
]
