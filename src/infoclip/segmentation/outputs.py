"""Machine-readable outputs of a segmentation: per-class statistics, COCO RLE, indexed PNG, probabilities,
and the transformers-pipeline form.

* ``class_statistics``: per predicted class its pixel count, share, mean and max score over its region, and its
  bounding box ``[x_min, y_min, x_max, y_max]`` (inclusive pixel coordinates);
* ``coco_rle_records``: one record per predicted class in the layout of detectron2's
  ``sem_seg_predictions.json`` (``SemSegEvaluator.encode_json_sem_seg``): ``{"file_name", "category_id",
  "segmentation": {"size": [H, W], "counts": str}}``, column-major RLE as ``pycocotools.mask.encode`` writes it;
  ``category_id`` is the class index (background pixels are left out, as detectron2 leaves out ignored ones);
* ``save_indexed_png``: the label map as a palette PNG (mode ``P``) with the overlay's colours: the pixel values are
  the class indices (as in the plain PNG) and image viewers show colours; at most 256 entries;
* ``save_probs``: the (C, H, W) scores as ``.npy``, float32 or float16 (half the size; ``infoclip segment``
  notes large probability files before writing them);
* ``to_hf``: ``[{"label", "score", "mask"}]`` as transformers' image-segmentation pipelines return.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from infoclip.errors import InputError

PROBS_DTYPES: tuple[str, ...] = ("float32", "float16")
#: palette PNGs hold at most this many colours
MAX_INDEXED_CLASSES = 256
#: the overlay and palette colour of background pixels
BACKGROUND_GREY = (128, 128, 128)


def class_statistics(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Statistics of every class present in ``labels``, in label order.

    Args:
        scores: (C, H, W) float scores.
        labels: (H, W) int labels in [0, C), or -1 (background, not reported).
        classes: the C class names.
    """
    if scores.ndim != 3 or scores.shape[1:] != labels.shape or scores.shape[0] != len(classes):
        raise InputError(f"scores {scores.shape} do not match labels {labels.shape} and {len(classes)} classes")
    out = []
    total = labels.size
    counts = np.bincount(labels[labels >= 0].reshape(-1), minlength=len(classes))
    for index in np.flatnonzero(counts):
        region = labels == index
        ys, xs = np.nonzero(region)
        values = scores[index][region]
        out.append(
            {
                "index": int(index),
                "name": classes[index],
                "pixels": int(counts[index]),
                "share": float(counts[index] / total),
                "mean_score": float(values.mean()),
                "max_score": float(values.max()),
                "bbox": [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
            }
        )
    return out


def coco_rle_records(labels: np.ndarray, file_name: str) -> list[dict[str, Any]]:
    """detectron2 ``sem_seg_predictions.json`` records of one label map (see the module docstring)."""
    from pycocotools import mask as mask_util

    records = []
    for index in np.unique(labels):
        if index < 0:
            continue
        rle = mask_util.encode(np.asfortranarray((labels == index)[:, :, None].astype(np.uint8)))[0]
        rle["counts"] = rle["counts"].decode("utf-8")
        records.append({"file_name": file_name, "category_id": int(index), "segmentation": rle})
    return records


def save_indexed_png(path: str | os.PathLike[str], label_map: np.ndarray, colours: np.ndarray) -> None:
    """Write ``label_map`` (uint8) as a palette PNG with ``colours`` ((C, 3) uint8); 255 (background) grey.

    Raises:
        InputError: more than 256 palette entries are needed.
    """
    from PIL import Image

    if len(colours) > MAX_INDEXED_CLASSES or label_map.dtype != np.uint8:
        raise InputError(f"an indexed PNG holds at most {MAX_INDEXED_CLASSES} classes, this map has {len(colours)}")
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(colours)] = colours
    if len(colours) < 256:
        table[255] = BACKGROUND_GREY
    # frombytes, not convert("P"): the values must stay the class indices, not be re-quantised
    image = Image.frombytes("P", label_map.shape[::-1], np.ascontiguousarray(label_map).tobytes())
    image.putpalette(table.reshape(-1).tolist())
    image.save(path, format="PNG")


def save_probs(path: str | os.PathLike[str], probs: np.ndarray, dtype: str = "float32") -> None:
    """Write (C, H, W) scores as ``.npy`` in ``dtype`` (float32 or float16)."""
    if dtype not in PROBS_DTYPES:
        raise InputError(f"unknown probability dtype {dtype!r}; choose one of {', '.join(PROBS_DTYPES)}")
    with open(path, "wb") as handle:  # a file object: np.save(path) would append ".npy" to a temporary name
        np.save(handle, np.ascontiguousarray(probs, dtype=dtype))


def to_hf(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> list[dict[str, Any]]:
    """``[{"label": name, "score": mean score over its region, "mask": PIL "L" image (255 inside)}]`` for
    each predicted class, as transformers' ``pipeline("image-segmentation")`` returns."""
    from PIL import Image

    stats = class_statistics(scores, labels, classes)
    return [
        {
            "label": s["name"],
            "score": s["mean_score"],
            "mask": Image.fromarray(((labels == s["index"]) * 255).astype(np.uint8), mode="L"),
        }
        for s in stats
    ]
