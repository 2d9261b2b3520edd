"""Hungarian matching of predicted (class, mask) queries to an image's target masks.

Per image: cost[q, n] = class_weight·(-softmax(logits_q)[label_n]) + mask_weight·BCE + dice_weight·dice, the two
mask costs on ``num_points`` uniform points shared by every query and target of the image, in float32; solved with
``scipy.optimize.linear_sum_assignment``. Each target gets one query; the other queries are "no object".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from scipy.optimize import linear_sum_assignment

from infoclip.errors import TrainingError
from infoclip.mask_classification.losses import pairwise_dice, pairwise_sigmoid_bce
from infoclip.mask_classification.point_sampling import point_sample, random_points
from infoclip.mask_classification.targets import MaskTargets

#: per image: (query indices, target indices), int64 (K,) each, K = min(queries, targets), queries ascending
Match = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class MatchCosts:
    """Weights of the three matching costs and the number of shared points (Mask2Former/SAN/FC-CLIP values)."""

    class_weight: float = 2.0
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    num_points: int = 12544

    def __post_init__(self) -> None:
        if min(self.class_weight, self.mask_weight, self.dice_weight) < 0:
            raise ValueError("matching cost weights must not be negative")
        if self.class_weight == self.mask_weight == self.dice_weight == 0:
            raise ValueError("at least one matching cost weight must be positive")
        if self.num_points < 1:
            raise ValueError(f"matching needs at least one point; got num_points={self.num_points}")


def check_predictions(logits: torch.Tensor, masks: torch.Tensor, targets: Sequence[MaskTargets]) -> None:
    """Raise ValueError unless logits (B, Q, K+1), masks (B, Q, h, w) and B targets fit together."""
    if logits.dim() != 3 or masks.dim() != 4 or logits.shape[:2] != masks.shape[:2]:
        raise ValueError(
            f"predictions must be class logits (B, Q, K+1) and mask logits (B, Q, h, w) with the same B and Q; got "
            f"{tuple(logits.shape)} and {tuple(masks.shape)}"
        )
    if len(targets) != logits.shape[0]:
        raise ValueError(f"got {len(targets)} target sets for a batch of {logits.shape[0]} images")
    num_foreground = logits.shape[2] - 1
    for index, target in enumerate(targets):
        if len(target) and (int(target.labels.min()) < 0 or int(target.labels.max()) >= num_foreground):
            raise ValueError(
                f"image {index}: target class ids must lie in [0, {num_foreground - 1}] (the last logit is no-object); "
                f"got {target.labels.tolist()}"
            )


class HungarianMatcher:
    """Optimal one-to-one assignment of queries to targets, image by image (no gradients)."""

    def __init__(self, costs: MatchCosts | None = None) -> None:
        self.costs = costs or MatchCosts()

    def cost_matrix(
        self,
        logits: torch.Tensor,
        masks: torch.Tensor,
        target: MaskTargets,
        points: torch.Tensor,
    ) -> torch.Tensor:
        """float32 (Q, N) cost of one image: logits (Q, K+1), masks (Q, h, w), points (1, P, 2) in [0, 1].

        Computed with autocast off (the official matcher's ``autocast(enabled=False)``): under mixed precision the
        pairwise products would otherwise run in half precision and can change the matching.
        """
        probs = logits.float().softmax(-1)
        class_cost = -probs[:, target.labels]
        target_masks = target.masks.to(device=masks.device, dtype=masks.dtype)
        target_points = point_sample(target_masks[:, None], points.expand(len(target), -1, -1))[:, 0]
        query_points = point_sample(masks[:, None], points.expand(masks.shape[0], -1, -1))[:, 0]
        with torch.autocast(device_type=masks.device.type, enabled=False):
            return (
                self.costs.mask_weight * pairwise_sigmoid_bce(query_points, target_points)
                + self.costs.class_weight * class_cost
                + self.costs.dice_weight * pairwise_dice(query_points, target_points)
            )

    @torch.no_grad()
    def __call__(
        self,
        logits: torch.Tensor,
        masks: torch.Tensor,
        targets: Sequence[MaskTargets],
        generator: torch.Generator | None = None,
    ) -> list[Match]:
        """Match each image's queries to its targets.

        logits: (B, Q, K+1) class logits, the last one "no object"; masks: (B, Q, h, w) mask logits; targets: B
        :class:`MaskTargets` (masks at any resolution). Draws one (1, num_points, 2) point set per image, in
        batch order, even for images without targets (so the random stream does not depend on the targets).
        """
        check_predictions(logits, masks, targets)
        matches: list[Match] = []
        for index, target in enumerate(targets):
            points = random_points(1, self.costs.num_points, masks.device, generator)
            if len(target) == 0:
                empty = torch.zeros(0, dtype=torch.int64)
                matches.append((empty, empty.clone()))
                continue
            cost = self.cost_matrix(logits[index], masks[index], target, points)
            if not bool(torch.isfinite(cost).all()):
                raise TrainingError(
                    f"image {index}: the matching cost is not finite (NaN or infinite class or mask logits); lower the "
                    "learning rate or check the model's outputs"
                )
            rows, cols = linear_sum_assignment(cost.cpu().numpy())
            matches.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return matches
