"""Checks of what adapters' models receive, and detectron2's test-time resize, shared by the adapters.

CAT-Seg and SAN both evaluate after detectron2's ``ResizeShortestEdge`` on the 8-bit image; both take
images as float RGB in [0, 255] and class names as a non-empty list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from infoclip.errors import InputError


def check_images(images: Any, name: str, ndim: int) -> torch.Tensor:
    """``images`` itself if it is a float (or uint8) RGB tensor of ``ndim`` dims (3, H, W) / (B, 3, H, W); else ``InputError``."""
    layout = "(B, 3, H, W)" if ndim == 4 else "(3, H, W)"
    if not isinstance(images, torch.Tensor) or images.ndim != ndim or images.shape[-3] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(f"{name} must be a {layout} RGB tensor with values in [0, 255], got {shape}")
    if not (images.is_floating_point() or images.dtype == torch.uint8):
        raise InputError(f"{name} must be float (or uint8) RGB in [0, 255], got dtype {images.dtype}")
    return images


def check_class_names(class_names: Any) -> list[str]:
    """``class_names`` as a list; ``InputError`` unless it is a non-empty sequence (not a single string)."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or not class_names:
        raise InputError("class names must be a non-empty list of strings")
    return list(class_names)


def resize_shortest_edge(image: torch.Tensor, short: int, max_size: int) -> torch.Tensor:
    """detectron2's test-time ``ResizeShortestEdge`` on an 8-bit image: (3, H, W) -> (3, h, w) float 0-255.

    The new size is ``short`` on the short side (long side scaled, capped at ``max_size``, rounded half up);
    resampling is PIL's bilinear on uint8 (antialiased when shrinking), exactly as detectron2 does for the
    uint8 images its loader reads. Returns the image unchanged in size when it already fits.
    """
    from PIL import Image

    h, w = image.shape[-2:]
    scale = short / min(h, w)
    new_h, new_w = (short, scale * w) if h < w else (scale * h, short)
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    new_h, new_w = int(new_h + 0.5), int(new_w + 0.5)
    pixels = image.detach().float().round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    if (new_h, new_w) != (h, w):
        pixels = np.asarray(Image.fromarray(pixels).resize((new_w, new_h), Image.BILINEAR))
    return torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).float()
