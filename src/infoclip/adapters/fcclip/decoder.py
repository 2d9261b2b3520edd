"""FC-CLIP's masked-attention transformer decoder (Mask2Former) with the CLIP-space class head.

Module names mirror ``MultiScaleMaskedTransformerDecoder`` (``sem_seg_head.predictor.*`` in official
checkpoints). The class head is FC-CLIP's: mask-pooled pixel-decoder features, projected and added to the
query, mapped into CLIP's embedding space and compared with the text classifier (cosine, per-class max over
synonyms, plus the void column) (fcclip-reference.md §1.4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.adapters.fcclip.pixel_decoder import sine_position_embedding


def synonym_max_logits(
    x: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, synonyms_per_class: Sequence[int]
) -> torch.Tensor:
    """FC-CLIP's ``get_classification_logits``: scaled cosine logits, max over each class's synonyms.

    Args:
        x: (B, Q, E) embeddings (normalised here).
        text: (S + 1, E) L2-normalised rows: the synonyms of every class in class order, then void.
        logit_scale: log scale; ``exp`` is clamped at 100.
        synonyms_per_class: rows of each class (sums to S).

    Returns:
        (B, Q, C + 1) float: per-class max, the void logit last.
    """
    x = F.normalize(x, dim=-1)
    scale = torch.clamp(logit_scale.exp(), max=100)
    logits = scale * x @ text.T
    counts = list(synonyms_per_class)
    if all(c == 1 for c in counts):
        return logits
    per_class = [chunk.max(-1).values for chunk in logits[..., :-1].split(counts, dim=-1)]
    return torch.stack([*per_class, logits[..., -1]], dim=-1)


def mask_pool(x: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Average of ``x`` over each binary mask ``logit > 0`` (masks resized to ``x`` first; no gradient to masks).

    Args:
        x: (B, C, H, W) features.
        mask_logits: (B, Q, h, w) mask logits (bilinearly resized to (H, W) when they differ).

    Returns:
        (B, Q, C); an empty mask gives a zero vector.
    """
    if mask_logits.shape[-2:] != x.shape[-2:]:
        mask_logits = F.interpolate(mask_logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
    with torch.no_grad():
        mask = (mask_logits.detach() > 0).to(mask_logits.dtype)
        denom = mask.sum(dim=(-1, -2), keepdim=True) + 1e-8
    return torch.einsum("bchw,bqhw->bqc", x, mask / denom)


class MLP(nn.Module):
    """Linear layers with ReLU between them (``layers.{i}``)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [out_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def _xavier(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class CrossAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        _xavier(self)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        out = self.multihead_attn(tgt + query_pos, memory + pos, memory, attn_mask=mask)[0]
        return self.norm(tgt + out)


class SelfAttentionLayer(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads)
        self.norm = nn.LayerNorm(dim)
        _xavier(self)

    def forward(self, tgt: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        q = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, q, tgt)[0])


class FFNLayer(nn.Module):
    def __init__(self, dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm = nn.LayerNorm(dim)
        _xavier(self)

    def forward(self, tgt: torch.Tensor) -> torch.Tensor:
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


@dataclass
class HeadOutput:
    """One prediction-head call: logits (B, Q, C + 1), mask logits (B, Q, H/4, W/4), class embeddings
    (B, Q, E) before normalisation (the InfoCLIP student reads these of the last call)."""

    logits: torch.Tensor
    masks: torch.Tensor
    embeddings: torch.Tensor


class MaskedAttentionDecoder(nn.Module):
    """Mask2Former's decoder: learnable queries, masked cross-attention round-robin over three levels.

    Args:
        hidden_dim: query width (256). mask_dim: mask-feature width (256). embed_dim: CLIP width (768).
        num_queries (250), num_heads (8), ffn_dim (2048), num_layers (9 = DEC_LAYERS - 1).
    """

    num_levels = 3

    def __init__(
        self,
        hidden_dim: int = 256,
        mask_dim: int = 256,
        embed_dim: int = 768,
        num_queries: int = 250,
        num_heads: int = 8,
        ffn_dim: int = 2048,
        num_layers: int = 9,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer(hidden_dim, num_heads) for _ in range(num_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer(hidden_dim, num_heads) for _ in range(num_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, ffn_dim) for _ in range(num_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(self.num_levels, hidden_dim)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self._mask_pooling_proj = nn.Sequential(nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, hidden_dim))
        self.class_embed = MLP(hidden_dim, hidden_dim, embed_dim, 3)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.pos_feats = hidden_dim // 2

    def heads(
        self, output: torch.Tensor, mask_features: torch.Tensor, text: torch.Tensor, synonyms: Sequence[int],
        target_size: tuple[int, int] | None,
    ) -> tuple[HeadOutput, torch.Tensor | None]:
        """Prediction heads on the queries (Q, B, C); also the next layer's attention mask (B*heads, Q, h*w),
        True = blocked, when ``target_size`` is given."""
        d = self.decoder_norm(output).transpose(0, 1)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(d), mask_features)
        pooled = self._mask_pooling_proj(mask_pool(mask_features, masks))
        embeddings = self.class_embed(pooled + d)
        logits = synonym_max_logits(embeddings, text, self.logit_scale, synonyms)
        attn_mask = None
        if target_size is not None:
            small = F.interpolate(masks, size=target_size, mode="bilinear", align_corners=False)
            attn_mask = (small.sigmoid().flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1) < 0.5).detach()
        return HeadOutput(logits, masks, embeddings), attn_mask

    def forward(
        self, maps: Sequence[torch.Tensor], mask_features: torch.Tensor, text: torch.Tensor, synonyms: Sequence[int]
    ) -> list[HeadOutput]:
        """Decoder outputs, first (before any layer) to last.

        Args:
            maps: the pixel decoder's [1/32, 1/16, 1/8] maps, (B, C, h, w) each.
            mask_features: (B, mask_dim, H/4, W/4).
            text: (S + 1, E) normalised text classifier incl. void; synonyms: rows per class.

        Returns:
            ``num_layers + 1`` ``HeadOutput``s; the last is the prediction, the others deep supervision.
        """
        sizes = [tuple(m.shape[-2:]) for m in maps]
        src = [(m.flatten(2) + self.level_embed.weight[i][None, :, None]).permute(2, 0, 1) for i, m in enumerate(maps)]
        pos = [sine_position_embedding(m, self.pos_feats).flatten(2).permute(2, 0, 1) for m in maps]
        b = mask_features.shape[0]
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, b, 1)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, b, 1)
        head, attn_mask = self.heads(output, mask_features, text, synonyms, sizes[0])
        outputs = [head]
        for i in range(self.num_layers):
            level = i % self.num_levels
            # a query whose mask covers nothing at this level attends everywhere instead of nowhere
            attn_mask[attn_mask.sum(-1) == attn_mask.shape[-1]] = False
            output = self.transformer_cross_attention_layers[i](output, src[level], attn_mask, pos[level], query_pos)
            output = self.transformer_self_attention_layers[i](output, query_pos)
            output = self.transformer_ffn_layers[i](output)
            head, attn_mask = self.heads(output, mask_features, text, synonyms, sizes[(i + 1) % self.num_levels])
            outputs.append(head)
        return outputs
