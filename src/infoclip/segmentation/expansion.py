"""Vocabulary expansion (SAN's remedy for false positives with small vocabularies, san-reference.md §3.2).

With few classes every pixel must take one of them, so a model labels unlisted things with the closest listed
class. SAN's ``predict.py`` appends the COCO-Stuff names the user did not give and reports pixels won by any of
them as one "other" label beyond the user's list. Here the added classes' scores are folded into one "other"
channel (their maximum, so the argmax is the official one) and the user's classes keep their order and ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from infoclip.errors import InputError
from infoclip.segmentation.classes import _normalised, load_vocabulary

#: the label of pixels won by an added class
OTHER = "other"


def added_classes(class_names: Sequence[str], vocabulary: str) -> list[str]:
    """The names of shipped ``vocabulary`` (e.g. ``"coco"``, COCO-Stuff-171) not in ``class_names``, in its order.

    Raises:
        InputError: unknown vocabulary, or the user's list already has a class called "other".
    """
    given = {_normalised(n) for n in class_names}
    if OTHER in given:
        raise InputError(f"the class list holds {OTHER!r}, the label vocabulary expansion gives to added classes; rename it")
    return [name for name in load_vocabulary(vocabulary) if _normalised(name) not in given]


def fold_added_scores(scores: np.ndarray, num_user_classes: int) -> np.ndarray:
    """(T + E, H, W) scores -> (T + 1, H, W): the user's T channels, then the maximum over the E added ones."""
    if scores.shape[0] <= num_user_classes:
        return scores
    other = scores[num_user_classes:].max(axis=0, keepdims=True)
    return np.concatenate([scores[:num_user_classes], other], axis=0)
