"""Helpers that write test images in the awkward formats real users have (EXIF-rotated, 16-bit, palette...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def gradient_rgb(height: int = 40, width: int = 60) -> np.ndarray:
    """(H, W, 3) uint8 with every pixel different enough to detect flips and rotations."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], -1).astype(np.uint8)


def write_exif_rotated_jpeg(path: Path, upright: np.ndarray, orientation: int = 6) -> None:
    """Store ``upright`` the way a phone does: pixels rotated, plus the EXIF orientation that undoes it.

    Orientation 6 means "rotate 90 degrees clockwise to display", so the stored pixels are the upright image
    turned 90 degrees counter-clockwise... i.e. viewers rotate it back clockwise.
    """
    stored = np.rot90(upright, k=1)  # counter-clockwise; orientation 6 turns it back clockwise
    image = Image.fromarray(np.ascontiguousarray(stored))
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.save(path, format="JPEG", quality=98, exif=exif.tobytes())


def write_truncated_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray(image).save(path, format="PNG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
