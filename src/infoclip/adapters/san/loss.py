"""SAN's training loss: the shared Mask2Former set criterion (``infoclip.mask_classification``) on SAN's
outputs, with semantic label maps turned into one target mask per class present.

Random points (matching and importance sampling) come from torch's global generator, whose state the
training engine saves per process and restores on resume, so a resumed run draws the same points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from infoclip.errors import InputError

IGNORE_INDEX = -1  # infoclip.data.IGNORE_INDEX


def _criterion(model: Any, num_classes: int):  # noqa: ANN202 - SetCriterion, imported lazily
    from infoclip.mask_classification import SetCriterion, SetCriterionConfig

    cached = getattr(model, "_criterion", None)
    if cached is None or cached.config.num_classes != num_classes:
        loss = dict(model.config["loss"])
        cached = SetCriterion(SetCriterionConfig.from_mapping(loss, num_classes=num_classes))
        object.__setattr__(model, "_criterion", cached)  # not a submodule: its buffer never enters the state dict
    return cached


def san_set_loss(model: Any, outputs: Mapping[str, Any], labels: torch.Tensor) -> torch.Tensor:
    """The weighted sum of class CE, mask BCE and dice over SAN's final and auxiliary outputs.

    Args:
        model: the ``SAN`` model (for its ``loss`` config and size divisibility).
        outputs: ``pred_logits`` (B, Q, T + 1), ``pred_masks`` (B, Q, h, w), ``aux_outputs``.
        labels: (B, H, W) int64 in {-1, 0, ..., T-1} at the model's input size; -1 = ignore (no target).

    Returns:
        Scalar float32 loss.
    """
    from infoclip.mask_classification.targets import batch_semantic_targets

    if not isinstance(outputs, Mapping) or "pred_logits" not in outputs:
        raise InputError("SAN's task loss takes the outputs dict of SAN.forward_outputs (pred_logits, pred_masks, aux_outputs)")
    if labels.ndim != 3 or labels.dtype != torch.long or labels.shape[0] != outputs["pred_logits"].shape[0]:
        raise InputError(f"labels must be int64 (B, H, W) with the outputs' batch size, got {tuple(labels.shape)} {labels.dtype}")
    num_classes = outputs["pred_logits"].shape[-1] - 1
    if labels.numel() and (labels.min() < IGNORE_INDEX or labels.max() >= num_classes):
        raise InputError(f"labels must lie in [-1, {num_classes - 1}] for {num_classes} classes, got [{int(labels.min())}, {int(labels.max())}]")
    div = model.config["inference"]["size_divisibility"]
    pad_h, pad_w = (-labels.shape[-2]) % div, (-labels.shape[-1]) % div
    if pad_h or pad_w:  # targets live on the padded image, as the official prepare_targets pads them
        labels = F.pad(labels, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
    targets = batch_semantic_targets(labels, num_classes)
    return _criterion(model, num_classes)(outputs, targets).total.float()
