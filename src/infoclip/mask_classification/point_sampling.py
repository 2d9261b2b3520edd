"""Reading masks at continuous points, and PointRend's uncertainty-biased choice of those points.

The set criterion never compares whole masks: it compares predicted and target masks at a few thousand points in
normalised ``[0, 1] x [0, 1]`` image coordinates, so predictions (1/4 or 1/16 resolution) and targets (full
resolution) need no resizing. The points are random; every draw takes an explicit ``torch.Generator`` (or the
global generator when ``None``), in a fixed order, so a seeded run is repeatable and a resumed run can restore the
generator's state.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: keeps the criterion's seeds apart from the data stream's (infoclip.training.data_stream)
_POINT_STREAM = 0x5E7C


def point_generator(
    seed: int, iteration: int, rank: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    """A generator for one training step's points, a pure function of (seed, iteration, rank).

    A run that resumes at iteration i draws the same points as an uninterrupted one without saving generator
    state, and DDP processes draw different points (as the official code's per-process streams do).
    """
    words = np.random.SeedSequence([seed, _POINT_STREAM, iteration, rank]).generate_state(2, np.uint32)
    generator = torch.Generator(device=device)
    generator.manual_seed((int(words[0]) << 31) ^ int(words[1]))
    return generator


def random_points(
    count: int,
    num_points: int,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``count`` sets of ``num_points`` uniform points: float32 (count, num_points, 2) in [0, 1), (x, y) order.

    With a generator the numbers come from it, on its own device, and move to ``device``; without one they are
    drawn from the global generator of ``device`` (what the official code does with ``torch.rand``).
    """
    if generator is None:
        return torch.rand(count, num_points, 2, device=device)
    points = torch.rand(count, num_points, 2, generator=generator, device=generator.device)
    return points.to(device)


def point_sample(values: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear read of ``values`` (N, C, H, W) at ``points`` (N, P, 2) -> (N, C, P).

    Points are (x, y) in [0, 1], 0 and 1 being the outer edges of the first and last pixels
    (``grid_sample`` with ``align_corners=False``, zero padding); the result has ``values``' dtype.
    """
    if values.dim() != 4 or points.dim() != 3 or points.shape[-1] != 2 or points.shape[0] != values.shape[0]:
        raise ValueError(
            f"point_sample needs values (N, C, H, W) and points (N, P, 2) with the same N; got {tuple(values.shape)} "
            f"and {tuple(points.shape)}"
        )
    grid = (2.0 * points - 1.0).unsqueeze(2).to(values.dtype)
    return F.grid_sample(values, grid, align_corners=False).squeeze(3)


def uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """How unsure a mask logit is: ``-|logit|`` (highest at the decision boundary), same shape."""
    return -logits.abs()


def uncertain_points_with_randomness(
    logits: torch.Tensor,
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """PointRend's training points for masks ``logits`` (N, 1, H, W): float32 (N, num_points, 2) in [0, 1].

    Draws ``int(num_points * oversample_ratio)`` uniform candidates per mask, keeps the
    ``int(importance_sample_ratio * num_points)`` most uncertain (largest ``-|logit|`` at the candidate, read
    bilinearly) and fills the rest with fresh uniform points. Random draws, in this order: candidates
    (N, candidates, 2), then the uniform remainder (N, rest, 2). Not differentiable (call under ``no_grad``).
    """
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"uncertain point sampling needs mask logits (N, 1, H, W); got {tuple(logits.shape)}")
    if oversample_ratio < 1:
        raise ValueError(f"oversample_ratio must be at least 1; got {oversample_ratio}")
    if not 0.0 <= importance_sample_ratio <= 1.0:
        raise ValueError(f"importance_sample_ratio must lie in [0, 1]; got {importance_sample_ratio}")
    count = logits.shape[0]
    num_candidates = int(num_points * oversample_ratio)
    candidates = random_points(count, num_candidates, logits.device, generator)
    scores = uncertainty(point_sample(logits, candidates))[:, 0, :]
    num_uncertain = int(importance_sample_ratio * num_points)
    chosen = torch.topk(scores, k=num_uncertain, dim=1).indices
    points = torch.gather(candidates, 1, chosen.unsqueeze(-1).expand(-1, -1, 2))
    num_random = num_points - num_uncertain
    if num_random > 0:
        points = torch.cat([points, random_points(count, num_random, logits.device, generator)], dim=1)
    return points
