"""The miniature's procedural world: images made of regions of named textures, with captions and masks.

Every image is split into Voronoi regions; each region is filled with one texture class (stripes, dots,
bricks, ...) drawn in two colours picked at random, so that colour carries no class information and the
class is the pattern alone. Every pixel belongs to exactly one class (there is no background class), so
the text tower never has to learn a word for "background".

Generation is pure numpy and deterministic for a given seed: about 1-2 ms per 64x64 image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from infoclip.errors import ConfigError

Pattern = Callable[["_Canvas", np.random.Generator, float], np.ndarray]

#: colours the two tones of a texture are drawn from (RGB, 0-255)
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128), (170, 110, 40),
    (128, 0, 0), (0, 0, 128), (128, 128, 0), (255, 255, 255), (20, 20, 20), (128, 128, 128),
)


@dataclass(frozen=True)
class _Canvas:
    """Pixel coordinates of one image, shared by every pattern drawn on it."""

    y: np.ndarray  # (H, W) float row coordinate
    x: np.ndarray  # (H, W) float column coordinate


def _rotated(c: _Canvas, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u along, v across) rotated by ``theta`` radians."""
    cos, sin = np.cos(theta), np.sin(theta)
    return c.x * cos + c.y * sin, -c.x * sin + c.y * cos


def _jitter(rng: np.random.Generator, degrees: float = 8.0) -> float:
    # small orientation jitter: orientation defines some classes (stripes vs bars), so keep it well under 45 deg
    return float(np.deg2rad(rng.uniform(-degrees, degrees)))


def _square_wave(t: np.ndarray, duty: float = 0.5) -> np.ndarray:
    return ((t % 1.0) < duty).astype(np.float32)


def _lines(c: _Canvas, rng: np.random.Generator, period: float, theta: float) -> np.ndarray:
    _, v = _rotated(c, theta + _jitter(rng))
    return _square_wave(v / period + rng.uniform())


def _stripes(c, rng, p):
    return _lines(c, rng, p, 0.0)


def _bars(c, rng, p):
    return _lines(c, rng, p, np.pi / 2)


def _slashes(c, rng, p):
    return _lines(c, rng, p, np.pi / 4 * rng.choice([-1, 1]))


def _lattice(c: _Canvas, rng: np.random.Generator, period: float, theta: float = 0.0):
    """Offsets (du, dv) in [-0.5, 0.5) periods from the nearest lattice point, with a random phase."""
    u, v = _rotated(c, theta + _jitter(rng))
    du = (u / period + rng.uniform()) % 1.0 - 0.5
    dv = (v / period + rng.uniform()) % 1.0 - 0.5
    return du, dv


def _dots(c, rng, p):
    du, dv = _lattice(c, rng, p)
    return (du**2 + dv**2 < 0.28**2).astype(np.float32)


def _circles(c, rng, p):
    du, dv = _lattice(c, rng, p * 1.3)
    r = np.sqrt(du**2 + dv**2)
    return ((r > 0.28) & (r < 0.42)).astype(np.float32)


def _crosses(c, rng, p):
    du, dv = _lattice(c, rng, p * 1.2)
    arm, bar = 0.36, 0.1
    return (((np.abs(du) < arm) & (np.abs(dv) < bar)) | ((np.abs(dv) < arm) & (np.abs(du) < bar))).astype(np.float32)


def _checker(c, rng, p):
    du, dv = _lattice(c, rng, p * 2)
    return ((du < 0) ^ (dv < 0)).astype(np.float32)


def _diamonds(c, rng, p):
    du, dv = _lattice(c, rng, p * 2, np.pi / 4)
    return ((du < 0) ^ (dv < 0)).astype(np.float32)


def _grid(c, rng, p):
    du, dv = _lattice(c, rng, p * 1.2)
    width = 1.3 / (p * 1.2)
    return ((np.abs(du) < width) | (np.abs(dv) < width)).astype(np.float32)


def _zigzag(c, rng, p):
    u, v = _rotated(c, _jitter(rng))
    tri = np.abs((u / (1.6 * p) + rng.uniform()) % 1.0 - 0.5) * 2.0  # triangle wave in [0, 1]
    return _square_wave((v + tri * p * 1.1) / p + rng.uniform())


def _waves(c, rng, p):
    u, v = _rotated(c, _jitter(rng))
    return _square_wave((v + 0.45 * p * np.sin(2 * np.pi * u / (2.2 * p) + rng.uniform(0, 6.3))) / p)


def _bricks(c, rng, p):
    u, v = _rotated(c, _jitter(rng, 4.0))
    height, length = p * 1.1, p * 2.2
    row = np.floor(v / height + rng.uniform())
    fv = (v / height) % 1.0
    fu = (u / length + 0.5 * (row % 2)) % 1.0
    mortar_v, mortar_u = 1.2 / height, 1.2 / length
    return ((fv < mortar_v) | (fu < mortar_u)).astype(np.float32)


def _centre(c: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = c.y.shape
    cy, cx = rng.uniform(-0.2, 1.2) * h, rng.uniform(-0.2, 1.2) * w
    return c.y - cy, c.x - cx


def _rings(c, rng, p):
    dy, dx = _centre(c, rng)
    return _square_wave(np.sqrt(dy**2 + dx**2) / p + rng.uniform())


def _rays(c, rng, p):
    dy, dx = _centre(c, rng)
    spokes = int(rng.integers(10, 18))
    return _square_wave(np.arctan2(dy, dx) / (2 * np.pi) * spokes)


def _spirals(c, rng, p):
    dy, dx = _centre(c, rng)
    arms = int(rng.integers(3, 6))
    return _square_wave(np.arctan2(dy, dx) / (2 * np.pi) * arms + np.sqrt(dy**2 + dx**2) / (1.5 * p))


def _plaid(c, rng, p):
    du = (c.x / (2.5 * p) + rng.uniform()) % 1.0
    dv = (c.y / (2.5 * p) + rng.uniform()) % 1.0
    band = ((du < 0.3).astype(np.float32) + (dv < 0.3).astype(np.float32)) * 0.4
    fine = (((du * 5) % 1.0 < 0.3) | ((dv * 5) % 1.0 < 0.3)).astype(np.float32) * 0.2
    return np.clip(band + fine, 0.0, 1.0)


def _speckles(c, rng, p):
    return (rng.uniform(size=c.y.shape) < 0.35).astype(np.float32)


def _spots(c, rng, p):
    h, w = c.y.shape
    coarse = rng.normal(size=(h // 8 + 2, w // 8 + 2))
    # bilinear upsampling of coarse noise gives smooth blobs of about 8-12 px
    ys = np.linspace(0, coarse.shape[0] - 1.001, h)
    xs = np.linspace(0, coarse.shape[1] - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = coarse[y0][:, x0]
    b = coarse[y0][:, x0 + 1]
    cc = coarse[y0 + 1][:, x0]
    d = coarse[y0 + 1][:, x0 + 1]
    field = a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + cc * fy * (1 - fx) + d * fy * fx
    return (field > 0.4).astype(np.float32)


def _plain(c, rng, p):
    return np.zeros(c.y.shape, dtype=np.float32)


#: every texture class of the world, in a fixed order
TEXTURES: dict[str, Pattern] = {
    "stripes": _stripes,
    "bars": _bars,
    "slashes": _slashes,
    "dots": _dots,
    "circles": _circles,
    "crosses": _crosses,
    "checker": _checker,
    "diamonds": _diamonds,
    "grid": _grid,
    "zigzag": _zigzag,
    "waves": _waves,
    "bricks": _bricks,
    "rings": _rings,
    "rays": _rays,
    "spirals": _spirals,
    "plaid": _plaid,
    "speckles": _speckles,
    "spots": _spots,
    "plain": _plain,
}


@dataclass(frozen=True)
class WorldSpec:
    """What the world looks like: image size, class vocabulary and its seen/unseen split, region counts."""

    image_size: int = 64
    classes: tuple[str, ...] = tuple(TEXTURES)
    unseen: tuple[str, ...] = ("zigzag", "diamonds", "rings", "plaid", "spots")
    min_regions: int = 2
    max_regions: int = 4
    period_range: tuple[float, float] = (4.5, 8.0)
    noise_std: float = 6.0

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in TEXTURES]
        if unknown:
            raise ConfigError(f"unknown texture classes {unknown}; known: {', '.join(TEXTURES)}")
        missing = [c for c in self.unseen if c not in self.classes]
        if missing:
            raise ConfigError(f"unseen classes {missing} are not in the class list")
        if not 1 <= self.min_regions <= self.max_regions:
            raise ConfigError("need 1 <= min_regions <= max_regions")
        if self.image_size < 16:
            raise ConfigError(f"image_size must be at least 16, got {self.image_size}")

    @property
    def seen(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if c not in self.unseen)

    @classmethod
    def from_dict(cls, data: dict) -> WorldSpec:
        fields = dict(data)
        for key in ("classes", "unseen", "period_range"):
            if key in fields:
                fields[key] = tuple(fields[key])
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ConfigError(f"bad miniature world settings: {exc}") from exc


def _two_colours(rng: np.random.Generator) -> np.ndarray:
    """Two palette colours far enough apart that the pattern stays visible: (2, 3) float."""
    while True:
        i, j = rng.choice(len(PALETTE), size=2, replace=False)
        a, b = np.array(PALETTE[i], np.float32), np.array(PALETTE[j], np.float32)
        if np.abs(a - b).sum() > 150:
            return np.stack([a, b])


def render_texture(name: str, size: int, rng: np.random.Generator, period_range=(4.5, 8.0)) -> np.ndarray:
    """One full-image texture: (size, size, 3) float32 RGB in [0, 255] before noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    canvas = _Canvas(y=yy, x=xx)
    pattern = TEXTURES[name](canvas, rng, float(rng.uniform(*period_range)))
    colours = _two_colours(rng)
    return colours[0] * (1.0 - pattern[..., None]) + colours[1] * pattern[..., None]


def voronoi_regions(size: int, n_regions: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) int64 region index in 0..n_regions-1; every region keeps at least a few pixels."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    while True:
        seeds = rng.uniform(0, size, size=(n_regions, 2)).astype(np.float32)
        dist = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
        regions = dist.argmin(0)
        if np.bincount(regions.ravel(), minlength=n_regions).min() >= (size * size) // (8 * n_regions):
            return regions


def render_scene(
    spec: WorldSpec, classes: Sequence[str], rng: np.random.Generator, n_regions: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One image of Voronoi regions, each a texture from ``classes`` (distinct classes per image).

    Returns:
        image: (S, S, 3) uint8 RGB.
        label: (S, S) int64 index into ``classes``.
        present: the class names in the image, in region order.
    """
    size = spec.image_size
    if n_regions is None:
        n_regions = int(rng.integers(spec.min_regions, spec.max_regions + 1))
    n_regions = min(n_regions, len(classes))
    picks = rng.choice(len(classes), size=n_regions, replace=False)
    regions = voronoi_regions(size, n_regions, rng) if n_regions > 1 else np.zeros((size, size), np.int64)
    image = np.zeros((size, size, 3), np.float32)
    label = np.zeros((size, size), np.int64)
    for region, class_index in enumerate(picks):
        mask = regions == region
        image[mask] = render_texture(classes[class_index], size, rng, spec.period_range)[mask]
        label[mask] = class_index
    image += rng.normal(0.0, spec.noise_std, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), label, [classes[i] for i in picks]


#: caption templates of the pretraining corpus; CAT-Seg's prompt is among them so that its text is in-distribution
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of {}.",
    "A photo of a {} in the scene",
    "an image with {}.",
    "a pattern of {}.",
    "{}.",
)


def caption(names: Sequence[str], rng: np.random.Generator) -> str:
    """A caption naming the textures of an image in random order: 'a photo of waves, bricks and dots.'"""
    order = list(rng.permutation(len(names)))
    words = [names[i] for i in order]
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    return template.format(listed)
