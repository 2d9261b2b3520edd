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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from infoclip.errors import AdapterError


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


class OVSSModel(nn.Module, abc.ABC):
    """Base class of an adapter's segmentation model (the student).

    Images enter as float tensors in RGB with values in [0, 255]; each model applies its own normalisation.
    """

    #: name of the adapter that built this model
    adapter_name: str = ""

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

    @abc.abstractmethod
    def predict(self, image: torch.Tensor, class_names: Sequence[str], protocol: str = "sliding") -> torch.Tensor:
        """Per-class probabilities of one image with the framework's evaluation protocol.

        Args:
            image: (3, H, W) float, RGB in [0, 255], at its original size.
            class_names: T class names (any T >= 1).
            protocol: ``"sliding"`` (the framework's published protocol) or ``"whole"``.

        Returns:
            (T, H, W) float32 probabilities in [0, 1] at the image's size.
        """

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

    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights needed for inference (what ``infoclip export`` writes). Default: the full state."""
        return {k: v.detach() for k, v in self.state_dict().items()}

    def model_config(self) -> dict[str, Any]:
        """The architecture config that rebuilds this model (stored in exported weights)."""
        return dict(getattr(self, "config", {}))


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

    def config_path(self, name: str) -> Path:
        """Path of the shipped preset ``name``; ``AdapterError`` listing the presets if unknown."""
        if name not in self.configs:
            known = ", ".join(sorted(self.configs)) or "(none)"
            raise AdapterError(f"adapter {self.name!r} has no config {name!r}; shipped configs: {known}")
        return Path(self.configs[name])
