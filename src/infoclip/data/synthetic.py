"""Small synthetic datasets written in the real on-disk formats (JPEG images, uint8 PNG / uint16 TIFF labels).

For tests, smoke runs and plugin authors: ``write_benchmark_tree(root)`` lays out every built-in dataset
exactly where ``get_dataset`` looks for it under ``root``; ``write_custom_dataset(folder, classes)`` writes
a custom dataset with its ``dataset.yaml``. Labels are random rectangles of a few classes each (so that
most classes are absent from each image, as in real data), with an ignored border strip.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from infoclip.data.builtin import builtin_specs
from infoclip.data.registry import DatasetSpec


def random_label(
    rng: np.random.Generator, hw: tuple[int, int], class_ids: Sequence[int], ignore_value: int | None, dtype: type
) -> np.ndarray:
    """(H, W) map of 3-6 random rectangles over a background class, with a 2-pixel ignored left strip."""
    h, w = hw
    label = np.full((h, w), class_ids[0], dtype=dtype)
    for _ in range(int(rng.integers(3, 7))):
        y0, x0 = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
        y1, x1 = int(rng.integers(y0 + 1, h + 1)), int(rng.integers(x0 + 1, w + 1))
        label[y0:y1, x0:x1] = class_ids[int(rng.integers(0, len(class_ids)))]
    if ignore_value is not None:
        label[:, :2] = ignore_value
    return label


def image_for_label(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """An RGB image whose colour follows the label (one colour per class) plus noise."""
    palette = rng.integers(0, 256, size=(int(label.max()) + 1, 3))
    base = palette[label.astype(np.int64)].astype(np.int16) + rng.integers(-20, 21, size=(*label.shape, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def write_label(path: Path, label: np.ndarray) -> None:
    """PNG for uint8 (mode L), TIFF for .tif paths (uint16 kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, label)
    else:
        Image.fromarray(label).save(path)


def write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=95)


def _label_dtype(spec: DatasetSpec) -> type:
    return np.uint16 if spec.num_label_classes > 255 or spec.ignore_value > 255 else np.uint8


def write_benchmark_tree(
    root: str | os.PathLike[str],
    names: Sequence[str] | None = None,
    num_images: int = 3,
    base_size: tuple[int, int] = (40, 56),
    unlabelled_images: int = 1,
    seed: int = 0,
) -> dict[str, int]:
    """Write the built-in datasets (all, or ``names``) under ``root`` in their real layouts.

    Image ``i`` is ``base_size + 8*i`` pixels, so that sizes differ across a dataset. Datasets that share an
    image folder (PC-59/459, VOC-20/20b) share images; such folders also get ``unlabelled_images`` extra
    images without labels, as the real ``JPEGImages`` folders have. Returns name -> images written per split.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    written: dict[str, int] = {}
    images_done: set[Path] = set()
    for spec in builtin_specs():
        if names is not None and spec.name not in names:
            continue
        for split, layout in spec.splits.items():
            images_dir, labels_dir = root / layout.images, root / layout.labels
            k = spec.num_label_classes
            for i in range(num_images):
                hw = (base_size[0] + 8 * i, base_size[1] + 8 * i)
                present = sorted(rng.choice(k, size=min(k, 4), replace=False).tolist())
                label = random_label(rng, hw, present, spec.ignore_value, _label_dtype(spec))
                stem = f"{split}_{i:05d}"
                write_label(labels_dir / f"{stem}{spec.label_suffix}", label)
                image_path = images_dir / f"{stem}{spec.image_suffixes[0]}"
                if image_path not in images_done:
                    write_image(image_path, image_for_label(rng, np.where(label == spec.ignore_value, 0, label) % 64))
                    images_done.add(image_path)
            if spec.shared_image_folder:
                for j in range(unlabelled_images):
                    extra = images_dir / f"unlabelled_{j:05d}{spec.image_suffixes[0]}"
                    if extra not in images_done:
                        write_image(extra, rng.integers(0, 256, size=(*base_size, 3), dtype=np.uint8))
                        images_done.add(extra)
            written[f"{spec.name}:{split}"] = num_images
    return written


def write_custom_dataset(
    folder: str | os.PathLike[str],
    classes: Sequence[str],
    num_images: int = 4,
    base_size: tuple[int, int] = (32, 40),
    seen_classes: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """Write a custom dataset (``images/``, ``labels/``, ``classes.json``, ``dataset.yaml``); returns the folder.

    With ``splits`` (e.g. ``["train", "val"]``) each split gets ``images/<split>`` and ``labels/<split>``.
    """
    import json

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.json").write_text(json.dumps(list(classes)), encoding="utf-8")
    description: dict[str, object] = {"name": folder.name, "classes": "classes.json", "ignore_value": 255}
    sub_folders = [(s, f"images/{s}", f"labels/{s}") for s in splits] if splits else [(None, "images", "labels")]
    for _, images, labels in sub_folders:
        for i in range(num_images):
            hw = (base_size[0] + 4 * i, base_size[1] + 4 * i)
            present = sorted(rng.choice(len(classes), size=min(len(classes), 3), replace=False).tolist())
            label = random_label(rng, hw, present, 255, np.uint8)
            write_label(folder / labels / f"img_{i:04d}.png", label)
            write_image(folder / images / f"img_{i:04d}.jpg", image_for_label(rng, np.where(label == 255, 0, label)))
    if splits:
        description["splits"] = {s: {"images": im, "labels": lab} for s, im, lab in sub_folders}
    else:
        description.update(images="images", labels="labels")
    if seen_classes is not None:
        description["seen_classes"] = list(seen_classes)
    (folder / "dataset.yaml").write_text(yaml.safe_dump(description, sort_keys=False), encoding="utf-8")
    return folder


def write_coco_panoptic(
    root: str | os.PathLike[str],
    splits: Sequence[str] = ("train", "val"),
    num_images: int = 3,
    base_size: tuple[int, int] = (40, 56),
    seed: int = 0,
) -> dict[str, int]:
    """Write a small COCO panoptic 2017 tree under ``root`` in the real format (detectron2's layout).

    Per image: a stuff background, 2-4 thing instances (two of one category, so instances differ only by id),
    one crowd segment, and an unlabelled (id 0) corner; segment ids are large random numbers, so all three PNG
    channels carry bits. Returns ``split -> images written``.
    """
    import json

    from infoclip.data.panoptic import coco_panoptic_categories, coco_panoptic_spec, id_to_rgb

    root = Path(root)
    rng = np.random.default_rng(seed)
    categories = coco_panoptic_categories()
    things = [c for c in categories if c.isthing]
    stuff = [c for c in categories if not c.isthing]
    spec = coco_panoptic_spec(root)
    written: dict[str, int] = {}
    for split in splits:
        layout = spec.split(split)
        annotations, images = [], []
        for i in range(num_images):
            h, w = base_size[0] + 8 * i, base_size[1] + 8 * i
            image_id = 1000 * (1 + list(splits).index(split)) + i
            ids = np.zeros((h, w), dtype=np.int64)
            used: set[int] = set()

            def new_id() -> int:
                while True:
                    value = int(rng.integers(1, 256**3))
                    if value not in used:
                        used.add(value)
                        return value

            background = stuff[int(rng.integers(len(stuff)))]
            segments = [(new_id(), background.id, 0)]
            ids[:, :] = segments[0][0]
            twin = things[int(rng.integers(len(things)))]
            chosen = [twin, twin] + [things[int(rng.integers(len(things)))] for _ in range(int(rng.integers(0, 3)))]
            for k, category in enumerate(chosen + [things[int(rng.integers(len(things)))]]):
                y0, x0 = int(rng.integers(0, h - 8)), int(rng.integers(0, w - 8))
                y1, x1 = y0 + int(rng.integers(4, 9)), x0 + int(rng.integers(4, 9))
                segment = (new_id(), category.id, 1 if k == len(chosen) else 0)
                ids[y0:y1, x0:x1] = segment[0]
                segments.append(segment)
            ids[-4:, -4:] = 0  # unlabelled corner
            present = set(np.unique(ids).tolist())
            segments = [s for s in segments if s[0] in present]
            stem = f"{image_id:012d}"
            png = root / layout.panoptic / f"{stem}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(id_to_rgb(ids)).save(png)
            label = np.zeros((h, w), dtype=np.int64)
            for n, (sid, _, _) in enumerate(segments):
                label[ids == sid] = n + 1
            write_image(root / layout.images / f"{stem}.jpg", image_for_label(rng, label))
            annotations.append(
                {
                    "image_id": image_id,
                    "file_name": f"{stem}.png",
                    "segments_info": [
                        {"id": sid, "category_id": cid, "iscrowd": crowd, "area": int((ids == sid).sum()),
                         "bbox": [0, 0, w, h]}
                        for sid, cid, crowd in segments
                    ],
                }
            )
            images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": h, "width": w})
        payload = {
            "info": {"description": "synthetic COCO panoptic (infoclip tests)"},
            "images": images,
            "annotations": annotations,
            "categories": [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "supercategory": ""} for c in categories],
        }
        json_path = root / layout.annotations
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(payload), encoding="utf-8")
        written[split] = num_images
    return written
