"""``OpenCLIPModel``: the part of the model contract that every adapter built on one open_clip CLIP shares.

Such a model keeps the CLIP as ``clip_model`` (from ``infoclip.clip.build_clip``), says which architecture and
pretrained weights it is (``clip_settings()``: ``{"name": ..., "pretrained": ...}``), and keeps a class-name
encoder ``text_encoder`` whose cache (``clear()``) must be dropped whenever the weights or their device change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from infoclip.adapters.contract import OVSSModel
from infoclip.clip import load_clip_weights


class OpenCLIPModel(OVSSModel):
    """An ``OVSSModel`` around one open_clip CLIP (``clip_model``), described by ``clip_settings()``, with a
    cached class-name encoder ``text_encoder``."""

    text_encoder: Any

    def clip_settings(self) -> Mapping[str, Any]:
        """``{"name": open_clip architecture, "pretrained": tag, file or None}`` of ``clip_model``."""
        raise NotImplementedError

    @property
    def clip_tag(self) -> str:
        """``"<open_clip name>:<pretrained>"``, e.g. ``"ViT-B-16-quickgelu:openai"`` (``:random`` when ``clip.pretrained`` is null)."""
        clip_cfg = self.clip_settings()
        return f"{clip_cfg['name']}:{clip_cfg['pretrained'] or 'random'}"

    @property
    def embed_dim(self) -> int:
        """Width of CLIP's joint embedding space (``visual.proj``: 512 for ViT-B/16, 768 for ViT-L/14)."""
        return int(self.clip_model.visual.proj.shape[1])

    def dense_clip(self) -> tuple[nn.Module, str]:
        """``clip_model`` (shared, with whatever fine-tuning changed) and its open_clip architecture name."""
        return self.clip_model, str(self.clip_settings()["name"])

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute CLIP block activations in backward (saves memory in training)."""
        self.clip_model.set_grad_checkpointing(enable)

    def load_pretrained(self, cache_dir: str | None = None) -> Path | None:
        """Load the pretrained CLIP weights named by ``model.clip.pretrained`` (tag or file); may download.

        Returns the weights file read, or ``None`` when ``pretrained`` is null (the seeded random init stays).

        Raises:
            WeightsNotFoundError: not cached and cannot be downloaded (the message says what to fetch).
        """
        clip_cfg = self.clip_settings()
        if not clip_cfg["pretrained"]:
            return None
        self.text_encoder.clear()
        return load_clip_weights(self.clip_model, clip_cfg["name"], clip_cfg["pretrained"], cache_dir)

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001 - nn.Module's signature
        self.text_encoder.clear()
        return super()._apply(fn, *args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # noqa: ANN001
        self.text_encoder.clear()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
