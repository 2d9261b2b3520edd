"""The adapter contract: what an OVSS framework provides so that the InfoCLIP objective can attach to it.

An *adapter* (``Adapter``) contributes one named framework (CAT-Seg, later SAN and FC-CLIP). The training
engine and the InfoCLIP objective only ever see the three things below, for the student and for the
teacher alike:

* ``DenseEmbeddings.image``: dense image embeddings D_V, shape (B, H*W, D), with their grid (H, W);
* ``DenseEmbeddings.text``: class text embeddings D_L, shape (T, D) (or (B, T, D) when they differ per image);
* the task loss and the prediction path, which stay inside the adapter's model (``OVSSModel``).

Everything else (how the framework computes its logits, which CLIP parts it fine-tunes, its evaluation
protocol, its checkpoint format) is the adapter's business. ``infoclip.core`` knows nothing of adapters.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infoclip.adapters.parameters import (
    WeightDecayPolicy,
    build_param_groups,
    count_parameters,
    format_parameter_table,
    part_of,
    parts_rule,
)
from infoclip.errors import AdapterError, InputError


@dataclass
class DenseEmbeddings:
    """Dense image and class text embeddings of one forward pass.

    Attributes:
        image: (B, H*W, D) float tensor, the dense image embeddings in row-major grid order.
        grid: (H, W), with H*W equal to ``image.shape[1]``.
        text: (T, D) or (B, T, D) float tensor, one embedding per class name.
    """

    image: torch.Tensor
    grid: tuple[int, int]
    text: torch.Tensor

    def __post_init__(self) -> None:
        if self.image.ndim != 3:
            raise AdapterError(f"dense image embeddings must be (B, H*W, D), got shape {tuple(self.image.shape)}")
        h, w = self.grid
        if h * w != self.image.shape[1]:
            raise AdapterError(f"grid {self.grid} does not match {self.image.shape[1]} image tokens")
        if self.text.ndim not in (2, 3) or self.text.shape[-1] != self.image.shape[-1]:
            raise AdapterError(
                f"text embeddings must be (T, D) or (B, T, D) with D={self.image.shape[-1]}, "
                f"got shape {tuple(self.text.shape)}"
            )
        if self.text.ndim == 3 and self.text.shape[0] != self.image.shape[0]:
            raise AdapterError("per-image text embeddings must have the image batch size as first dimension")


@dataclass
class TrainOutput:
    """What a student's training forward returns: task logits and the embeddings *of that same pass*.

    Attributes:
        logits: (B, T, h, w) float task logits at the framework's output resolution.
        embeddings: the student's ``DenseEmbeddings`` computed in the same forward (never a second pass).
        alignment: optional (B, H*W, T) student alignment map R^S when the model already computed it with the
            shared LPAM (the ``lpam_feeds_decoder`` option); the engine then reuses it for the distillation loss.
    """

    logits: torch.Tensor
    embeddings: DenseEmbeddings
    alignment: torch.Tensor | None = None


#: the ``lr_parts`` part that trains at the recipe's CLIP learning-rate multiplier (``solver.clip_lr_multiplier``)
CLIP_PART = "clip"


@dataclass(frozen=True)
class EvalProtocol:
    """One evaluation protocol of an adapter (``OVSSModel.protocols``).

    Attributes:
        name: the word a user gives (``"sliding"``, ``"whole"``), unique within the model.
        description: one line saying what the protocol does (shown by ``infoclip adapters list``).
    """

    name: str
    description: str


class OVSSModel(nn.Module, abc.ABC):
    """Base class of an adapter's segmentation model (the student): the one door every caller goes through.

    The training engine, ``Segmenter``, ``evaluate``, ``export``, ``convert`` and the model factory
    (``infoclip.models``) use only what is declared here; nothing outside an adapter's package names its
    config keys or private attributes. Subclasses implement the three abstract methods and override the rest
    where the framework can do more than the default says:

    =========================== ========================================================================
    ``forward_train``           task logits + the student's dense embeddings of the same pass (abstract)
    ``task_loss``               the framework's own loss (abstract)
    ``predict``                 per-class scores of one image with one of ``protocols`` (abstract)
    ``embed_dim``               width D of the dense embeddings (default: ``AdapterError``)
    ``clip_tag``                ``"<architecture>:<pretrained>"`` of its CLIP (default: ``""``, none)
    ``load_pretrained``         load the pretrained backbone weights a trainer starts from (default: nothing)
    ``set_grad_checkpointing``  recompute activations in backward (default: ``AdapterError``)
    ``prompt_templates``        the prompt templates class names go through (default: ``[]``, none)
    ``set_prompt_templates``    replace them (default: ``AdapterError``)
    ``lr_parts``                named parts with their own lr multiplier (default: ``{}``)
    ``param_groups``            optimizer groups of the trainable parameters (default: by ``lr_parts``)
    ``parameter_table``         a text table of trainable / frozen parameters (default: by part)
    ``protocols``               the evaluation protocols, the first one the default
    ``score_description``       what ``predict``'s scores mean (recorded with ``--save-probs`` outputs)
    ``model_config``            the architecture config that rebuilds the model (stored in weights)
    ``inference_state_dict``    the weights ``export`` writes (default: the full state)
    ``dense_clip``              its own (fine-tuned) CLIP for the training-free dense alignment (default: error)
    =========================== ========================================================================

    Images enter as float tensors in RGB with values in [0, 255]; each model applies its own normalisation.
    """

    #: name of the adapter that built this model
    adapter_name: str = ""
    #: evaluation protocols, the first one being the default (the framework's published protocol)
    protocols: tuple[EvalProtocol, ...] = (EvalProtocol("whole", "the whole image in one forward pass"),)
    #: what ``predict`` returns per pixel and class, in a sentence (stored beside ``--save-probs`` arrays)
    score_description: str = "per-class probabilities in [0, 1]"
    #: ``task_loss`` also takes ``mask_classification.InstanceLabels`` (one target per panoptic segment); the
    #: engine gives every other model the semantic view of a panoptic training set
    instance_targets: bool = False
    #: the part name of parameters that ``lr_parts`` does not name (they train at the base learning rate)
    default_lr_part: str = "decoder"

    # ------------------------------------------------------------------ training
    @abc.abstractmethod
    def forward_train(
        self, images: torch.Tensor, class_names: Sequence[str], lpam: nn.Module | None = None
    ) -> TrainOutput:
        """Training forward.

        Args:
            images: (B, 3, H, W) float, RGB in [0, 255], already cropped to the training size.
            class_names: the T class names of the training vocabulary.
            lpam: the shared LPAM when it feeds the decoder (then R^S replaces the framework's own
                alignment and is returned in ``TrainOutput.alignment``); ``None`` otherwise.
        """

    @abc.abstractmethod
    def task_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The framework's own loss. logits (B, T, h, w); labels (B, H, W) int64, ``infoclip.data.IGNORE_INDEX`` (-1) where there is no ground truth."""

    @property
    def embed_dim(self) -> int:
        """Width D of ``DenseEmbeddings.image`` / ``.text`` (the LPAM is built at this width).

        Raises:
            AdapterError: by default; every model that trains with the InfoCLIP objective overrides it.
        """
        raise AdapterError(f"adapter {self.adapter_name or type(self).__name__!r} does not state the width of its dense embeddings (embed_dim)")

    @property
    def clip_tag(self) -> str:
        """``"<architecture>:<pretrained>"`` of the CLIP the model starts from (``"ViT-B-16-quickgelu:openai"``,
        ``":random"`` for a random init), stored in weights files. Default: ``""`` (the model names no CLIP)."""
        return ""

    def load_pretrained(self, cache_dir: str | None = None) -> Path | None:
        """Load the pretrained weights a training run starts from (CLIP, backbone); may download.

        Building a model never downloads: it starts from a seeded random init, and the trainer calls this once
        after building (loading a weights file replaces all weights anyway).

        Returns:
            The weights file read, or ``None`` when there is nothing to load (the default).

        Raises:
            WeightsNotFoundError: the weights are not cached and cannot be downloaded.
        """
        return None

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute activations in backward to save memory in training.

        Raises:
            AdapterError: by default (the model cannot).
        """
        raise AdapterError(f"adapter {self.adapter_name or type(self).__name__!r} does not support gradient checkpointing")

    @property
    def decoder_lpam(self) -> nn.Module | None:
        """The shared LPAM the model owns when its map R^S feeds the decoder (built from the config that
        ``Adapter.configure_lpam`` returned); the InfoCLIP objective then uses this one. Default: ``None``."""
        return None

    def lr_parts(self) -> dict[str, tuple[str, ...]]:
        """Named parts of the model by module-name prefix, e.g. ``{"clip": ("clip_model",)}``.

        A part trains at ``base_lr * multiplier`` in ``param_groups``; modules no part names belong to
        ``default_lr_part`` at the base rate. The training recipe gives the part called ``CLIP_PART``
        (``"clip"``) the multiplier ``solver.clip_lr_multiplier``. Default: no parts.
        """
        return {}

    def param_groups(
        self,
        base_lr: float,
        weight_decay: WeightDecayPolicy | float = 0.0,
        lr_multipliers: Mapping[str, float] | None = None,
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the parameters that train (``requires_grad``; set by the model).

        Args:
            base_lr: the learning rate of ``default_lr_part``.
            weight_decay: the decay policy (a float is the plain decay with the official exemptions).
            lr_multipliers: part name -> multiplier of ``base_lr`` (``{"clip": 0.01}``); parts without one
                train at ``base_lr``, multipliers of parts the model does not have are ignored.

        Returns:
            ``torch.optim`` groups ``{"params", "lr", "weight_decay", "name"}`` named after the part
            (``decoder``, ``clip``, ``clip_no_decay``, ...); every trainable parameter in exactly one.
        """
        policy = weight_decay if isinstance(weight_decay, WeightDecayPolicy) else WeightDecayPolicy(float(weight_decay))
        rule_for = parts_rule(self.lr_parts(), float(base_lr), dict(lr_multipliers or {}), self.default_lr_part)
        return build_param_groups([(self, rule_for)], policy)

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        """``part -> {"trainable": n, "frozen": n}`` by ``lr_parts`` (for logs and the run summary)."""
        parts = self.lr_parts()
        counts = count_parameters(
            self, lambda name: part_of(name.rpartition(".")[0], parts, self.default_lr_part), [self.default_lr_part, *parts]
        )
        return {part: {"trainable": tr, "frozen": fr} for part, (tr, fr) in counts.items()}

    def parameter_table(self) -> str:
        """A text table of trainable and frozen parameters per part (printed when training starts).

        Default: one row per ``lr_parts`` part (and ``default_lr_part``) plus a total.
        """
        counts = {part: (c["trainable"], c["frozen"]) for part, c in self.parameter_counts().items()}
        return format_parameter_table(counts)

    # ------------------------------------------------------------------ prompts
    @property
    def prompt_templates(self) -> list[str]:
        """The templates (``"a photo of a {}."``) that class names go through; ``[]`` when the model uses none."""
        return []

    def set_prompt_templates(self, templates: Sequence[str]) -> None:
        """Prompt with ``templates`` from now on (each holds ``{}`` once); the model drops its cached text embeddings.

        Raises:
            InputError: templates the model cannot use (a wrong number of them, where that is architecture).
            AdapterError: by default (the model has no prompts to change).
        """
        raise AdapterError(f"adapter {self.adapter_name or type(self).__name__!r} does not support changing its prompt templates")

    # ------------------------------------------------------------------ prediction
    @property
    def default_protocol(self) -> str:
        """The name of the first protocol in ``protocols`` (the framework's published one)."""
        return self.protocols[0].name

    def check_protocol(self, protocol: str | None) -> str:
        """``protocol`` (``None``: the default) if the model has it.

        Raises:
            InputError: an unknown protocol (the message lists the model's).
        """
        if protocol is None:
            return self.default_protocol
        names = [p.name for p in self.protocols]
        if protocol not in names:
            raise InputError(
                f"unknown protocol {protocol!r} for {self.adapter_name or type(self).__name__}; choose one of {', '.join(names)}",
                parameter="protocol",
            )
        return protocol

    @abc.abstractmethod
    def predict(self, image: torch.Tensor, class_names: Sequence[str], protocol: str = "sliding") -> torch.Tensor:
        """Per-class scores of one image with one of the model's evaluation ``protocols``.

        This is the validation boundary of prediction: the public entry points (``Segmenter.predict``,
        ``infoclip.evaluation.evaluate``, the training validation) check the inputs once with
        ``check_prediction_inputs`` and this method trusts them:

        Args:
            image: (3, H, W) float, RGB in [0, 255], at its original size, on the model's device.
            class_names: T >= 1 class names (a list of non-empty strings).
            protocol: the name of one of ``protocols``.

        Returns:
            (T, H, W) float32 scores at the image's size, meaning what ``score_description`` says
            (probabilities in [0, 1]; whether they sum to 1 over T is the framework's business).
        """

    # ------------------------------------------------------------------ its own CLIP
    def dense_clip(self) -> tuple[nn.Module, str]:
        """The model's own CLIP, as it is now (fine-tuned or not), with its open_clip architecture name.

        What ``DenseCLIPBaseline.from_model`` scores training-free (dense patch embeddings against the class
        prompts), to measure whether fine-tuning kept the CLIP's pixel-text alignment. The CLIP is shared, not
        copied: an open_clip model built by ``infoclip.clip.build_clip`` (split attention).

        Raises:
            AdapterError: by default (the model exposes no open_clip CLIP).
        """
        raise AdapterError(f"adapter {self.adapter_name or type(self).__name__!r} does not expose its CLIP for the dense-CLIP alignment")
    # ------------------------------------------------------------------ prompt ensembles and the text cache
    #: a ``infoclip.segmentation.text_cache.TextEmbeddingCache`` the model reads and writes its inference-time
    #: class embeddings through (set by ``Segmenter``/``eval``; ``None``: no disk cache)
    text_embedding_cache: Any = None

    def set_prompt_ensemble(self, templates: Sequence[str]) -> None:
        """Prompt every class with all of ``templates`` and use the mean of their L2-normalised embeddings,
        re-normalised, as its one embedding (CLIP's prompt ensembling).

        Raises:
            AdapterError: by default (the model cannot ensemble prompts).
        """
        raise AdapterError(f"adapter {self.adapter_name or type(self).__name__!r} cannot ensemble prompt templates")

    # ------------------------------------------------------------------ weights
    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights needed for inference (what ``infoclip export`` writes). Default: the full state."""
        return {k: v.detach() for k, v in self.state_dict().items()}

    def model_config(self) -> dict[str, Any]:
        """The architecture config that rebuilds this model through ``Adapter.build_model`` (stored in weights).

        Default: a copy of the ``config`` mapping the model keeps as ``self.config``.

        Raises:
            AdapterError: the model keeps no ``config`` and does not override this.
        """
        config = self.__dict__.get("config")
        if not isinstance(config, Mapping):
            raise AdapterError(f"{type(self).__name__} must implement model_config() (it keeps no self.config)")
        return json.loads(json.dumps(dict(config)))


def check_prediction_inputs(image: Any, class_names: Any) -> list[str]:
    """Check what ``OVSSModel.predict`` trusts: an image (3, H, W) float or uint8 tensor, a non-empty name list.

    Returns:
        The class names as a list.

    Raises:
        InputError: a wrong image tensor, or class names that are not a non-empty list of non-empty strings.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"image must be a (3, H, W) RGB tensor with values in [0, 255], got {shape}")
    if not (image.is_floating_point() or image.dtype == torch.uint8):
        raise InputError(f"image must be float (or uint8) RGB in [0, 255], got dtype {image.dtype}")
    return check_class_list(class_names)


def check_class_list(class_names: Any) -> list[str]:
    """The class names as a list, checked to be a non-empty sequence of non-empty strings.

    Raises:
        InputError: otherwise.
    """
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or not class_names:
        raise InputError("class names must be a non-empty list of strings")
    names = list(class_names)
    if not all(isinstance(n, str) and n.strip() for n in names):
        raise InputError("class names must be non-empty strings")
    return names


@dataclass
class Adapter:
    """Description of one OVSS framework, returned by ``infoclip_register_adapters``.

    Attributes:
        name: short unique name (``catseg``), used by ``--adapter`` and stored in weights files.
        summary: one line for ``infoclip adapters list``.
        configs: shipped presets, name -> YAML path.
        build_model: ``build_model(model_config) -> OVSSModel``, the student. ``model_config`` is the
            ``model`` section of a resolved run config (or the architecture config stored in weights).
        build_teacher: ``build_teacher(model_config, student) -> nn.Module`` whose ``forward(images,
            class_names)`` returns the frozen pretrained CLIP's ``DenseEmbeddings`` computed the way the
            framework runs its own CLIP (same dense mode, resolution and prompts). Never trained or exported.
        importers: checkpoint importers for ``infoclip convert``: name -> ``fn(src_path) -> (state_dict,
            model_config)``.
        version: version string shown by ``infoclip adapters list``.
        configure_lpam: ``configure_lpam(model_config, feeds_decoder, residual) -> model_config``: the model
            config with the InfoCLIP options the model itself needs (``feeds_decoder``: R^S replaces the
            framework's own alignment in its decoder, the model then owns the LPAM as ``decoder_lpam``;
            ``residual``: the LPAM residual branch). ``None``: the model cannot feed its decoder with the LPAM
            and its config is used as given.
    """

    name: str
    summary: str
    build_model: Callable[[Mapping[str, Any]], OVSSModel]
    build_teacher: Callable[[Mapping[str, Any], OVSSModel], nn.Module]
    configs: Mapping[str, Path] = field(default_factory=dict)
    importers: Mapping[str, Callable[[Path], tuple[dict[str, torch.Tensor], dict[str, Any]]]] = field(
        default_factory=dict
    )
    version: str = ""
    configure_lpam: Callable[[Mapping[str, Any], bool, str], dict[str, Any]] | None = None

    def config_path(self, name: str) -> Path:
        """Path of the shipped preset ``name``; ``AdapterError`` listing the presets if unknown."""
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "(none)"
            raise AdapterError(f"adapter {self.name!r} has no config {name!r}; shipped configs: {known}")
        return Path(self.configs[name])
