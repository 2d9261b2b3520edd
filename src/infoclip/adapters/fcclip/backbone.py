"""FC-CLIP's frozen convolutional CLIP: an open_clip ConvNeXt CLIP run as a multi-scale backbone.

Mirrors the official wrapper (``fcclip/modeling/backbone/clip.py``, fcclip-reference.md §1.1) and keeps
the open_clip model under ``clip_model`` so that official checkpoint keys (``backbone.clip_model.*``) map by
prefix. Three readouts of one image pass:

* ``features``: the ConvNeXt trunk at the padded input resolution (no resize to 320): res2..res5 at strides
  4/8/16/32 and ``clip_vis_dense`` = ``trunk.norm_pre(res5)`` (identity for ConvNeXt-L);
* ``region_embeddings``: FC-CLIP's out-of-vocabulary head, CLIP's own image head (``trunk.head`` then
  ``visual.head``) applied to mask-pooled dense features, one embedding per region;
* ``dense_embeddings``: the same head applied per pixel (the InfoCLIP teacher, fcclip-reference.md §6).

The text tower uses infoclip's split Q/K/V attention (same numbers as ``nn.MultiheadAttention``), so
open_clip's text checkpoints load through ``infoclip.clip`` and text is encoded by ``infoclip.clip.encode_text``
(batch-first; FC-CLIP's own permutes break on open_clip >= 2.26, reference §1.1).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from infoclip.clip import SplitQKVAttention, convnext, encode_text
from infoclip.clip.loading import create_random_model, register_tiny_configs
from infoclip.errors import ConfigError, InputError

_CONFIG_DIR = Path(__file__).parent / "model_configs"
#: the tiny random-init ConvNeXt CLIP of the ``fcclip-tiny`` preset (timm ``convnext_atto``, text width 32)
TINY_CONVNEXT_CLIP = "infoclip-tiny-convnext"
_registered = False


def register_model_configs() -> None:
    """Register FC-CLIP's test architecture ``infoclip-tiny-convnext`` with open_clip (once)."""
    global _registered
    if _registered:
        return
    import open_clip

    if TINY_CONVNEXT_CLIP not in open_clip.list_models():
        open_clip.add_model_config(_CONFIG_DIR)
    _registered = True


def build_convnext_clip(model_name: str, init_seed: int | None = None) -> nn.Module:
    """An open_clip ConvNeXt CLIP with random weights (never downloads), text attention split into Q/K/V.

    Args:
        model_name: open_clip architecture with a timm ConvNeXt image tower (``convnext_large_d_320``,
            ``infoclip-tiny-convnext``, ...).
        init_seed: seed of the random init (the global RNG is left untouched); ``None`` uses the global RNG.

    Raises:
        ConfigError: unknown architecture, or not a ConvNeXt CLIP with an OpenAI-style text tower.
    """
    import open_clip

    register_model_configs()
    register_tiny_configs()  # the miniature's ConvNeXt CLIP lives beside the other small CLIP architectures
    if model_name not in open_clip.list_models():
        choices = ", ".join(m for m in open_clip.list_models() if m.startswith("convnext_"))
        raise ConfigError(f"unknown open_clip architecture {model_name!r}; ConvNeXt choices: {choices}, {TINY_CONVNEXT_CLIP}")
    model = create_random_model(model_name, init_seed)
    visual = getattr(model, "visual", None)
    if not convnext.is_convnext_tower(visual) or not hasattr(model, "token_embedding"):
        raise ConfigError(
            f"{model_name} is not a ConvNeXt CLIP with an OpenAI-style text tower; FC-CLIP needs one "
            "(convnext_large_d_320; FC-CLIP's ResNet variants are not supported)"
        )
    for block in model.transformer.resblocks:
        if isinstance(block.attn, nn.MultiheadAttention):
            block.attn = SplitQKVAttention.from_multihead(block.attn)
    return model


class ConvNeXtCLIP(nn.Module):
    """The frozen ConvNeXt CLIP of FC-CLIP (official ``CLIP`` backbone), built offline.

    Args:
        model_name: open_clip architecture name.
        init_seed: seed of the random init.

    Attributes:
        channels: output channels of res2..res5 (192/384/768/1536 for ConvNeXt-L).
        embed_dim: CLIP's joint embedding width (``text_projection.shape[-1]``, 768 for ConvNeXt-L).
    """

    def __init__(self, model_name: str, init_seed: int | None = None) -> None:
        super().__init__()
        self.model_name = model_name
        self.clip_model = build_convnext_clip(model_name, init_seed)
        trunk = self.clip_model.visual.trunk
        self.channels: tuple[int, ...] = tuple(int(info["num_chs"]) for info in trunk.feature_info)
        if len(self.channels) != 4:
            raise ConfigError(f"{model_name}: FC-CLIP needs a four-stage ConvNeXt, this one has {len(self.channels)} stages")
        self.embed_dim = int(self.clip_model.text_projection.shape[-1])
        self.context_length = int(self.clip_model.positional_embedding.shape[0])

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Multi-scale trunk features of normalised, padded images.

        Args:
            images: (B, 3, H, W) float, CLIP-normalised; H and W multiples of 32.

        Returns:
            ``res2`` (B, C2, H/4, W/4) ... ``res5`` (B, C5, H/32, W/32) and ``clip_vis_dense`` (= norm_pre(res5)).
        """
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise InputError(f"backbone images must be float (B, 3, H, W), got {tuple(images.shape)} {images.dtype}")
        out = {k: v.contiguous() for k, v in convnext.trunk_features(self.clip_model.visual, images).items()}
        out["clip_vis_dense"] = out.pop("dense")
        return out

    def region_embeddings(self, pooled: torch.Tensor) -> torch.Tensor:
        """CLIP's image head on pooled features: (B, Q, C5) -> (B, Q, E), not normalised."""
        return convnext.head_embeddings(self.clip_model.visual, pooled)

    def dense_embeddings(self, dense: torch.Tensor) -> torch.Tensor:
        """CLIP's image head per pixel: (B, C5, h, w) -> (B, h*w, E) row-major, not normalised."""
        return convnext.dense_embeddings(self.clip_model.visual, dense)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Projected end-of-text embeddings (N, E), not normalised, of int64 tokens (N, L)."""
        return encode_text(self.clip_model, tokens)

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's trained ``logit_scale`` (log scale; the out-of-vocabulary logits use exp, clamped at 100)."""
        return self.clip_model.logit_scale
