"""Background and "other": pixels that none of the user's classes explains.

Every OVSS model assigns every pixel to one of the given classes, so a small vocabulary gives false positives
(ux-anchors §2 #7). Two opt-in remedies, both off by default (the published protocol is unchanged):

* a **background threshold** ``T`` in [0, 1]: a pixel whose best class score is below ``T`` is background
  (ClearCLIP's ``prob_thd``, GroupViT's ``bg_thresh``). In ``SegmentationResult.labels`` it is
  ``BACKGROUND`` (-1); in the stored label map it is the largest value of the map's dtype (255 for uint8, 65535
  for uint16), which no class uses; the overlay paints it grey;
* a **vocabulary expansion** (SAN's demo): the names of a shipped vocabulary (``coco``: COCO's 133 panoptic
  names, SAN's "COCO-all"; ``coco-stuff``: COCO-Stuff's 171; ``ade150``) are scored with the user's classes;
  a pixel won by one of them gets the one extra id ``T`` (the class ``"other"``, one past the user's list).
  Names that repeat one of the user's classes are left out of the expansion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from infoclip.errors import InputError

if TYPE_CHECKING:  # torch is imported where scores are computed: the CLI checks its flags before importing it
    import torch

#: label of background pixels in ``SegmentationResult.labels`` (int64)
BACKGROUND = -1
#: the name of the expansion's one class
OTHER = "other"
#: expansion name -> shipped vocabulary
EXPANSIONS: dict[str, str] = {"coco": "coco_panoptic", "coco-stuff": "coco", "ade150": "ade150"}


def check_threshold(threshold: float | None) -> float | None:
    """``threshold`` if it is ``None`` or a number in [0, 1].

    Raises:
        InputError: a threshold outside [0, 1] (or not a number).
    """
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
        raise InputError(f"the background threshold must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


def _key(name: str) -> str:
    return " ".join(name.split(",")[0].split("|")[0].split()).lower()


def expansion_names(expansion: str, user_classes: Sequence[str]) -> list[str]:
    """The extra names of ``expansion`` (one of ``EXPANSIONS``, or any shipped vocabulary by its own name) that
    are not among the user's classes (compared by first synonym).

    Raises:
        InputError: an unknown expansion name (the known ones listed), or a user class called "other".
    """
    from infoclip.segmentation.classes import load_vocabulary, shipped_vocabularies

    if expansion not in EXPANSIONS and expansion not in shipped_vocabularies():
        raise InputError(
            f"unknown vocabulary expansion {expansion!r}; choose one of {', '.join(EXPANSIONS)} "
            f"or a shipped vocabulary ({', '.join(shipped_vocabularies())})"
        )
    taken = {_key(n) for n in user_classes} | {_key(s) for n in user_classes for s in n.split("|")}
    if OTHER in taken:
        raise InputError(f"the class list holds {OTHER!r}, the label vocabulary expansion gives to added names; rename it")
    return [n for n in load_vocabulary(EXPANSIONS.get(expansion, expansion)) if _key(n) not in taken]


def fold_expansion(scores: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(T + E, H, W) scores of the user's T classes and E expansion names -> (T + 1, H, W): the last channel,
    ``"other"``, is the maximum over the expansion names (so the argmax picks "other" where one of them wins)."""
    if scores.ndim != 3 or scores.shape[0] <= num_classes:
        raise InputError(f"expected more than {num_classes} score channels, got {tuple(scores.shape)}")
    import torch

    return torch.cat([scores[:num_classes], scores[num_classes:].amax(dim=0, keepdim=True)])


def decide_labels(scores: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
    """(T, H, W) scores -> (H, W) int64 labels: the argmax, ``BACKGROUND`` where the best score is below
    ``threshold`` (``None``: no background)."""
    best, labels = scores.max(dim=0)
    if threshold is not None:
        import torch

        labels = torch.where(best < threshold, torch.full_like(labels, BACKGROUND), labels)
    return labels
