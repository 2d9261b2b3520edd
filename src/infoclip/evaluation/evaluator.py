"""``evaluate``: run a model's published prediction protocol over a dataset and score it.

The same function serves ``infoclip eval`` and validation during training, so the numbers agree
(CAT-Seg validated with another protocol than it published; see catseg-reference §7, pain point 4).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from infoclip.adapters.contract import OVSSModel, check_class_list
from infoclip.data.dataset import SegmentationDataset
from infoclip.data.vocab import match_classes
from infoclip.errors import AdapterError, InputError
from infoclip.evaluation.confusion import ConfusionMatrix
from infoclip.evaluation.metrics import DEFAULT_FORMULA, check_formula, compute_metrics
from infoclip.io_utils import atomic_write_text

if TYPE_CHECKING:
    from infoclip.segmentation.options import SegmentOptions

ProgressFn = Callable[[int, int], None]
METRICS_FILE = "metrics.json"
PER_CLASS_FILE = "per_class.csv"


def collapse_background(pred: torch.Tensor, background_index: int) -> torch.Tensor:
    """VOC-20b scoring (CAT-Seg's ``VOCbEvaluator``): every predicted class ``>= background_index`` is background.

    Args:
        pred: integer class indices over the full vocabulary (VOC-20b: 0..58).
        background_index: the background class (VOC-20b: 20).

    Returns:
        A tensor like ``pred`` with values in ``0..background_index``.
    """
    return pred.clamp(max=background_index)


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None (JSON has no NaN), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class EvalResult:
    """Metrics of one dataset split. ``metrics`` holds what ``compute_metrics`` returns.

    ``confusion`` is the (K, K) int64 matrix (rows ground truth, columns prediction) the metrics come
    from; to combine workers, sum their matrices and call ``with_confusion``.
    """

    dataset: str
    title: str
    split: str
    protocol: str
    class_names: list[str]
    confusion: np.ndarray
    num_images: int
    seconds: float
    metrics: dict[str, Any]
    seen: list[bool] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def miou(self) -> float:
        return float(self.metrics["mIoU"])

    @property
    def formula(self) -> str:
        return str(self.metrics["miou_formula"])

    def with_confusion(self, confusion: np.ndarray, num_images: int | None = None) -> EvalResult:
        """A copy whose metrics are recomputed from ``confusion`` (e.g. summed over DDP ranks)."""
        metrics = compute_metrics(confusion, self.class_names, self.formula, self.seen)
        return EvalResult(
            self.dataset, self.title, self.split, self.protocol, self.class_names, np.asarray(confusion),
            self.num_images if num_images is None else num_images, self.seconds, metrics, self.seen, dict(self.extra),
        )

    def best_and_worst(self, n: int = 5) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The ``n`` classes with the highest and the lowest IoU among classes present in the ground truth."""
        scored = sorted((row for row in self.metrics["per_class"] if not math.isnan(row["iou"])), key=lambda r: r["iou"])
        return scored[::-1][:n], scored[:n]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the metrics plus dataset, protocol, image count and timing (NaN -> null)."""
        payload = {
            "dataset": self.dataset,
            "title": self.title,
            "split": self.split,
            "protocol": self.protocol,
            "num_images": self.num_images,
            "seconds": round(self.seconds, 3),
            "seconds_per_image": round(self.seconds / self.num_images, 4) if self.num_images else None,
            **self.metrics,
            **({"extra": self.extra} if self.extra else {}),
        }
        return _json_safe(payload)

    def per_class_csv(self) -> str:
        """The per-class table as CSV text (index, name, iou, acc, gt_pixels, pred_pixels, seen)."""
        buffer = io.StringIO()
        columns = ["index", "name", "iou", "acc", "gt_pixels", "pred_pixels", "seen"]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.metrics["per_class"]:
            writer.writerow({c: ("" if row[c] is None or (isinstance(row[c], float) and math.isnan(row[c])) else row[c]) for c in columns})
        return buffer.getvalue()

    def write(self, output_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``metrics.json`` and ``per_class.csv`` into ``output_dir`` atomically; returns both paths."""
        output_dir = Path(output_dir)
        metrics_path = atomic_write_text(output_dir / METRICS_FILE, json.dumps(self.to_json(), indent=2) + "\n")
        csv_path = atomic_write_text(output_dir / PER_CLASS_FILE, self.per_class_csv())
        return metrics_path, csv_path


def _model_device(model: torch.nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def evaluate(
    model: OVSSModel,
    dataset: SegmentationDataset,
    protocol: str | None = None,
    *,
    limit: int | None = None,
    indices: Sequence[int] | None = None,
    miou_formula: str = DEFAULT_FORMULA,
    seen_classes: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
    device: str | torch.device | None = None,
    extra: dict[str, Any] | None = None,
    options: SegmentOptions | None = None,
) -> EvalResult:
    """Predict every image of ``dataset`` with ``model.predict`` and score the argmax against the labels.

    Args:
        model: an ``OVSSModel`` (this is one of its validation entry points: ``predict`` gets checked inputs).
            It is put in eval mode for the run and its previous mode is restored afterwards.
        dataset: the split to score; the model sees ``dataset.class_names`` (VOC-20b: 59 names) and the
            scores cover ``dataset.eval_class_names`` (VOC-20b: 20 classes + background).
        protocol: one of the model's ``protocols`` (``None``: its default, the published one).
        limit: score the first ``limit`` images only.
        indices: score these sample indices (e.g. one rank's shard) instead; combined with ``limit``.
        miou_formula: ``"present"`` (default, CAT-Seg's published numbers) or ``"d2-v0.6"``.
        seen_classes: names of classes seen in training for the seen/unseen split (default: the dataset's
            ``seen_classes`` if it declares them); matched by comma-separated synonyms.
        progress: called as ``progress(done, total)`` after each image.
        device: where images go (default: the model's device).
        extra: free-form metadata copied into the result (weights file, adapter ...).
        options: opt-in prediction options (``infoclip.segmentation.options``; templates, synonyms, TTA,
            background threshold, vocabulary expansion); recorded in ``extra["options"]``. Pixels predicted
            as background or "other" count as misses of their ground-truth class (the confusion matrix then
            has a last "no class" column). ``None`` or the defaults: the published protocol.

    Raises:
        InputError: unknown protocol or formula, empty selection.
        AdapterError: ``model`` is not an ``OVSSModel``, or ``predict`` returned something other than (T, H, W) scores.
        DatasetError: an image or label is missing, unreadable, of the wrong size or out of range.
    """
    if not isinstance(model, OVSSModel):
        raise AdapterError(
            f"evaluate scores an OVSSModel (an adapter's model or the dense-CLIP baseline), not a {type(model).__name__}"
        )
    protocol = model.check_protocol(protocol)
    check_formula(miou_formula)
    selected = list(range(len(dataset))) if indices is None else list(indices)
    if limit is not None:
        if limit < 1:
            raise InputError(f"the image limit must be at least 1, got {limit}", parameter="limit")
        selected = selected[:limit]
    if not selected:
        raise InputError(f"no image of {dataset.name} selected for evaluation")
    spec = dataset.spec
    class_names = check_class_list(dataset.class_names)
    eval_names = dataset.eval_class_names
    seen_names = seen_classes if seen_classes is not None else spec.seen_classes
    seen = match_classes(eval_names, seen_names) if seen_names is not None else None
    device = torch.device(device) if device is not None else _model_device(model) if isinstance(model, torch.nn.Module) else torch.device("cpu")
    predictor = None
    no_class = False
    if (options is not None and not options.is_default) or any("|" in name for name in class_names):
        from infoclip.segmentation.options import OptionedPredictor

        predictor = OptionedPredictor(model, options)
        no_class = options is not None and (options.background_threshold is not None or options.expand_vocab is not None)
    k = len(eval_names)
    confusion = ConfusionMatrix(k + 1 if no_class else k, device=device)
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    start = time.perf_counter()
    try:
        with torch.no_grad():
            for done, index in enumerate(selected, start=1):
                sample = dataset[index]
                image = torch.from_numpy(sample.image).to(device).permute(2, 0, 1).float()
                if predictor is not None:
                    pred = predictor.predict_labels(image, class_names, protocol)
                else:
                    scores = model.predict(image, class_names, protocol)
                    expected = (len(class_names), *sample.label.shape)
                    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != expected:
                        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                        raise AdapterError(f"model.predict returned {got} for {sample.name}; expected scores of shape {expected}")
                    pred = scores.argmax(dim=0)
                if spec.background_index is not None:
                    pred = collapse_background(pred, spec.background_index)
                if no_class:
                    pred = torch.where(pred < 0, torch.full_like(pred, k), pred)
                # ranges are guaranteed: argmax over the checked (T, H, W) scores, labels validated on reading
                confusion.update(pred, torch.from_numpy(sample.label), check=False)
                if progress is not None:
                    progress(done, len(selected))
    finally:
        if was_training:
            model.train()
    seconds = time.perf_counter() - start
    matrix = confusion.numpy()
    if no_class:
        matrix = matrix[:k]  # (K, K + 1): no ground truth is "no class"
    if options is not None:
        extra = {**(extra or {}), "options": options.describe()}
    return EvalResult(
        dataset=dataset.name,
        title=spec.title,
        split=dataset.split,
        protocol=protocol,
        class_names=eval_names,
        confusion=matrix,
        num_images=len(selected),
        seconds=seconds,
        metrics=compute_metrics(matrix, eval_names, miou_formula, seen),
        seen=seen,
        extra=dict(extra or {}),
    )
