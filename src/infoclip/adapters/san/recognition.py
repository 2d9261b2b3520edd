"""SAN's use of the CLIP image tower: the feature extractor (the first blocks) and the recognition head
(the remaining blocks, reading [SOS] tokens under the side adapter's attention bias).

Both run on one open_clip ``CLIP`` from ``infoclip.clip.build_clip`` (batch-first tokens (B, L, D), split
Q/K/V attention); the official code splits the same tower into ``clip_visual_extractor`` and
``clip_rec_head`` (san-reference.md §1.2, §1.5, §1.6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.clip import block_forward, dense_block_forward, embed_image_tokens, run_block

#: the additive logit that keeps tokens from attending (SAN uses -100, not -inf)
BLOCKED = -100.0


def extract_features(visual: nn.Module, images: torch.Tensor, num_blocks: int) -> tuple[list[torch.Tensor], tuple[int, int]]:
    """CLIP tokens after ``ln_pre`` and after each of the first ``num_blocks`` blocks.

    Args:
        visual: open_clip ``VisionTransformer``.
        images: (B, 3, H, W) float, CLIP-normalised (the position table is resized to the grid, bicubic,
            no antialias).
        num_blocks: blocks to run.

    Returns:
        ``(tokens, grid)``: ``num_blocks + 1`` tensors (B, 1 + h*w, width), CLS first (index 0 = after
        ``ln_pre``; i = output of block i-1), raw residual stream; grid (h, w).
    """
    x, grid = embed_image_tokens(visual, images)
    outputs = [x]
    checkpointed = bool(getattr(visual.transformer, "grad_checkpointing", False))
    for block in visual.transformer.resblocks[:num_blocks]:
        x = run_block(block_forward, checkpointed, block, x)
        outputs.append(x)
    return outputs, grid


def feature_map(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, 1 + h*w, C) tokens -> (B, C, h, w) map of the patch tokens."""
    b, _, c = tokens.shape
    return tokens[:, 1:].transpose(1, 2).reshape(b, c, *grid)


def recognition_mask(bias: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The additive attention mask of the recognition blocks, token order [Q SOS | CLS | h*w patches].

    SOS tokens attend to themselves (0) and to the patches (the side adapter's bias, max-pooled onto the
    CLIP grid), never to the other SOS tokens or the CLS token (-100); CLS and patches attend to CLS and
    patches as in plain CLIP and never to SOS, so they leave the blocks unchanged.

    Args:
        bias: (B, heads, Q, h_s, w_s) float attention bias on the side adapter's grid.
        grid: (h, w) CLIP grid.

    Returns:
        (B, heads, Q + 1 + h*w, Q + 1 + h*w) float.
    """
    b, heads, queries, hs, ws = bias.shape
    pooled = F.adaptive_max_pool2d(bias.reshape(b, heads * queries, hs, ws), grid).reshape(b, heads, queries, -1)
    length = pooled.shape[-1]
    size = queries + 1 + length
    base = bias.new_zeros(size, size)
    base[:, :queries] = BLOCKED
    index = torch.arange(queries, device=bias.device)
    base[index, index] = 0.0
    base[:queries, queries] = BLOCKED
    mask = base.expand(b, heads, size, size).clone()
    mask[:, :, :queries, -length:] = pooled
    return mask


def recognize(
    visual: nn.Module, tokens: torch.Tensor, bias: torch.Tensor, grid: tuple[int, int], first_block: int, tap: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The recognition head: CLIP blocks ``first_block..`` on [SOS | CLS | patches], SOS = the CLS token.

    Args:
        visual: open_clip ``VisionTransformer``.
        tokens: (B, 1 + h*w, width) tokens leaving block ``first_block - 1`` (CLS first).
        bias: (B, heads, Q, h_s, w_s) attention bias of the side adapter.
        grid: (h, w) CLIP grid.
        first_block: index of the first recognition block.
        tap: also return the dense embeddings of the CLS + patch tokens entering the last block, read out
            through the dense last block (``infoclip.clip.dense_block_forward``), ``ln_post`` and ``proj``.

    Returns:
        ``(embeddings, dense)``: (B, Q, D) L2-normalised mask embeddings; dense (B, h*w, D) float (not
        normalised) or ``None``.
    """
    queries = bias.shape[2]
    mask = recognition_mask(bias, grid).to(tokens.dtype)
    x = torch.cat([tokens[:, :1].expand(-1, queries, -1), tokens], dim=1)
    blocks = visual.transformer.resblocks[first_block:]
    checkpointed = bool(getattr(visual.transformer, "grad_checkpointing", False))
    dense = None
    for i, block in enumerate(blocks):
        if tap and i == len(blocks) - 1:
            plain = run_block(dense_block_forward, checkpointed, block, x[:, queries:])
            dense = (visual.ln_post(plain) @ visual.proj)[:, 1:]
        x = run_block(block_forward, checkpointed, block, x, mask)
    sos = visual.ln_post(x[:, :queries]) @ visual.proj
    return F.normalize(sos, dim=-1), dense
