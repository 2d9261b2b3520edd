"""FC-CLIP's own prompt-engineered class lists, with synonyms (``fcclip/data/datasets/*_with_prompt_eng.txt``).

Each class is one string of comma-separated synonyms, exactly as FC-CLIP's metadata holds it
(``"wall,walls,brick wall,stone wall,interior wall"``). The class order equals the benchmarks' label order;
the strings differ from the CAT-Seg lists in ``infoclip/data/vocab`` (fcclip-reference.md §1.2), so FC-CLIP
numbers are made with these. ``voc21`` keeps VOC's ``background`` class (with its synonyms) as class 0;
``voc20`` is ``voc21`` without it. ``coco133`` is the training vocabulary (COCO panoptic, 80 things + 53 stuff).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from infoclip.errors import InputError

VOCAB_DIR = Path(__file__).parent / "vocab"
#: shipped FC-CLIP vocabularies, name -> file
VOCABULARIES: dict[str, Path] = {p.stem: p for p in sorted(VOCAB_DIR.glob("*.json"))}


@lru_cache(maxsize=None)
def _load(name: str) -> tuple[str, ...]:
    return tuple(json.loads(VOCABULARIES[name].read_text(encoding="utf-8")))


def fcclip_vocabulary(name: str) -> list[str]:
    """The class strings of a shipped FC-CLIP vocabulary (``ade150``, ``ade847``, ``coco133``, ``pc59``,
    ``pc459``, ``voc20``, ``voc21``)."""
    if name not in VOCABULARIES:
        raise InputError(f"no FC-CLIP vocabulary {name!r}; shipped: {', '.join(VOCABULARIES)}")
    return list(_load(name))


def split_synonyms(class_names: Sequence[str]) -> list[list[str]]:
    """FC-CLIP's ``split_labels``: ``", "`` becomes ``","``, then a split on ``","``; nothing else is stripped."""
    return [name.replace(", ", ",").split(",") for name in class_names]


def seen_classes(class_names: Sequence[str], train_class_names: Sequence[str]) -> list[bool]:
    """FC-CLIP's ``category_overlapping_mask``: a class is seen when any of its synonyms is a training synonym."""
    train = {s for synonyms in split_synonyms(train_class_names) for s in synonyms}
    return [not train.isdisjoint(synonyms) for synonyms in split_synonyms(class_names)]
