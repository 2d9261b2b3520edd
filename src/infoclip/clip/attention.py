"""Self-attention with separate Q, K and V weight matrices, as CAT-Seg fine-tunes CLIP.

open_clip builds CLIP blocks on ``nn.MultiheadAttention``, whose Q, K and V weights are one packed
``in_proj_weight`` (3D x D). CAT-Seg trains only the Q and V rows. Masking the K rows' gradient is not
enough: AdamW's decoupled weight decay would still shrink them. ``SplitQKVAttention`` therefore holds
three separate Parameters (``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``) under the names the
official CAT-Seg checkpoints use, while ``in_proj_bias`` stays packed (3D) as in the official code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.errors import InputError


class SplitQKVAttention(nn.Module):
    """Multi-head self-attention with split projection weights (drop-in for open_clip's blocks).

    ``forward`` accepts the call open_clip's ``ResidualAttentionBlock`` makes on ``nn.MultiheadAttention``
    (``attn(x, x, x, need_weights=False, attn_mask=mask)``, batch first) and returns ``(output, None)``,
    so open_clip's own ``encode_image`` / ``encode_text`` keep working on a converted model.

    Args:
        dim: model width D.
        num_heads: number of heads; D must be divisible by it.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise InputError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.embed_dim = dim
        self.num_heads = num_heads
        self.q_proj_weight = nn.Parameter(torch.empty(dim, dim))
        self.k_proj_weight = nn.Parameter(torch.empty(dim, dim))
        self.v_proj_weight = nn.Parameter(torch.empty(dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    @classmethod
    def from_multihead(cls, mha: nn.MultiheadAttention) -> SplitQKVAttention:
        """A copy of ``mha`` (batch-first, packed weights, with bias) with the weights split into Q, K, V."""
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None or mha.bias_k is not None:
            raise InputError("only packed-weight nn.MultiheadAttention with in_proj_bias and no bias_k/v can be split")
        if not mha.batch_first:
            raise InputError("only batch-first nn.MultiheadAttention (open_clip's layout) can be split")
        new = cls(mha.embed_dim, mha.num_heads).to(mha.in_proj_weight.device, mha.in_proj_weight.dtype)
        q, k, v = mha.in_proj_weight.detach().chunk(3, dim=0)
        with torch.no_grad():
            new.q_proj_weight.copy_(q)
            new.k_proj_weight.copy_(k)
            new.v_proj_weight.copy_(v)
            new.in_proj_bias.copy_(mha.in_proj_bias.detach())
            new.out_proj.weight.copy_(mha.out_proj.weight.detach())
            new.out_proj.bias.copy_(mha.out_proj.bias.detach())
        return new

    def extra_repr(self) -> str:
        return f"dim={self.embed_dim}, num_heads={self.num_heads}"

    def value_path(self, x: torch.Tensor) -> torch.Tensor:
        """``out_proj(v_proj(x))``: the value path alone, which CAT-Seg's dense last block keeps.

        Args:
            x: (B, L, D) float, already layer-normed.

        Returns:
            (B, L, D) float.
        """
        d = self.embed_dim
        v = F.linear(x, self.v_proj_weight, self.in_proj_bias[2 * d :])
        return self.out_proj(v)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, None]:
        """Self-attention of ``query`` (B, L, D) float; returns ((B, L, D), None).

        ``key``/``value`` must be ``None`` or ``query`` itself (self-attention only). ``attn_mask`` is an
        additive float mask (L, L) (``-inf`` blocks), as open_clip's causal text mask.
        """
        if (key is not None and key is not query) or (value is not None and value is not query):
            raise InputError("SplitQKVAttention computes self-attention only (key and value must be the query)")
        if need_weights:
            raise InputError("SplitQKVAttention does not return attention weights")
        b, length, d = query.shape
        if d != self.embed_dim:
            raise InputError(f"attention expects width {self.embed_dim}, got input of shape {tuple(query.shape)}")
        bias_q, bias_k, bias_v = self.in_proj_bias.chunk(3)
        heads, head_dim = self.num_heads, d // self.num_heads

        def split_heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, length, heads, head_dim).transpose(1, 2)

        q = split_heads(F.linear(query, self.q_proj_weight, bias_q))
        k = split_heads(F.linear(query, self.k_proj_weight, bias_k))
        v = split_heads(F.linear(query, self.v_proj_weight, bias_v))
        mask = attn_mask.to(query.dtype) if attn_mask is not None else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, length, d)
        return self.out_proj(out), None
