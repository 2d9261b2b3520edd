"""Custom datasets: a folder of images, a folder of labels and a class list, described by ``dataset.yaml``.

``dataset.yaml`` (paths relative to the folder holding it)::

    name: kitchens                 # optional, default: the folder name
    classes: classes.json          # a JSON list / text file of class names, or an inline YAML list
    images: images                 # used for every split unless `splits` is given
    labels: labels
    image_suffix: .jpg             # optional; default: .jpg, .jpeg and .png
    label_suffix: .png             # optional; .png (uint8 or uint16) or .tif
    ignore_value: 255              # optional, default 255
    seen_classes: [cat, sofa]      # optional: classes seen in training -> seen/unseen mIoU and harmonic mean
    splits:                        # optional: per-split folders
      train: {images: images/train, labels: labels/train}
      val: {images: images/val, labels: labels/val}

Labels are single-channel maps whose values index ``classes`` (0 = first class), ``ignore_value`` where
there is no ground truth. Every image needs a label with the same stem and size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from infoclip.data.spec import ANY_SPLIT, DatasetSpec, SplitLayout
from infoclip.data.vocab import resolve_classes
from infoclip.errors import DatasetError

DESCRIPTION_FILE = "dataset.yaml"
DEFAULT_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_KNOWN_KEYS = {
    "name", "title", "classes", "images", "labels", "image_suffix", "label_suffix", "ignore_value",
    "seen_classes", "splits",
}


#: a description file is small; its values, with YAML aliases followed, must stay small too
MAX_DESCRIPTION_BYTES = 1_000_000
MAX_DESCRIPTION_VALUES = 200_000
MAX_DESCRIPTION_CHARS = 10_000_000


def _check_expansion(data: object, yaml_path: Path) -> None:
    """Refuse a description whose aliases expand to a huge document (a "billion laughs" file).

    YAML aliases share one object, so loading is cheap; what blows up is walking or printing the result.
    The walk here follows aliases like any later use would, and stops as soon as a bound is passed.
    """
    values = chars = 0
    stack = [data]
    while stack:
        node = stack.pop()
        values += 1
        if isinstance(node, str):
            chars += len(node)
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        if values > MAX_DESCRIPTION_VALUES or chars > MAX_DESCRIPTION_CHARS:
            raise DatasetError(
                f"{yaml_path} expands to more than {MAX_DESCRIPTION_VALUES} values or {MAX_DESCRIPTION_CHARS} "
                "characters (YAML aliases repeated?); a dataset description must stay small"
            )


def _suffix(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where} must be a file ending such as .png")
    value = value.strip().lower()
    return value if value.startswith(".") else f".{value}"


def _suffixes(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_IMAGE_SUFFIXES
    items = value if isinstance(value, list) else [value]
    return tuple(_suffix(v, where) for v in items)


def load_custom_spec(path: str | os.PathLike[str]) -> DatasetSpec:
    """Read a custom dataset description: a folder holding ``dataset.yaml``, or that YAML file itself.

    Raises:
        DatasetError: no description, invalid YAML, unknown keys, missing or invalid fields.
    """
    path = Path(path).expanduser()
    yaml_path = path / DESCRIPTION_FILE if path.is_dir() else path
    if not yaml_path.is_file():
        if path.is_dir():
            raise DatasetError(
                f"{path} has no {DESCRIPTION_FILE}; write one (see the README section 'Custom datasets') "
                "or give its `images`, `labels` and `classes`",
                parameter="dataset",
                mentions=("images", "labels", "classes"),
            )
        raise DatasetError(f"dataset not found: {path} is neither a registered dataset name nor a dataset folder")
    try:
        if yaml_path.stat().st_size > MAX_DESCRIPTION_BYTES:
            raise DatasetError(
                f"{yaml_path} is {yaml_path.stat().st_size} bytes; a dataset description is at most "
                f"{MAX_DESCRIPTION_BYTES} bytes (put long class lists in a classes file)"
            )
        data = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetError(f"cannot read {yaml_path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{yaml_path} must hold a YAML mapping (name, classes, images, labels, ...)")
    _check_expansion(data, yaml_path)
    for key in ("name", "title"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise DatasetError(
                f"{yaml_path}: {key} must be a text, not a YAML {type(data[key]).__name__} (quote it: {key}: \"...\")"
            )
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise DatasetError(f"{yaml_path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(_KNOWN_KEYS))}")
    base = yaml_path.parent.resolve()  # DataLoader workers and later chdirs must find the same folders
    if "classes" not in data:
        raise DatasetError(f"{yaml_path} needs `classes`: a class-name JSON file or a list of names")
    splits = _read_splits(data, yaml_path)
    ignore_value = data.get("ignore_value", 255)
    if not isinstance(ignore_value, int) or isinstance(ignore_value, bool):
        raise DatasetError(f"{yaml_path}: ignore_value must be an integer such as 255")
    return custom_spec(
        name=str(data.get("name") or base.resolve().name),
        title=data.get("title"),
        classes=resolve_classes(data["classes"], base),
        splits=splits,
        base=base,
        image_suffixes=_suffixes(data.get("image_suffix"), f"{yaml_path}: image_suffix"),
        label_suffix=_suffix(data.get("label_suffix", ".png"), f"{yaml_path}: label_suffix"),
        ignore_value=ignore_value,
        seen_classes=resolve_classes(data["seen_classes"], base) if data.get("seen_classes") else None,
    )


def _read_splits(data: dict[str, Any], yaml_path: Path) -> dict[str, SplitLayout]:
    splits = data.get("splits")
    if splits is None:
        if "images" not in data or "labels" not in data:
            raise DatasetError(f"{yaml_path} needs `images` and `labels` folders (or `splits`)")
        return {ANY_SPLIT: SplitLayout(str(data["images"]), str(data["labels"]))}
    if not isinstance(splits, dict) or not splits:
        raise DatasetError(f"{yaml_path}: `splits` must map split names to {{images: DIR, labels: DIR}}")
    out = {}
    for split, layout in splits.items():
        if not isinstance(layout, dict) or "images" not in layout or "labels" not in layout:
            raise DatasetError(f"{yaml_path}: split {split!r} needs `images` and `labels` folders")
        out[str(split)] = SplitLayout(str(layout["images"]), str(layout["labels"]))
    return out


def custom_spec(
    *,
    classes: Sequence[str],
    name: str = "custom",
    title: str | None = None,
    images: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None,
    splits: dict[str, SplitLayout] | None = None,
    base: Path | None = None,
    image_suffixes: tuple[str, ...] = DEFAULT_IMAGE_SUFFIXES,
    label_suffix: str = ".png",
    ignore_value: int = 255,
    seen_classes: Sequence[str] | None = None,
) -> DatasetSpec:
    """A ``DatasetSpec`` for user data: either ``images`` + ``labels`` folders (any split) or ``splits``.

    Relative folders are taken relative to ``base`` (default: the current directory).
    """
    if splits is None:
        if images is None or labels is None:
            raise DatasetError("a custom dataset needs an images folder and a labels folder")
        splits = {ANY_SPLIT: SplitLayout(str(images), str(labels))}
    if seen_classes is not None:
        unknown = sorted(set(seen_classes) - set(classes))
        if unknown:
            raise DatasetError(f"dataset {name!r}: seen_classes {', '.join(map(repr, unknown[:5]))} are not in its classes")
    return DatasetSpec(
        name=name,
        title=title or name,
        class_names=tuple(classes),
        splits=splits,
        ignore_value=ignore_value,
        image_suffixes=image_suffixes,
        label_suffix=label_suffix,
        seen_classes=tuple(seen_classes) if seen_classes is not None else None,
        base=base if base is not None else Path("."),
    )
