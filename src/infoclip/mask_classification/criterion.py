"""The Mask2Former set criterion (as SAN and FC-CLIP train with it), with deep supervision.

For the final decoder output and each auxiliary one, separately: Hungarian matching (:mod:`.matcher`), then

- ``loss_ce``: cross-entropy over K+1 classes, unmatched queries labelled "no object" (K), class weights 1 and
  ``no_object_weight`` for K, weighted mean over all queries of the batch;
- ``loss_mask``: BCE of each matched mask on ``num_points`` importance-sampled points (mean over points), summed
  over matched masks and divided by ``num_masks``;
- ``loss_dice``: dice on the same points, summed and divided by ``num_masks``.

``num_masks`` is the number of targets in the batch, averaged over DDP processes, at least 1. Auxiliary terms get
the suffix ``_i`` (i = position in ``aux_outputs``). Point choice and target reading run without gradients; the
gradient flows through the predicted logits read at those points. All losses are float32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from infoclip.errors import ConfigError
from infoclip.mask_classification.losses import dice_loss, sigmoid_bce_loss
from infoclip.mask_classification.matcher import HungarianMatcher, Match, MatchCosts, check_predictions
from infoclip.mask_classification.point_sampling import point_sample, uncertain_points_with_randomness
from infoclip.mask_classification.targets import MaskTargets


@dataclass(frozen=True)
class SetCriterionConfig:
    """Loss weights, matching costs and point sampling; defaults are SAN's and FC-CLIP's official values.

    The matching costs default to the loss weights (as in the official configs) when left at ``None``.
    """

    num_classes: int
    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    no_object_weight: float = 0.1
    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    deep_supervision: bool = True
    match_class_weight: float | None = None
    match_mask_weight: float | None = None
    match_dice_weight: float | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ConfigError(f"the set criterion needs at least one class; got num_classes={self.num_classes}")
        if min(self.class_weight, self.mask_weight, self.dice_weight, self.no_object_weight) < 0:
            raise ConfigError("set criterion loss weights must not be negative")
        if self.num_points < 1 or self.oversample_ratio < 1 or not 0 <= self.importance_sample_ratio <= 1:
            raise ConfigError(
                "set criterion point sampling needs num_points >= 1, oversample_ratio >= 1 and importance_sample_ratio "
                f"in [0, 1]; got {self.num_points}, {self.oversample_ratio}, {self.importance_sample_ratio}"
            )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], num_classes: int | None = None) -> SetCriterionConfig:
        """Build from a config section (e.g. a preset's ``criterion:``); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown set criterion setting(s) {unknown}; known: {sorted(known)}")
        merged = dict(values)
        if num_classes is not None:
            merged["num_classes"] = num_classes
        if "num_classes" not in merged:
            raise ConfigError("the set criterion needs num_classes")
        return cls(**merged)

    def match_costs(self) -> MatchCosts:
        def pick(value: float | None, default: float) -> float:
            return default if value is None else value

        return MatchCosts(
            class_weight=pick(self.match_class_weight, self.class_weight),
            mask_weight=pick(self.match_mask_weight, self.mask_weight),
            dice_weight=pick(self.match_dice_weight, self.dice_weight),
            num_points=self.num_points,
        )


@dataclass
class SetLoss:
    """What one criterion call computed.

    terms: unweighted float32 scalars, ``loss_ce``/``loss_mask``/``loss_dice`` and ``<name>_<i>`` per aux output.
    weighted: the same keys times their weights; total: their sum (the training loss).
    matches: per output (final first, then aux in order), one :data:`Match` per image.
    num_masks: the normaliser used.
    """

    terms: dict[str, torch.Tensor]
    weighted: dict[str, torch.Tensor]
    total: torch.Tensor
    matches: list[list[Match]]
    num_masks: float


def _batch_targets_masks(targets: Sequence[MaskTargets], like: torch.Tensor) -> list[torch.Tensor]:
    """Target masks padded (bottom/right, zeros) to the batch's largest size, as the official criterion does."""
    height = max(int(t.masks.shape[-2]) for t in targets)
    width = max(int(t.masks.shape[-1]) for t in targets)
    padded = []
    for target in targets:
        masks = target.masks.to(device=like.device, dtype=like.dtype)
        h, w = masks.shape[-2:]
        padded.append(F.pad(masks, (0, width - w, 0, height - h)) if (h, w) != (height, width) else masks)
    return padded


class SetCriterion(nn.Module):
    """Hungarian set loss over the final and auxiliary (class, mask) predictions of a query decoder.

    ``empty_weight`` (K+1,) is a buffer (1 everywhere, ``no_object_weight`` at K), as in the official modules.
    """

    empty_weight: torch.Tensor

    def __init__(self, config: SetCriterionConfig) -> None:
        super().__init__()
        self.config = config
        self.matcher = HungarianMatcher(config.match_costs())
        weight = torch.ones(config.num_classes + 1)
        weight[-1] = config.no_object_weight
        self.register_buffer("empty_weight", weight)
        self.weights = {"loss_ce": config.class_weight, "loss_mask": config.mask_weight, "loss_dice": config.dice_weight}

    def class_loss(self, logits: torch.Tensor, targets: Sequence[MaskTargets], matches: Sequence[Match]) -> torch.Tensor:
        """Weighted-mean cross-entropy of logits (B, Q, K+1) against matched labels / no-object."""
        classes = torch.full(logits.shape[:2], self.config.num_classes, dtype=torch.int64, device=logits.device)
        for index, (target, (rows, cols)) in enumerate(zip(targets, matches)):
            classes[index, rows.to(logits.device)] = target.labels.to(logits.device)[cols.to(logits.device)]
        return F.cross_entropy(logits.float().transpose(1, 2), classes, self.empty_weight.to(logits.device))

    def mask_losses(
        self,
        masks: torch.Tensor,
        targets: Sequence[MaskTargets],
        matches: Sequence[Match],
        num_masks: float,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(BCE, dice) of matched masks (B, Q, h, w) against their targets on importance-sampled points."""
        if sum(len(rows) for rows, _ in matches) == 0:
            # No pair to compare: zero, still attached to the graph so every parameter gets a (zero) gradient.
            zero = masks.sum().float() * 0.0
            return zero, zero.clone()
        padded = _batch_targets_masks(targets, masks)
        batch_rows = torch.cat([torch.full_like(rows, i) for i, (rows, _) in enumerate(matches)]).to(masks.device)
        query_rows = torch.cat([rows for rows, _ in matches]).to(masks.device)
        chosen = masks[batch_rows, query_rows][:, None]
        target_masks = torch.cat([padded[i][cols.to(masks.device)] for i, (_, cols) in enumerate(matches)])[:, None]
        with torch.no_grad():
            points = uncertain_points_with_randomness(
                chosen,
                self.config.num_points,
                self.config.oversample_ratio,
                self.config.importance_sample_ratio,
                generator,
            )
            point_targets = point_sample(target_masks, points)[:, 0]
        point_logits = point_sample(chosen, points)[:, 0]
        return sigmoid_bce_loss(point_logits, point_targets, num_masks), dice_loss(point_logits, point_targets, num_masks)

    def num_masks(self, targets: Sequence[MaskTargets], device: torch.device) -> float:
        """Targets in the batch, averaged over DDP processes, at least 1."""
        count = torch.tensor([float(sum(len(t) for t in targets))], device=device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(count)
            count = count / dist.get_world_size()
        return float(torch.clamp(count, min=1).item())

    def output_losses(
        self,
        logits: torch.Tensor,
        masks: torch.Tensor,
        targets: Sequence[MaskTargets],
        num_masks: float,
        generator: torch.Generator | None,
    ) -> tuple[dict[str, torch.Tensor], list[Match]]:
        """The three terms of one decoder output: logits (B, Q, K+1), masks (B, Q, h, w)."""
        check_predictions(logits, masks, targets)
        if logits.shape[2] != self.config.num_classes + 1:
            raise ValueError(
                f"class logits have {logits.shape[2]} entries per query; the criterion expects num_classes + 1 = "
                f"{self.config.num_classes + 1} (the last one no-object)"
            )
        matches = self.matcher(logits, masks, targets, generator)
        bce, dice = self.mask_losses(masks, targets, matches, num_masks, generator)
        return {"loss_ce": self.class_loss(logits, targets, matches), "loss_mask": bce, "loss_dice": dice}, matches

    def forward(
        self,
        outputs: Mapping[str, Any],
        targets: Sequence[MaskTargets],
        generator: torch.Generator | None = None,
    ) -> SetLoss:
        """Loss of a batch.

        outputs: ``pred_logits`` (B, Q, K+1) float class logits (last = no object), ``pred_masks`` (B, Q, h, w)
        float mask logits at any resolution, optional ``aux_outputs``: a list of dicts with the same two keys
        (used when ``deep_supervision``). targets: B :class:`MaskTargets`, masks at the input resolution.
        generator: source of every random point (matching, then sampling, output by output); ``None`` = the
        global generator. Random draws happen in the official order, so a seeded global generator reproduces
        the official criterion exactly.
        """
        if "pred_logits" not in outputs or "pred_masks" not in outputs:
            raise ValueError(f"outputs need 'pred_logits' and 'pred_masks'; got keys {sorted(outputs)}")
        heads = [(outputs["pred_logits"], outputs["pred_masks"], "")]
        if self.config.deep_supervision:
            for i, aux in enumerate(outputs.get("aux_outputs") or []):
                heads.append((aux["pred_logits"], aux["pred_masks"], f"_{i}"))
        num_masks = self.num_masks(targets, outputs["pred_logits"].device)
        like = outputs["pred_masks"]
        # One conversion for every output (up to 10 with FC-CLIP), instead of one per matcher and loss call.
        targets = [MaskTargets(t.labels.to(like.device), t.masks.to(device=like.device, dtype=like.dtype)) for t in targets]
        terms: dict[str, torch.Tensor] = {}
        weighted: dict[str, torch.Tensor] = {}
        all_matches: list[list[Match]] = []
        for logits, masks, suffix in heads:
            losses, matches = self.output_losses(logits, masks, targets, num_masks, generator)
            all_matches.append(matches)
            for name, value in losses.items():
                terms[name + suffix] = value
                weighted[name + suffix] = value * self.weights[name]
        total = torch.stack(list(weighted.values())).sum()
        return SetLoss(terms=terms, weighted=weighted, total=total, matches=all_matches, num_masks=num_masks)
