"""``SegmentOptions``: the opt-in prediction options of ``segment``, ``eval`` and ``Segmenter``, applied to any
adapter's model through the model contract (``OVSSModel.predict`` and its prompt-template methods).

With the defaults (``SegmentOptions()``) nothing changes: the model's own templates, its names as given, no
background, no expansion, no TTA, so the published numbers are reproduced. Every output records
``SegmentOptions.describe()``.

Order of operations for one image: the class labels are expanded into the model's names (synonyms, then the
expansion's names); the model's protocol runs on each TTA view and the scores are averaged
(``infoclip.segmentation.tta``); synonym scores are reduced per class (``max``/``mean``); the expansion folds
into one ``"other"`` channel; the argmax is taken and pixels whose best score is below the background threshold
become background (``infoclip.segmentation.background``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from infoclip.adapters.contract import OVSSModel
from infoclip.errors import AdapterError, InputError
from infoclip.segmentation.background import OTHER, check_threshold, decide_labels, expansion_names, fold_expansion
from infoclip.segmentation.synonyms import check_rule, expand_synonyms, long_prompts
from infoclip.segmentation.templates import TRAINED, resolve_templates
from infoclip.segmentation.tta import check_tta, predict_with_tta


class PromptTooLongWarning(UserWarning):
    """A prompt has more tokens than CLIP's context; the tokenizer cuts it."""


@dataclass(frozen=True)
class SegmentOptions:
    """Opt-in prediction options (all off by default).

    Attributes:
        templates: a template set name (``trained``, ``imagenet80``, ``imagenet7``, ``vild14``) or a file
            (``@path``), see ``infoclip.segmentation.templates``.
        synonym_rule: ``max`` or ``mean`` over a class's synonyms (``"sofa|couch"``).
        split_synonyms: also split names on ``", "`` (the benchmark vocabularies' synonyms).
        background_threshold: ``None`` or T in [0, 1]: best score below T -> background.
        expand_vocab: ``None``, ``coco``, ``coco-stuff`` or ``ade150``: extra names, reported as ``"other"``.
        tta: ``none``, ``flip`` or ``ms``.
    """

    templates: str = TRAINED
    synonym_rule: str = "max"
    split_synonyms: bool = False
    background_threshold: float | None = None
    expand_vocab: str | None = None
    tta: str = "none"

    def __post_init__(self) -> None:
        check_rule(self.synonym_rule)
        check_threshold(self.background_threshold)
        check_tta(self.tta)
        resolve_templates(self.templates)
        if self.expand_vocab is not None:
            expansion_names(self.expand_vocab, [])

    @property
    def is_default(self) -> bool:
        return self == SegmentOptions()

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of the options (stored in every output)."""
        return asdict(self)


def apply_templates(model: OVSSModel, templates: Sequence[str] | None) -> None:
    """Make ``model`` prompt with ``templates`` (``None``: leave its own), through the model contract: as many
    templates as the model has replace them (``set_prompt_templates``); another number is ensembled into the
    model's one prompt (``set_prompt_ensemble``, CLIP's mean of normalised embeddings).

    Raises:
        InputError: the model cannot use them (the reason says why).
    """
    if templates is None:
        return
    try:
        if len(templates) == len(model.prompt_templates):
            model.set_prompt_templates(list(templates))
            return
        try:
            model.set_prompt_ensemble(list(templates))
        except AdapterError:  # a model that averages any number of templates itself (FC-CLIP) takes them as they are
            model.set_prompt_templates(list(templates))
    except AdapterError as exc:
        raise InputError(str(exc)) from exc


@dataclass
class OptionedScores:
    """What ``OptionedPredictor.scores`` returns for one image.

    Attributes:
        scores: (C, H, W) float32: the T user classes, plus ``"other"`` last with a vocabulary expansion.
        labels: (H, W) int64 in [0, C), ``background.BACKGROUND`` (-1) below the threshold.
        classes: the C class labels (``"other"`` last with an expansion).
    """

    scores: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


class OptionedPredictor:
    """A model's ``predict`` with ``SegmentOptions`` around it (templates are applied to the model once, here).

    Args:
        model: an ``OVSSModel`` (or the training-free baseline).
        options: the options; ``SegmentOptions()`` is the plain protocol.
    """

    def __init__(self, model: OVSSModel, options: SegmentOptions | None = None) -> None:
        self.model = model
        self.options = options or SegmentOptions()
        apply_templates(model, resolve_templates(self.options.templates))
        self._warned: set[str] = set()
        self._checked: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()

    def _warn_long(self, names: Sequence[str]) -> None:
        key = (tuple(names), tuple(self.model.prompt_templates))
        if key in self._checked:  # tokenizing every prompt again per image would cost more than the model
            return
        self._checked.add(key)
        fresh = [p for p in long_prompts(names, self.model.prompt_templates) if p not in self._warned]
        if fresh:
            self._warned.update(fresh)
            shown = "; ".join(repr(p[:60] + "...") for p in fresh[:3])
            warnings.warn(
                f"{len(fresh)} prompt(s) exceed CLIP's 77-token context and are cut by the tokenizer: {shown}",
                PromptTooLongWarning,
                stacklevel=3,
            )

    def scores(self, image: torch.Tensor, classes: Sequence[str], protocol: str) -> OptionedScores:
        """Scores and labels of one image (see the module docstring for the order of operations).

        Args:
            image: (3, H, W) float RGB in [0, 255] on the model's device.
            classes: the T class labels (synonyms ``"a|b"``).
            protocol: the model's protocol name.
        """
        opts = self.options
        groups = expand_synonyms(list(classes), opts.split_synonyms)
        extra = expansion_names(opts.expand_vocab, list(groups.names)) if opts.expand_vocab else []
        names = list(groups.names) + extra
        self._warn_long(names)
        raw = predict_with_tta(lambda view: self.model.predict(view, names, protocol), image, opts.tta)
        class_scores = groups.reduce(raw[: len(groups.names)], opts.synonym_rule)
        labels_out = list(classes)
        if extra:
            class_scores = fold_expansion(torch.cat([class_scores, raw[len(groups.names) :]]), len(classes))
            labels_out.append(OTHER)
        labels = decide_labels(class_scores, opts.background_threshold)
        return OptionedScores(class_scores.float(), labels, labels_out)

    def predict_labels(self, image: torch.Tensor, classes: Sequence[str], protocol: str) -> torch.Tensor:
        """(H, W) int64 labels in [0, T), -1 where no user class is predicted (background or "other")."""
        result = self.scores(image, classes, protocol)
        labels = result.labels
        if len(result.classes) > len(classes):
            labels = torch.where(labels == len(classes), torch.full_like(labels, -1), labels)
        return labels
