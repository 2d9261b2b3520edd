"""Mask losses on sampled points: sigmoid binary cross-entropy and dice, pairwise (for matching) and per pair.

All take mask logits and soft targets in [0, 1] read at the same points, shape (M, P) (M masks, P points), and
compute in float32. The dice smoothing of 1 in numerator and denominator is the Mask2Former / SAN / FC-CLIP value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_points(logits: torch.Tensor, targets: torch.Tensor, what: str) -> None:
    if logits.dim() != 2 or targets.dim() != 2 or logits.shape[1] != targets.shape[1]:
        raise ValueError(
            f"{what} needs logits (M, P) and targets (N, P) on the same points; got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )


def sigmoid_bce_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Σ_m mean_p BCE(logits[m, p], targets[m, p]) / num_masks -> float32 scalar; logits, targets (M, P)."""
    _check_points(logits, targets, "sigmoid_bce_loss")
    if logits.shape != targets.shape:
        raise ValueError(f"sigmoid_bce_loss pairs masks one to one; got {tuple(logits.shape)} and {tuple(targets.shape)}")
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")
    return loss.mean(1).sum() / num_masks


def dice_loss(logits: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Σ_m [1 - (2 Σ_p σ·t + 1) / (Σ_p σ + Σ_p t + 1)] / num_masks -> float32 scalar; logits, targets (M, P)."""
    _check_points(logits, targets, "dice_loss")
    if logits.shape != targets.shape:
        raise ValueError(f"dice_loss pairs masks one to one; got {tuple(logits.shape)} and {tuple(targets.shape)}")
    probs = logits.float().sigmoid()
    targets = targets.float()
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + 1) / (denominator + 1)).sum() / num_masks


def pairwise_sigmoid_bce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean-over-points BCE of every prediction against every target: logits (M, P), targets (N, P) -> (M, N)."""
    _check_points(logits, targets, "pairwise_sigmoid_bce")
    logits, targets = logits.float(), targets.float()
    # BCE(x, t) = t·BCE(x, 1) + (1 - t)·BCE(x, 0): two matrix products instead of an (M, N, P) tensor.
    positive = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits), reduction="none")
    negative = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    cost = torch.einsum("mp,np->mn", positive, targets) + torch.einsum("mp,np->mn", negative, 1 - targets)
    return cost / logits.shape[1]


def pairwise_dice(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dice loss of every prediction against every target: logits (M, P), targets (N, P) -> (M, N)."""
    _check_points(logits, targets, "pairwise_dice")
    probs = logits.float().sigmoid()
    targets = targets.float()
    numerator = 2 * torch.einsum("mp,np->mn", probs, targets)
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)
