"""Class vocabularies of datasets: shipped benchmark lists, class files, and seen-class matching.

The shipped lists (``infoclip/data/vocab/*.json``) are CAT-Seg's ``datasets/*.json`` verbatim, trailing
space of ADE-150's ``"bed "`` included: names reach models exactly as in the published protocol, and each
model decides how to turn a name into a prompt (CAT-Seg uses the first comma-separated synonym).
``coco_panoptic`` holds the 133 COCO panoptic names of detectron2's ``COCO_CATEGORIES`` (panopticapi's table; its
ids are in ``coco_panoptic_categories.tsv``, read by ``infoclip.data.panoptic``).
Loading and validation are shared with ``infoclip segment`` (``infoclip.segmentation.classes``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from infoclip.segmentation.classes import load_vocabulary, parse_classes, shipped_vocabularies, validate_class_names

__all__ = ["load_vocabulary", "match_classes", "read_class_file", "resolve_classes", "synonyms"]


def read_class_file(path: str | os.PathLike[str]) -> list[str]:
    """Class names from a JSON file (a list of strings) or a text file (one name per line, ``#`` comments)."""
    return parse_classes(f"@{Path(path)}")


def resolve_classes(value: str | os.PathLike[str] | Sequence[str], base: Path | None = None) -> list[str]:
    """Class names given as a list, a shipped vocabulary name (``coco``), or a class file (relative to ``base``)."""
    if isinstance(value, (str, os.PathLike)):
        if str(value) in shipped_vocabularies():
            return load_vocabulary(str(value))
        path = Path(value).expanduser()
        return read_class_file(base / path if base is not None and not path.is_absolute() else path)
    return validate_class_names(list(value), source="class list")


def synonyms(name: str) -> list[str]:
    """The comma-separated synonyms of a class name, stripped and lower-cased (``"building, edifice"``)."""
    return [part.strip().lower() for part in name.split(",") if part.strip()]


def match_classes(class_names: Sequence[str], reference: Iterable[str]) -> list[bool]:
    """For each class name, whether any of its synonyms is a synonym of a name in ``reference``.

    Used to mark the classes of an evaluation vocabulary that were seen in training (e.g. ADE-150 classes
    also in COCO-Stuff): ``"person, individual"`` matches ``"person"``; ``"tvmonitor"`` does not match ``"tv"``.
    """
    known = {s for name in reference for s in synonyms(name)}
    return [any(s in known for s in synonyms(name)) for name in class_names]
