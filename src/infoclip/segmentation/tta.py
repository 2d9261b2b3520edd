"""Test-time augmentation: the protocol's scores averaged over flipped and rescaled views (off by default).

* ``flip``: the image and its horizontal mirror; the mirror's scores are flipped back before averaging;
* ``ms``: the image at ``MS_SCALES`` (0.75, 1.0, 1.25 of its size, Mask2Former/SAN's TTA style) each with
  its mirror; every view's scores are resized back to the image's size (bilinear) and averaged.

Each view runs the model's own protocol (CAT-Seg: sliding windows + global view), so TTA multiplies the cost
by the number of views (2 for ``flip``, 6 for ``ms``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from infoclip.errors import InputError

TTA_MODES: tuple[str, ...] = ("none", "flip", "ms")
MS_SCALES: tuple[float, ...] = (0.75, 1.0, 1.25)


def check_tta(mode: str | None) -> str:
    mode = mode or "none"
    if mode not in TTA_MODES:
        raise InputError(f"unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}")
    return mode


def views(mode: str) -> list[tuple[float, bool]]:
    """The (scale, flipped) views of ``mode``; ``none`` is the one view (1.0, False)."""
    mode = check_tta(mode)
    scales = MS_SCALES if mode == "ms" else (1.0,)
    flips = (False, True) if mode in ("flip", "ms") else (False,)
    return [(s, f) for s in scales for f in flips]


def predict_with_tta(
    predict: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, mode: str = "none"
) -> torch.Tensor:
    """Average ``predict`` over the views of ``mode``.

    Args:
        predict: ``image (3, h, w) float RGB 0-255 -> (N, h, w) scores`` (the model's protocol).
        image: (3, H, W) float RGB in [0, 255].
        mode: ``none``, ``flip`` or ``ms``.

    Returns:
        (N, H, W) float32 mean scores.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise InputError(f"image must be (3, H, W), got {tuple(image.shape)}")
    height, width = image.shape[1:]
    total: torch.Tensor | None = None
    chosen = views(mode)
    for scale, flipped in chosen:
        view = image
        if scale != 1.0:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            view = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        if flipped:
            view = view.flip(-1)
        scores = predict(view).float()
        if flipped:
            scores = scores.flip(-1)
        if scores.shape[-2:] != (height, width):
            scores = F.interpolate(scores[None], size=(height, width), mode="bilinear", align_corners=False)[0]
        total = scores if total is None else total + scores
    assert total is not None
    return total / len(chosen)
