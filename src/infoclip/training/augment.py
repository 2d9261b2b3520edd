"""Training augmentations of CAT-Seg's semantic mapper, in NumPy, driven by an explicit random generator.

The pipeline (catseg-reference.md §2) applied to one ``(image HxWx3 uint8 RGB, label HxW int64)`` pair:

1. ``resize_shortest_edge``: short side to ``min_size`` (or one drawn from a ``min_size`` list), long side capped at ``max_size``, image bilinear
   through PIL as detectron2 does, label nearest;
2. ``random_crop_category_area``: a ``crop_size`` square crop; with ``max_area < 1`` up to 10 tries to find a
   crop in which no single class covers more than ``max_area`` of the labelled pixels (1.0 = plain crop);
3. ``ssd_color_jitter``: SSD photometric distortion (brightness, then contrast/saturation/hue in one of two
   orders), with OpenCV's 8-bit HSV conventions (hue in [0, 180));
4. ``horizontal_flip`` with probability 0.5;
5. ``pad_to_multiple``: image padded with 128, label with ``IGNORE_INDEX``, bottom/right, to a multiple of
   ``size_divisibility``.

``augmentation: lsj`` replaces steps 1-2 by FC-CLIP's large-scale jitter (fcclip-reference.md §2, detectron2's
``ResizeScale`` + ``FixedSizeCrop``): flip first, then ``resize_scale`` (the image fits inside ``crop_size`` x
``crop_size`` times a factor drawn from ``scale_range``), then ``fixed_size_crop`` (random crop to ``crop_size``,
padding right/bottom with 128 / ignore).

Labels may carry several planes, (H, W, P): every plane moves with the image (nearest neighbour), plane 0 is the
class map the category-area crop reads (instance training adds a segment plane, ``data_stream``).

Every random draw comes from the ``numpy.random.Generator`` passed in, so a sample's augmentation depends only
on the seed it is given (the engine seeds it from the run seed and the sample's position in the data stream:
the same crops on any number of workers or GPUs, and after a resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from infoclip.data.spec import IGNORE_INDEX
from infoclip.errors import DatasetError

IMAGE_PAD_VALUE = 128


def _check_pair(image: np.ndarray, label: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DatasetError(f"training images must be HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    if label.shape[:2] != image.shape[:2] or label.ndim not in (2, 3):
        raise DatasetError(f"label shape {label.shape} does not match image shape {image.shape[:2]}")


def shortest_edge_size(height: int, width: int, short: int, max_size: int) -> tuple[int, int]:
    """Output (height, width) of detectron2's ``ResizeShortestEdge`` for one short-edge length."""
    scale = short / min(height, width)
    new_h, new_w = (short, scale * width) if height < width else (scale * height, short)
    if max(new_h, new_w) > max_size:
        cap = max_size / max(new_h, new_w)
        new_h, new_w = new_h * cap, new_w * cap
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_label_nearest(label: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize with PIL's sampling positions (``floor((x + 0.5) * in / out)``)."""
    rows = np.minimum(((np.arange(height) + 0.5) * label.shape[0] / height).astype(np.int64), label.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * label.shape[1] / width).astype(np.int64), label.shape[1] - 1)
    return label[rows[:, None], cols[None, :]]


def resize_shortest_edge(
    image: np.ndarray, label: np.ndarray, min_size: int, max_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resize so the short side is ``min_size`` (long side at most ``max_size``): image bilinear, label nearest."""
    height, width = image.shape[:2]
    new_h, new_w = shortest_edge_size(height, width, min_size, max_size)
    if (new_h, new_w) == (height, width):
        return image, label
    # np.array, not np.asarray: PIL's buffer is read-only, and torch.from_numpy warns on read-only arrays.
    resized = np.array(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    return resized, resize_label_nearest(label, new_h, new_w)


def random_crop_category_area(
    image: np.ndarray, label: np.ndarray, crop_size: int, max_area: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random ``crop_size`` square crop (smaller where the image is smaller), with the category-area constraint.

    With ``max_area < 1``, up to 10 crop positions are drawn; the first where at least two classes are present
    and the largest class covers less than ``max_area`` of the labelled pixels wins, else the 10th is used.
    """
    height, width = image.shape[:2]
    crop_h, crop_w = min(crop_size, height), min(crop_size, width)

    def draw() -> tuple[int, int]:
        return int(rng.integers(height - crop_h + 1)), int(rng.integers(width - crop_w + 1))

    top, left = draw()
    if max_area < 1.0:
        for _ in range(10):
            window = label[top : top + crop_h, left : left + crop_w]
            window = window[..., 0] if window.ndim == 3 else window
            _, counts = np.unique(window[window != IGNORE_INDEX], return_counts=True)
            if len(counts) > 1 and counts.max() / counts.sum() < max_area:
                break
            top, left = draw()
    return image[top : top + crop_h, left : left + crop_w], label[top : top + crop_h, left : left + crop_w]


def _rgb_to_hsv8(image: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float HSV on OpenCV's 8-bit scale (H in [0, 180), S and V in [0, 255]), rounded."""
    rgb = image.astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    spread = value - rgb.min(axis=-1)
    sat = np.where(value > 0, spread * 255.0 / np.maximum(value, 1e-6), 0.0)
    safe = np.maximum(spread, 1e-6)
    hue = np.where(
        value == r, 60.0 * (g - b) / safe, np.where(value == g, 120.0 + 60.0 * (b - r) / safe, 240.0 + 60.0 * (r - g) / safe)
    )
    hue = np.where(spread == 0, 0.0, hue)
    hue = np.where(hue < 0, hue + 360.0, hue) / 2.0
    return np.stack([np.round(hue) % 180, np.round(sat), value], axis=-1)


def _hsv8_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """Float HSV on OpenCV's 8-bit scale -> uint8 RGB."""
    hue = (hsv[..., 0] * 2.0 % 360.0) / 60.0
    sat, value = hsv[..., 1] / 255.0, hsv[..., 2]
    sector = np.floor(hue).astype(np.int64) % 6
    frac = hue - np.floor(hue)
    p, q, t = value * (1 - sat), value * (1 - sat * frac), value * (1 - sat * (1 - frac))
    choices_r = [value, q, p, p, t, value]
    choices_g = [t, value, value, q, p, p]
    choices_b = [p, p, t, value, value, q]
    out = np.stack(
        [np.choose(sector, choices_r), np.choose(sector, choices_g), np.choose(sector, choices_b)], axis=-1
    )
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _affine_u8(values: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    # Truncation after clipping, as the reference's ``astype(np.uint8)`` does.
    return np.clip(values.astype(np.float32) * alpha + beta, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class ColorJitter:
    """Parameters of the SSD photometric distortion (the reference's defaults)."""

    brightness_delta: float = 32.0
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Distort a uint8 RGB image; each step happens with probability 0.5."""
        if rng.integers(2):
            image = _affine_u8(image, beta=rng.uniform(-self.brightness_delta, self.brightness_delta))
        steps = (self._contrast, self._saturation, self._hue)
        order = steps if rng.integers(2) else (self._saturation, self._hue, self._contrast)
        for step in order:
            image = step(image, rng)
        return image

    def _contrast(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            return _affine_u8(image, alpha=rng.uniform(*self.contrast_range))
        return image

    def _saturation(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            hsv = _rgb_to_hsv8(image)
            hsv[..., 1] = _affine_u8(hsv[..., 1], alpha=rng.uniform(*self.saturation_range))
            return _hsv8_to_rgb(hsv)
        return image

    def _hue(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.integers(2):
            hsv = _rgb_to_hsv8(image)
            hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-self.hue_delta, self.hue_delta + 1))) % 180
            return _hsv8_to_rgb(hsv)
        return image


def pad_to_multiple(image: np.ndarray, label: np.ndarray, divisor: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right to a multiple of ``divisor``: image with 128, label with ``IGNORE_INDEX``."""
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % divisor, (-width) % divisor
    if pad_h == 0 and pad_w == 0:
        return image, label
    image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=IMAGE_PAD_VALUE)
    label = np.pad(label, ((0, pad_h), (0, pad_w)) + ((0, 0),) * (label.ndim - 2), constant_values=IGNORE_INDEX)
    return image, label


def resize_scale(image: np.ndarray, label: np.ndarray, target: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """detectron2's ``ResizeScale``: fit the image inside ``target * scale`` squared, aspect kept, sizes ``np.round``ed;
    image bilinear through PIL, label nearest."""
    height, width = image.shape[:2]
    factor = min(target * scale / height, target * scale / width)
    new_h, new_w = (max(1, int(v)) for v in np.round(np.multiply((height, width), factor)))
    if (new_h, new_w) == (height, width):
        return image, label
    resized = np.array(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    return resized, resize_label_nearest(label, new_h, new_w)


def fixed_size_crop(
    image: np.ndarray, label: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """detectron2's ``FixedSizeCrop``: one uniform draw places the crop along both axes (``round(u * max_offset)``),
    then the crop is padded right/bottom to ``size`` x ``size`` (image 128, label ignore)."""
    height, width = image.shape[:2]
    u = rng.uniform(0.0, 1.0)
    top, left = (int(v) for v in np.round(np.multiply((max(height - size, 0), max(width - size, 0)), u)))
    image, label = image[top : top + size, left : left + size], label[top : top + size, left : left + size]
    return pad_to_multiple(image, label, size)


@dataclass(frozen=True)
class TrainAugmentation:
    """The whole training pipeline with its settings (the ``data`` section of a run config)."""

    #: the short side, or a list to draw it from per image (detectron2's "choice" sampling, SAN's recipe)
    min_size: int | tuple[int, ...] = 384
    max_size: int = 1333
    crop_size: int = 384
    crop_max_category_area: float = 1.0
    color_jitter: bool = True
    flip: bool = True
    size_divisibility: int = 384
    #: ``standard`` (resize shortest edge + crop) or ``lsj`` (large-scale jitter, FC-CLIP)
    augmentation: str = "standard"
    #: lsj: the range the resize factor of the ``crop_size`` target is drawn from
    scale_range: tuple[float, float] = (0.1, 2.0)

    @classmethod
    def from_config(cls, data: Mapping[str, Any]) -> TrainAugmentation:
        """Build from a run config's ``data`` section."""
        return cls(
            min_size=tuple(int(v) for v in data["min_size"]) if isinstance(data["min_size"], (list, tuple)) else int(data["min_size"]),
            max_size=int(data["max_size"]),
            crop_size=int(data["crop_size"]),
            crop_max_category_area=float(data["crop_max_category_area"]),
            color_jitter=bool(data["color_jitter"]),
            flip=bool(data["flip"]),
            size_divisibility=int(data["size_divisibility"]),
            augmentation=str(data["augmentation"]),
            scale_range=(float(data["scale_range"][0]), float(data["scale_range"][1])),
        )

    @property
    def output_size(self) -> int:
        """Side of every output (the crop padded to ``size_divisibility``), so batches stack."""
        return self.crop_size + (-self.crop_size) % self.size_divisibility

    def __call__(
        self, image: np.ndarray, label: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Augment one pair.

        Args:
            image: HxWx3 uint8 RGB.
            label: HxW (or HxWxP planes) integer class indices with ``IGNORE_INDEX`` (-1) where unlabelled.
            rng: the sample's own generator.

        Returns:
            (S, S, 3) uint8 image and (S, S) (or (S, S, P)) int64 label with ``S = output_size``.
        """
        _check_pair(image, label)
        label = label.astype(np.int64, copy=False)
        if self.augmentation == "lsj":
            # FC-CLIP's mapper order: RandomFlip, ResizeScale, FixedSizeCrop
            if self.flip and rng.random() < 0.5:
                image, label = image[:, ::-1], label[:, ::-1]
            image, label = resize_scale(np.ascontiguousarray(image), np.ascontiguousarray(label), self.crop_size,
                                        rng.uniform(*self.scale_range))  # fmt: skip
            image, label = fixed_size_crop(image, label, self.crop_size, rng)
            if self.color_jitter:
                image = ColorJitter()(image, rng)
        else:
            short = self.min_size if isinstance(self.min_size, int) else self.min_size[int(rng.integers(len(self.min_size)))]
            image, label = resize_shortest_edge(image, label, short, self.max_size)
            image, label = random_crop_category_area(image, label, self.crop_size, self.crop_max_category_area, rng)
            if self.color_jitter:
                image = ColorJitter()(image, rng)
            if self.flip and rng.random() < 0.5:
                image, label = image[:, ::-1], label[:, ::-1]
        # Crops smaller than crop_size (tiny or very elongated images) are padded up to the common size.
        image, label = pad_to_multiple(image, label, self.output_size)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
