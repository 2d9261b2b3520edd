"""Reading user images robustly: any file Pillow (or tifffile) opens becomes an (H, W, 3) uint8 RGB array.

What "robustly" means here, since photos from phones and scientific tools break naive loaders:

* EXIF orientation is applied (``ImageOps.exif_transpose``), so a portrait photo is segmented upright and
  the label map lines up with what every image viewer shows.
* Grayscale (``L``, ``1``), palette (``P``, with or without transparency), ``CMYK``, ``YCbCr``, ``LA`` and ``RGBA``
  become RGB. Transparent pixels are composited over **white**, the background most viewers show.
* 16-bit images (``I;16`` PNG/TIFF, ``I`` and uint16 arrays) are scaled by 255/65535 instead of being clipped at
  255 (what ``Image.convert("L")`` does, which turns most of a 16-bit image white). Floating-point images (``F``)
  are taken as [0, 1] when their maximum is at most 1, else as [0, 255], and clipped.
* The whole file is decoded at load time, so a truncated or corrupt file fails here with an ``InputError``
  naming it, never later inside a model.
* Before any pixel is decoded, the size in the file's header is checked against a pixel limit
  (``DEFAULT_MAX_PIXELS`` = 64 megapixels, the environment variable ``INFOCLIP_MAX_PIXELS`` changes it). It
  applies to every reader (Pillow and tifffile alike), so a small compressed file cannot unpack into gigabytes.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from infoclip.errors import InputError

#: file extensions ``infoclip segment`` picks up when given a folder (lower case, with the dot)
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".jfif"}
)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")

#: the largest image (width x height) read by default: 64 megapixels, above the usual phone and camera photo;
#: the model resizes to a 640-pixel short side anyway, and decoding with float copies costs ~30 bytes per pixel
DEFAULT_MAX_PIXELS = 64_000_000
MAX_PIXELS_ENV = "INFOCLIP_MAX_PIXELS"


def pixel_limit() -> int:
    """The largest number of pixels (width x height) an image file may have: ``INFOCLIP_MAX_PIXELS`` if set,
    else ``DEFAULT_MAX_PIXELS``.

    Raises:
        InputError: ``INFOCLIP_MAX_PIXELS`` is not a positive integer.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    if not raw.isdigit() or int(raw) <= 0:
        raise InputError(f"{MAX_PIXELS_ENV}={os.environ[MAX_PIXELS_ENV]!r} must be a positive whole number of pixels")
    return int(raw)


def check_pixel_count(width: int, height: int, what: str, values: int | None = None) -> None:
    """Refuse an image of more than ``pixel_limit()`` pixels, from its header size, before decoding it.

    Args:
        width, height: the size the file's header declares.
        what: the file, for the message.
        values: for readers that return whole arrays (tifffile), the number of values it would decode;
            at most 4 per pixel of the limit (RGBA).

    Raises:
        InputError: the image is larger than the limit (the message says how to raise it).
    """
    limit = pixel_limit()
    pixels = int(width) * int(height)
    if pixels > limit or (values is not None and values > 4 * limit):
        size = f"{width}x{height}" if values is None or pixels > limit else f"{values} values"
        raise InputError(
            f"{what}: image of {size} exceeds the pixel limit of {limit} pixels ({limit / 1e6:g} megapixels); "
            f"if you trust the file, raise the limit with {MAX_PIXELS_ENV}"
        )


def _pil() -> Any:
    from PIL import Image

    return Image


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W, 3) uint8 RGB over a white background."""
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgb * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _scale_to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """Bring an integer or floating array of any range convention to uint8 (see the module docstring)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16 or (np.issubdtype(array.dtype, np.integer) and array.dtype.itemsize >= 2):
        # 16-bit data stored as a wider int (PIL mode "I") keeps the 16-bit convention
        scaled = np.clip(array.astype(np.float64), 0, 65535) * (255.0 / 65535.0)
        return np.rint(scaled).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):  # int8
        return np.clip(array, 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        finite = array[np.isfinite(array)]
        if finite.size != array.size:
            raise InputError(f"{what} contains NaN or infinite pixel values")
        top = float(finite.max()) if finite.size else 0.0
        factor = 255.0 if top <= 1.0 else 1.0
        return np.clip(np.rint(array.astype(np.float64) * factor), 0, 255).astype(np.uint8)
    raise InputError(f"{what} has pixel type {array.dtype}, which cannot be read as an image")


def array_to_rgb(array: np.ndarray, what: str = "image array") -> np.ndarray:
    """Convert an image array to (H, W, 3) uint8 RGB.

    Args:
        array: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array; uint8 (0-255), uint16 (0-65535), bool, or
            float ([0, 1] when its maximum is at most 1, else [0, 255]). Four channels are RGBA.
        what: how to name the array in error messages.

    Returns:
        A new or the same (H, W, 3) uint8 C-contiguous array.

    Raises:
        InputError: wrong number of dimensions or channels, an empty image, or an unusable dtype.
    """
    if not isinstance(array, np.ndarray):
        raise InputError(f"{what} must be a numpy array, not {type(array).__name__}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        gray = _scale_to_uint8(array, what)
        rgb = np.repeat(gray[..., None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] in (3, 4):
        rgb = _scale_to_uint8(array, what)
        if rgb.shape[2] == 4:
            rgb = _composite_on_white(rgb)
    else:
        raise InputError(
            f"{what} has shape {tuple(array.shape)}; expected H x W x 3 (RGB), H x W x 4 (RGBA) or H x W (gray)"
        )
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InputError(f"{what} is empty (shape {tuple(array.shape)})")
    return np.ascontiguousarray(rgb)


def pil_to_rgb(image: Any, what: str = "image") -> np.ndarray:
    """Convert a Pillow image (any mode) to (H, W, 3) uint8 RGB, applying its EXIF orientation first."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image) or image
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return array_to_rgb(np.asarray(image), what)
    if mode == "RGB":
        return array_to_rgb(np.asarray(image), what)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        return array_to_rgb(np.asarray(image.convert("RGBA")), what)
    return array_to_rgb(np.asarray(image.convert("RGB")), what)


def _read_with_tifffile(path: Path) -> np.ndarray | None:
    """Read a TIFF Pillow cannot open (multi-sample 16-bit, float RGB, ...); ``None`` when tifffile fails too."""
    try:
        import tifffile

        with tifffile.TiffFile(str(path)) as tif:
            page = tif.pages.first
            series = tif.series[0]
            shape = tuple(series.shape)
            width, height = page.imagewidth, page.imagelength
    except Exception:  # tifffile raises many types; the caller reports Pillow's clearer error
        return None
    check_pixel_count(width, height, str(path), values=math.prod(shape))  # from the header, before decoding
    try:
        array = tifffile.imread(str(path))
    except Exception:
        return None
    while array.ndim > 3:  # a multi-page stack: segment its first page
        array = array[0]
    if array.ndim == 3 and array.shape[2] not in (1, 3, 4) and array.shape[0] in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage
    return np.asarray(array)


def load_image(source: str | os.PathLike[str] | np.ndarray | Any) -> np.ndarray:
    """Load an image as (H, W, 3) uint8 RGB, upright (EXIF orientation applied).

    Args:
        source: a path to an image file, a Pillow image, or a numpy array (see ``array_to_rgb``).

    Returns:
        (H, W, 3) uint8 C-contiguous array, values 0-255.

    Raises:
        InputError: the file is missing, is not an image, is truncated or corrupt (the message names the file),
            or the array has an unusable shape or dtype.
    """
    Image = _pil()
    if isinstance(source, np.ndarray):
        return array_to_rgb(source)
    if isinstance(source, Image.Image):
        return pil_to_rgb(source)
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(
            f"an image must be a path, a PIL image or an H x W x 3 uint8 array, not {type(source).__name__}"
        )
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: image not found")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not an image")
    try:
        with warnings.catch_warnings():  # Pillow warns above 89 Mpx; the pixel limit below is the policy here
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)  # reads the header only
        with image:
            check_pixel_count(*image.size, str(path))
            image.load()  # decode everything now: truncation and corruption surface here, named
            return pil_to_rgb(image, what=str(path))
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if path.suffix.lower() in (".tif", ".tiff"):
            array = _read_with_tifffile(path)
            if array is not None:
                return array_to_rgb(array, what=str(path))
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, PermissionError):
            reason = "permission denied"
        raise InputError(f"{path}: cannot read image ({reason})") from exc


def image_name(source: Any) -> str:
    """A short name for an image source, used for output stems and messages (``"image"`` for in-memory data)."""
    if isinstance(source, (str, os.PathLike)):
        return Path(source).stem or "image"
    filename = getattr(source, "filename", "")
    return Path(filename).stem if filename else "image"
