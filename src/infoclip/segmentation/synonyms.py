"""Synonyms: a class that several names describe, scored by the maximum (or mean) over its names.

A user's class may carry synonyms separated by ``|``: ``--classes "sofa|couch, cat"`` (in a class file, one
class per line: ``sofa|couch``). Each synonym goes through the model as a name of its own and the class's score
at a pixel is the maximum over its synonyms (``max``, the FC-CLIP/ODISE rule) or their mean (``mean``).

The shipped benchmark vocabularies keep their names exactly as the benchmark has them (ADE's ``"building,
edifice"`` is one name, the model encodes its first synonym, as the published protocol does); ``split_commas``
(``--split-synonyms``) makes their ``", "``-separated synonyms synonyms in the sense above.

A prompt longer than CLIP's context (77 tokens) would be cut by the tokenizer: ``long_prompts`` names them so
callers warn instead of silently truncating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from infoclip.errors import InputError

SYNONYM_SEPARATOR = "|"
SYNONYM_RULES: tuple[str, ...] = ("max", "mean")
#: CLIP's text context, start and end tokens included
CLIP_CONTEXT = 77


@dataclass(frozen=True)
class SynonymGroups:
    """Class names expanded into the names the model sees.

    Attributes:
        classes: the T class labels as given (``"sofa|couch"``), in label order.
        names: the N >= T names passed to the model (every synonym once), class-major.
        owner: N ints, ``owner[i]`` = the class index of ``names[i]``.
    """

    classes: tuple[str, ...]
    names: tuple[str, ...]
    owner: tuple[int, ...]

    @property
    def has_synonyms(self) -> bool:
        return len(self.names) > len(self.classes)

    def reduce(self, scores: torch.Tensor, rule: str = "max") -> torch.Tensor:
        """(N, H, W) scores of ``names`` -> (T, H, W) class scores by ``rule`` over each class's synonyms."""
        check_rule(rule)
        if scores.ndim != 3 or scores.shape[0] != len(self.names):
            raise InputError(f"expected ({len(self.names)}, H, W) scores, got {tuple(scores.shape)}")
        if not self.has_synonyms:
            return scores
        owner = torch.tensor(self.owner, device=scores.device)
        out = []
        for index in range(len(self.classes)):
            group = scores[owner == index]
            out.append(group.amax(dim=0) if rule == "max" else group.mean(dim=0))
        return torch.stack(out)


def check_rule(rule: str) -> str:
    if rule not in SYNONYM_RULES:
        raise InputError(f"unknown synonym rule {rule!r}; choose one of {', '.join(SYNONYM_RULES)}")
    return rule


def split_synonyms(label: str, split_commas: bool = False) -> list[str]:
    """The synonyms of one class label: split on ``|`` (and on ``", "`` with ``split_commas``), spaces stripped.

    Raises:
        InputError: an empty synonym (``"sofa||couch"``, ``"sofa|"``), named with its class.
    """
    parts = label.split(SYNONYM_SEPARATOR) if SYNONYM_SEPARATOR in label else [label]
    if split_commas:
        parts = [p for part in parts for p in part.split(",")]
    if len(parts) > 1 and any(not p.strip() for p in parts):
        raise InputError(f"class {label!r} has an empty synonym; write synonyms as 'sofa|couch'")
    return [p.strip() for p in parts] if len(parts) > 1 else [label]


def expand_synonyms(classes: Sequence[str], split_commas: bool = False) -> SynonymGroups:
    """Expand class labels into the model's names (see ``SynonymGroups``).

    A ``|`` synonym given for two classes is refused (which class would it mean?). A ``", "`` synonym that a
    benchmark vocabulary shares between two classes (ADE-847: ``"blind, screen"`` and ``"screen door, screen"``,
    ``"counter"`` and ``"buffet, counter, sideboard"``) stays a name of both, as the benchmark's names say.

    Raises:
        InputError: an empty synonym, or one ``|`` synonym given for two classes (named).
    """
    names: list[str] = []
    owner: list[int] = []
    owners: dict[str, set[int]] = {}
    #: synonyms some class wrote with "|" (a user's synonym; a benchmark's shared comma synonyms are allowed)
    written: set[str] = set()
    for index, label in enumerate(classes):
        by_bar = SYNONYM_SEPARATOR in label
        for synonym in split_synonyms(label, split_commas):
            key = " ".join(synonym.split()).lower()
            seen_in = owners.setdefault(key, set())
            if index in seen_in:
                continue  # a class naming itself twice adds nothing
            if seen_in and (by_bar or key in written):
                other = classes[min(seen_in)]
                raise InputError(f"synonym {synonym!r} is given for two classes, {other!r} and {label!r}")
            if by_bar:
                written.add(key)
            seen_in.add(index)
            names.append(synonym)
            owner.append(index)
    return SynonymGroups(tuple(classes), tuple(names), tuple(owner))


def long_prompts(names: Sequence[str], templates: Sequence[str], context: int = CLIP_CONTEXT) -> list[str]:
    """The prompts (template filled with a name) with more BPE tokens than CLIP's ``context``."""
    from open_clip.tokenizer import _tokenizer

    too_long = []
    for name in names:
        for template in templates or ["{}"]:
            prompt = template.format(name)
            if len(_tokenizer.encode(prompt)) + 2 > context:
                too_long.append(prompt)
    return too_long
