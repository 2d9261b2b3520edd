"""CLIP forward passes the way CAT-Seg runs them: dense image tokens, intermediate taps, prompted text.

Three details change the numbers and are reproduced here (catseg-reference.md §1.2, §1.3):

* the position table is kept at its trained size and resized **on the fly** to the input grid with
  bicubic interpolation, ``align_corners=False`` and **no antialias** (open_clip's ``force_image_size``
  antialiases, which differs by about 8 % relative when growing 14x14 to 24x24);
* the last visual block is *dense*: no attention, only the value path
  ``out_proj(v_proj(ln_1(x)))`` plus a residual that is the block's **input CLS token** broadcast to
  every token, then the usual MLP residual; ``ln_post`` and ``proj`` are applied to all tokens;
* class names use only their first comma-separated synonym, inside each prompt template.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.errors import InputError


def resize_position_embedding(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The position table for a ``grid`` of patches: CLS entry kept, square patch table resized bicubically.

    Args:
        pos: (1 + S*S, D) float, the trained table (CLS first, then a square S x S grid, row-major).
        grid: (h, w) target grid.

    Returns:
        (1 + h*w, D) float; ``pos`` itself when the grid already matches.
    """
    tokens, dim = pos.shape
    side = math.isqrt(tokens - 1)
    if side * side != tokens - 1:
        raise InputError(f"position table of {tokens} entries is not 1 + a square grid")
    h, w = grid
    if (h, w) == (side, side):
        return pos
    table = pos[1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False, antialias=False)
    return torch.cat([pos[:1], resized.reshape(dim, h * w).T], dim=0)


def block_forward(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    x = x + block.attn(block.ln_1(x), attn_mask=attn_mask)[0]
    return x + block.mlp(block.ln_2(x))


def run_block(fn, checkpointed: bool, *args: torch.Tensor | nn.Module | None) -> torch.Tensor:  # noqa: ANN001
    """``fn(*args)``, recomputed in backward when the tower has open_clip's ``grad_checkpointing`` set."""
    if checkpointed and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint

        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def dense_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # CAT-Seg's forward_dense: value path only; the residual is the incoming CLS token, not each token.
    v = block.attn.value_path(block.ln_1(x)) + x[:, :1]
    return v + block.mlp(block.ln_2(v))


def embed_image_tokens(visual: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """The tokens entering an open_clip ViT's first block: patches + CLS + resized position table, ``ln_pre``.

    Args:
        visual: an open_clip ``VisionTransformer``.
        images: (B, 3, H, W) float, CLIP-normalised; a size that is not a multiple of the patch drops the
            remainder (the convolution's floor).

    Returns:
        ``(tokens, grid)``: tokens (B, 1 + h*w, width) float, CLS first; grid (h, w).
    """
    x = visual.conv1(images.to(visual.conv1.weight.dtype))
    b, width, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(b, 1, width)
    x = torch.cat([cls, x], dim=1)
    x = x + resize_position_embedding(visual.positional_embedding, (gh, gw)).to(x.dtype)
    return visual.ln_pre(x), (gh, gw)


def encode_image_dense(
    clip_model: nn.Module, images: torch.Tensor, taps: Sequence[int] = ()
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Dense CLIP image embeddings (CAT-Seg's ``encode_image(x, dense=True)``) and intermediate taps.

    Args:
        clip_model: an open_clip ``CLIP`` from ``infoclip.clip.build_clip`` (split attention).
        images: (B, 3, R, R) float, already CLIP-normalised; R a multiple of the patch size.
        taps: indices of visual blocks whose outputs (the raw residual stream) are returned.

    Returns:
        ``(tokens, tapped)``: tokens (B, 1 + h*w, E) float, CLS first, after ``ln_post`` and ``proj``
        (not L2-normalised); tapped: one (B, 1 + h*w, width) float tensor per entry of ``taps``, in order.
    """
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise InputError(f"CLIP images must be float (B, 3, H, W), got {tuple(images.shape)} {images.dtype}")
    visual = clip_model.visual
    blocks = visual.transformer.resblocks
    depth = len(blocks)
    if any(not 0 <= t < depth for t in taps):
        raise InputError(f"tap indices {list(taps)} out of range for a {depth}-block image tower")
    x, _ = embed_image_tokens(visual, images)
    found: dict[int, torch.Tensor] = {}
    checkpointed = bool(getattr(visual.transformer, "grad_checkpointing", False))
    for i, block in enumerate(blocks):
        x = run_block(dense_block_forward if i == depth - 1 else block_forward, checkpointed, block, x)
        if i in taps:
            found[i] = x
    tokens = visual.ln_post(x) @ visual.proj
    return tokens, [found[t] for t in taps]


def class_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Prompts of CAT-Seg's ``get_text_embeds``: each name's first ``', '``-separated synonym in each template.

    Returns ``len(class_names) * len(templates)`` strings, class-major.
    """
    if isinstance(class_names, str) or not class_names:
        raise InputError("class names must be a non-empty list of strings")
    prompts = []
    for name in class_names:
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"class names must be non-empty strings, got {name!r}")
        first = name.split(", ")[0]
        prompts.extend(template.format(first) for template in templates)
    return prompts


def causal_mask(length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(L, L) additive mask, ``-inf`` above the diagonal (CLIP's text attention)."""
    return torch.full((length, length), float("-inf"), device=device, dtype=dtype).triu_(1)


def encode_text(clip_model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """CLIP text embeddings at the end-of-text token (the highest id), projected, not normalised.

    Args:
        tokens: (N, L) int64 token ids from the model's tokenizer, L <= the context length.

    Returns:
        (N, E) float.
    """
    if tokens.ndim != 2 or tokens.dtype != torch.long:
        raise InputError(f"text tokens must be int64 (N, L), got {tuple(tokens.shape)} {tokens.dtype}")
    length = tokens.shape[1]
    x = clip_model.token_embedding(tokens)
    x = x + clip_model.positional_embedding[:length].to(x.dtype)
    mask = causal_mask(length, x.device, x.dtype)
    checkpointed = bool(getattr(clip_model.transformer, "grad_checkpointing", False))
    for block in clip_model.transformer.resblocks:
        x = run_block(block_forward, checkpointed, block, x, mask)
    x = clip_model.ln_final(x)
    pooled = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    return pooled @ clip_model.text_projection


def get_tokenizer(model_name: str):
    """open_clip's tokenizer for ``model_name`` (BPE shipped with open_clip; offline)."""
    import open_clip

    from infoclip.clip.loading import register_tiny_configs

    register_tiny_configs()
    return open_clip.get_tokenizer(model_name)


def normalize_images(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(images - mean) / std`` per channel; images (B, 3, H, W) float RGB on the 0-255 scale."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - m) / s
