"""Decoding images and label maps from disk, with one-line errors that name the file.

Images are decoded like detectron2's ``read_image``: EXIF orientation applied, converted to RGB.
Labels are single-channel class-index maps: uint8 PNG (255 = ignore), uint16 TIFF (ADE-847: 65535),
TIFF with ignore value K (PC-459: 459). Every on-disk ignore value becomes ``IGNORE_INDEX`` (-1), and
any other value outside ``0..num_classes-1`` is an error, never a silently wrong class.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from infoclip.data import IGNORE_INDEX
from infoclip.errors import DatasetError

TIFF_SUFFIXES = (".tif", ".tiff")
#: EXIF orientations that swap width and height (transpose, rotate 90/270, transverse)
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
_EXIF_ORIENTATION = 0x0112
#: PIL modes that hold one class index per pixel
_INDEX_MODES = ("1", "L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")
#: marks a raw value that is neither a class nor the ignore value in the lookup tables below
_INVALID = -2


class UnreadableFileError(DatasetError):
    """An image or label file cannot be decoded."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = Path(path), reason
        super().__init__(f"cannot read {self.path} ({reason}); re-extract or re-create this file, or remove it")


class LabelValueError(DatasetError):
    """A label holds values that are neither class indices of the vocabulary nor the ignore value."""

    def __init__(self, path: Path, values: list[int], num_classes: int, ignore_value: int, hint: str = "") -> None:
        self.path, self.values = Path(path), values
        shown = ", ".join(str(v) for v in values[:8]) + (f" (+{len(values) - 8} more)" if len(values) > 8 else "")
        more = f"; {hint}" if hint else ""
        super().__init__(
            f"label {self.path} has values {shown} outside the classes 0..{num_classes - 1} "
            f"(ignore value {ignore_value}){more}"
        )


class SizeMismatchError(DatasetError):
    """A label's size differs from its image's size."""

    def __init__(self, label_path: Path, label_hw: tuple[int, int], image_path: Path, image_hw: tuple[int, int]) -> None:
        self.path = Path(label_path)
        super().__init__(
            f"label {label_path} is {label_hw[1]}x{label_hw[0]} (WxH) but its image {image_path} is "
            f"{image_hw[1]}x{image_hw[0]}; labels must have their image's size (regenerate the label)"
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image as (H, W, 3) uint8 RGB (writable), EXIF orientation applied.

    Decoding is ``infoclip segment``'s (``infoclip.segmentation.images.load_image``): for the benchmarks' 8-bit
    JPEGs it equals detectron2's ``read_image``; custom data also gets sound handling of 16-bit and alpha images.

    Raises:
        UnreadableFileError: the file is missing, truncated or not an image.
    """
    from infoclip.errors import InputError
    from infoclip.segmentation.images import load_image

    path = Path(path)
    try:
        rgb = load_image(path)
    except InputError as exc:
        raise UnreadableFileError(path, str(exc).removeprefix(f"{path}: ")) from exc
    return rgb if rgb.flags.writeable else rgb.copy()


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(H, W) of an image after EXIF orientation, from its header only (no pixel decoding)."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        raise UnreadableFileError(path, _reason(exc)) from exc
    return (w, h) if orientation in _SWAPPING_ORIENTATIONS else (h, w)


def read_raw_label(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a label file as a 2-D integer array with its on-disk values (uint16 TIFFs stay uint16).

    Raises:
        UnreadableFileError: missing, undecodable, multi-channel, or non-integral values.
    """
    from infoclip.errors import InputError
    from infoclip.segmentation.images import check_pixel_count

    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            with tifffile.TiffFile(path) as tif:  # the header's size first: the image readers' pixel limit
                page = tif.pages.first
                check_pixel_count(page.imagewidth, page.imagelength, str(path), values=int(np.prod(tif.series[0].shape)))
                raw = np.asarray(tif.asarray())
        else:
            with Image.open(path) as im:
                if im.mode not in _INDEX_MODES:
                    raise UnreadableFileError(
                        path, f"a {im.mode} image; labels must be single-channel class-index maps, not colour images"
                    )
                check_pixel_count(*im.size, str(path))
                raw = np.asarray(im)
    except UnreadableFileError:
        raise
    except InputError as exc:
        raise UnreadableFileError(path, str(exc).removeprefix(f"{path}: ")) from exc
    except Exception as exc:  # tifffile and PIL raise many types for damaged files; all mean "unreadable"
        raise UnreadableFileError(path, _reason(exc)) from exc
    if raw.ndim == 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim != 2:
        raise UnreadableFileError(path, f"array of shape {raw.shape}; labels must be 2-D class-index maps")
    if raw.dtype == bool:
        raw = raw.astype(np.uint8)
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            raise UnreadableFileError(path, "non-integer label values; labels must hold class indices")
        raw = raw.astype(np.int64)
    if raw.dtype.kind not in "iu":
        raise UnreadableFileError(path, f"label dtype {raw.dtype}; expected integers")
    return raw


@functools.lru_cache(maxsize=32)
def _lookup_table(size: int, num_classes: int, ignore_value: int) -> np.ndarray:
    """raw value -> class index, IGNORE_INDEX for the ignore value, _INVALID for anything else."""
    table = np.full(size, _INVALID, dtype=np.int64)
    table[: min(num_classes, size)] = np.arange(min(num_classes, size))
    if 0 <= ignore_value < size:
        table[ignore_value] = IGNORE_INDEX
    table.setflags(write=False)
    return table


def to_class_indices(raw: np.ndarray, num_classes: int, ignore_value: int) -> tuple[np.ndarray, list[int]]:
    """Map on-disk values to class indices (int64, -1 = ignore); also return the sorted invalid raw values.

    uint8/uint16 labels go through a lookup table (one gather, no sort); other integer types are
    range-checked.
    """
    if raw.dtype in (np.uint8, np.uint16):
        table = _lookup_table(256 if raw.dtype == np.uint8 else 65536, num_classes, ignore_value)
        label = table[raw]
        invalid = label == _INVALID
        if invalid.any():
            return label, sorted(int(v) for v in np.unique(raw[invalid]))
        return label, []
    label = raw.astype(np.int64, copy=True)
    ignore = label == ignore_value
    invalid = ~ignore & ((label < 0) | (label >= num_classes))
    bad = sorted(int(v) for v in np.unique(label[invalid])) if invalid.any() else []
    label[ignore] = IGNORE_INDEX
    return label, bad


def read_label(path: str | os.PathLike[str], num_classes: int, ignore_value: int, hint: str = "") -> np.ndarray:
    """Decode a label as (H, W) int64 class indices in ``0..num_classes-1`` with -1 where it is ignored.

    Raises:
        UnreadableFileError: the file cannot be decoded as a single-channel integer map.
        LabelValueError: some values are neither a class index nor ``ignore_value`` (``hint`` is appended).
    """
    raw = read_raw_label(path)
    label, bad = to_class_indices(raw, num_classes, ignore_value)
    if bad:
        raise LabelValueError(Path(path), bad, num_classes, ignore_value, hint)
    return label
