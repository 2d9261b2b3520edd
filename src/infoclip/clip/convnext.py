"""The readouts of an open_clip ConvNeXt image tower (timm trunk + CLIP head) that dense use needs.

An open_clip ConvNeXt CLIP (``timm_pool: ""``, ``timm_proj: "mlp"``, e.g. ``convnext_large_d_320``) embeds
an image as ``visual.head(trunk.head(avg_pool(trunk features)))``: timm's ``NormMlpClassifierHead`` (pool,
LayerNorm2d, no classifier) then open_clip's MLP projection. Its *dense* readout applies the same head, without
the pooling, to every pixel of the last stage's map: a per-pixel CLIP embedding in the text's space. FC-CLIP's
out-of-vocabulary branch reads mask-pooled features through that head (fcclip-reference.md §1.1), and the
miniature pretrains its tiny ConvNeXt CLIP with a loss on the per-pixel readout. Both call these functions, so
there is one definition of the dense path.
"""

from __future__ import annotations

import torch
from torch import nn


def trunk_features(visual: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four stage outputs of the ConvNeXt trunk at the images' own resolution (no resize).

    Args:
        visual: an open_clip ``TimmModel`` with a timm ConvNeXt trunk (``stem``, four ``stages``, ``norm_pre``).
        images: (B, 3, H, W) CLIP-normalised float; H, W multiples of 32.

    Returns:
        ``res2`` (B, C2, H/4, W/4), ``res3`` (/8), ``res4`` (/16), ``res5`` (B, C5, H/32, W/32), and ``dense`` =
        ``trunk.norm_pre(res5)`` (identity for ConvNeXt-L and convnext_atto), the map the CLIP head reads.
    """
    trunk = visual.trunk
    out: dict[str, torch.Tensor] = {}
    x = trunk.stem(images)
    for i, stage in enumerate(trunk.stages):
        x = stage(x)
        out[f"res{i + 2}"] = x
    out["dense"] = trunk.norm_pre(x)
    return out


def head_embeddings(visual: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """CLIP's image head (``trunk.head`` then ``visual.head``) on feature vectors: (..., C5) -> (..., E).

    Each vector goes through the head as a 1 x 1 map, so the head's average pool is a no-op and the result
    is exactly what ``visual`` returns for an image whose pooled last-stage feature is that vector. Not
    normalised.
    """
    lead, channels = features.shape[:-1], features.shape[-1]
    x = visual.trunk.head(features.reshape(-1, channels, 1, 1))
    return visual.head(x).reshape(*lead, -1)


def dense_embeddings(visual: nn.Module, dense: torch.Tensor) -> torch.Tensor:
    """CLIP's image head per pixel: (B, C5, h, w) -> (B, h*w, E), row-major, not normalised."""
    return head_embeddings(visual, dense.flatten(2).transpose(1, 2))


def pooled_embedding(visual: nn.Module, dense: torch.Tensor) -> torch.Tensor:
    """The ordinary CLIP image embedding from the dense map: (B, C5, h, w) -> (B, E), equal to ``visual(images)``."""
    return visual.head(visual.trunk.forward_head(dense))


def is_convnext_tower(visual: nn.Module) -> bool:
    """Whether ``visual`` is an open_clip timm tower with a four-stage ConvNeXt-style trunk and a pooling head."""
    from open_clip.timm_model import TimmModel

    trunk = getattr(visual, "trunk", None)
    return isinstance(visual, TimmModel) and all(hasattr(trunk, a) for a in ("stem", "stages", "norm_pre", "head"))
