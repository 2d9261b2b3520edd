"""Drawing a segmentation: class palette, the colour mask blended over the image, and a legend panel.

The legend sits to the right of the image and lists the classes that occur, largest first, each with its
colour swatch, its name and its share of the image's pixels. It is drawn with Pillow's default font
(``ImageFont.load_default``, a bundled TrueType font since Pillow 10.1, so it renders the same on every system)
scaled to the image size. An optional caption (for example "training-free baseline: ViT-B-16:openai") ends it.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from infoclip.errors import InputError
from infoclip.segmentation.classes import display_name

#: the first colours: distinct, saturated, readable with black text beside them (a qualitative palette)
_BASE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip

_GOLDEN_ANGLE = 0.381966  # fraction of the hue circle; consecutive generated colours land far apart
_LEGEND_MAX_NAME = 32  # characters; longer names are shortened with an ellipsis
_LEGEND_MIN_ROWS = 12  # a small image still gets a readable legend (the canvas grows below the image)


def palette(num_classes: int) -> np.ndarray:
    """Distinct colours for ``num_classes`` classes, the same for the same index on every call.

    Returns:
        (num_classes, 3) uint8 RGB. The first 20 come from a fixed qualitative palette; the rest step around
        the hue circle by the golden angle with three saturation/value levels.
    """
    if num_classes < 0:
        raise InputError(f"palette size must be >= 0, got {num_classes}")
    colours = list(_BASE_COLOURS[:num_classes])
    levels = ((0.85, 0.95), (0.55, 0.85), (0.95, 0.65))
    for i in range(len(colours), num_classes):
        k = i - len(_BASE_COLOURS)
        saturation, value = levels[k % len(levels)]
        r, g, b = colorsys.hsv_to_rgb((k * _GOLDEN_ANGLE) % 1.0, saturation, value)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.asarray(colours, dtype=np.uint8).reshape(num_classes, 3)


def pixel_shares(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Fraction of the pixels of each class: (num_classes,) float64 summing to 1 (labels (H, W) int in [0, T))."""
    counts = np.bincount(labels.reshape(-1).astype(np.int64), minlength=num_classes)[:num_classes]
    return counts / max(labels.size, 1)


def blend(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The class colours blended over the image, with class boundaries darkened.

    Args:
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) integer class indices in [0, len(colours)).
        colours: (T, 3) uint8 RGB, one per class.
        alpha: weight of the class colour, in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if image.shape[:2] != labels.shape:
        raise InputError(f"label map {labels.shape} does not match the image size {image.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"overlay opacity must be in [0, 1], got {alpha}")
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * colours[labels].astype(np.float32)
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    mixed[edge] *= 0.35  # a dark outline keeps neighbouring regions of similar colour apart
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


@dataclass
class LegendEntry:
    """One legend row: the class, its colour, its share, and where the swatch was drawn (x0, y0, x1, y1)."""

    class_index: int
    name: str
    share: float
    colour: tuple[int, int, int]
    swatch_box: tuple[int, int, int, int]


@dataclass
class Overlay:
    """A rendered overlay (``image``, RGB) and the legend rows drawn on it (``entries``; ``more`` = rows left out)."""

    image: object  # PIL.Image.Image; typed loosely so that importing this module does not import Pillow
    entries: list[LegendEntry]
    more: int = 0


def _font(size: int):  # noqa: ANN202
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _shorten(name: str) -> str:
    return name if len(name) <= _LEGEND_MAX_NAME else name[: _LEGEND_MAX_NAME - 1] + "\u2026"


def draw_overlay(
    image: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    alpha: float = 0.5,
    caption: str | None = None,
    colours: np.ndarray | None = None,
) -> Overlay:
    """Blend the label map over the image and add a legend panel on the right.

    Args:
        image: (H, W, 3) uint8 RGB.
        labels: (H, W) integer class indices in [0, T).
        class_names: the T class names (the first synonym of each is shown).
        alpha: opacity of the class colours.
        caption: an optional last line under the legend (what produced the segmentation).
        colours: (T, 3) uint8 class colours; default ``palette(T)``.

    Returns:
        ``Overlay`` whose image is W + legend width wide and at least H high (taller when the legend needs it;
        the extra rows below the image are white).
    """
    from PIL import Image, ImageDraw

    num_classes = len(class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise InputError(f"label values must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    colours = palette(num_classes) if colours is None else np.asarray(colours, dtype=np.uint8)
    height, width = labels.shape
    shares = pixel_shares(labels, num_classes)
    present = [int(i) for i in np.argsort(-shares, kind="stable") if shares[i] > 0]

    font_px = int(min(32, max(12, round(height / 36))))
    font = _font(font_px)
    row = int(round(font_px * 1.6))
    pad = font_px
    max_rows = max(_LEGEND_MIN_ROWS, (height - 2 * pad) // row)
    shown = present if len(present) <= max_rows else present[: max_rows - 1]
    more = len(present) - len(shown)
    lines = [f"{_shorten(display_name(class_names[i]))}  {100 * shares[i]:.1f}%" for i in shown]
    if more:
        lines.append(f"+ {more} more ({100 * float(shares[present[len(shown):]].sum()):.1f}%)")
    caption_lines = [caption] if caption else []
    text_width = max((font.getlength(text) for text in lines + caption_lines), default=0)
    panel_width = int(pad + font_px + pad // 2 + text_width + pad)
    panel_height = int(2 * pad + row * (len(lines) + len(caption_lines)))

    canvas = Image.new("RGB", (width + panel_width, max(height, panel_height)), (255, 255, 255))
    canvas.paste(Image.fromarray(blend(image, labels, colours, alpha)), (0, 0))
    draw = ImageDraw.Draw(canvas)
    entries: list[LegendEntry] = []
    x_swatch = width + pad
    x_text = x_swatch + font_px + pad // 2
    for k, text in enumerate(lines):
        y = pad + k * row
        if k < len(shown):
            index = shown[k]
            colour = tuple(int(c) for c in colours[index])
            box = (x_swatch, y + (row - font_px) // 2, x_swatch + font_px, y + (row - font_px) // 2 + font_px)
            draw.rectangle(box, fill=colour, outline=(40, 40, 40))
            entries.append(LegendEntry(index, display_name(class_names[index]), float(shares[index]), colour, box))  # type: ignore[arg-type]
        draw.text((x_text, y + (row - font_px) // 2), text, fill=(20, 20, 20), font=font)
    for k, text in enumerate(caption_lines):
        y = pad + (len(lines) + k) * row
        draw.text((x_swatch, y + (row - font_px) // 2), text, fill=(90, 90, 90), font=font)
    return Overlay(image=canvas, entries=entries, more=more)
