"""FC-CLIP's pixel decoder: Mask2Former's multi-scale deformable-attention encoder plus one FPN level.

Plain PyTorch throughout: the deformable attention samples with ``F.grid_sample`` (bilinear, zero padding,
``align_corners=False``), the rule of the official CUDA kernel, which is also the path the official code takes
on CPU (fcclip-reference.md §1.3). Module names mirror ``MSDeformAttnPixelDecoder`` so that official keys
(``sem_seg_head.pixel_decoder.*``) map by prefix.

Levels are ordered from low to high resolution everywhere: [res5, res4, res3].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def sine_position_embedding(x: torch.Tensor, num_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """DETR's normalised sine position embedding of a feature map's grid (the values of ``x`` are unused).

    Args:
        x: (B, C, H, W) any float tensor; only its shape, device and dtype matter.
        num_feats: channels per axis (the output has ``2 * num_feats``).

    Returns:
        (B, 2 * num_feats, H, W) float32: y-channels then x-channels, each interleaving sin (even) and cos (odd)
        of ``pos / temperature ** (2 * (i // 2) / num_feats)`` with ``pos = k / (n + 1e-6) * 2 pi``, k = 1..n.
    """
    b, _, h, w = x.shape
    device = x.device
    scale = 2 * math.pi
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device) / (h + 1e-6) * scale
    xs = torch.arange(1, w + 1, dtype=torch.float32, device=device) / (w + 1e-6) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)

    def encode(pos: torch.Tensor) -> torch.Tensor:  # (n,) -> (n, num_feats)
        p = pos[:, None] / dim_t
        return torch.stack((p[:, 0::2].sin(), p[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(h, w, num_feats)
    pos_x = encode(xs)[None, :, :].expand(h, w, num_feats)
    pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)
    return pos.unsqueeze(0).expand(b, -1, -1, -1)


def deformable_attention_core(
    value: torch.Tensor, shapes: Sequence[tuple[int, int]], locations: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Multi-scale deformable attention by bilinear sampling (pure PyTorch).

    Args:
        value: (N, S, M, D) values of all levels, flattened row-major and concatenated; S = sum of H_l * W_l.
        shapes: (H_l, W_l) per level, in the order of ``value``.
        locations: (N, Lq, M, L, P, 2) sampling points as (x, y) in [0, 1] of each level (outside is zero).
        weights: (N, Lq, M, L, P) attention weights (softmax over L * P per head).

    Returns:
        (N, Lq, M * D), channel = head * D + d.
    """
    n, _, m, d = value.shape
    _, lq, _, levels, points, _ = locations.shape
    grids = 2 * locations - 1
    sampled = []
    start = 0
    for level, (h, w) in enumerate(shapes):
        v = value[:, start : start + h * w].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        start += h * w
        grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # (N*M, Lq, P, 2)
        sampled.append(F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    stacked = torch.stack(sampled, dim=-2).flatten(-2)  # (N*M, D, Lq, L*P)
    w = weights.transpose(1, 2).reshape(n * m, 1, lq, levels * points)
    return (stacked * w).sum(-1).view(n, m * d, lq).transpose(1, 2).contiguous()


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention (Deformable DETR), official parameter names and init."""

    def __init__(self, dim: int = 256, levels: int = 3, heads: int = 8, points: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"deformable attention width {dim} is not divisible by {heads} heads")
        self.dim, self.levels, self.heads, self.points = dim, levels, heads, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's init: offsets start on 8 directions at distances 1..P, uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.heads, 1, 1, 2).repeat(1, self.levels, self.points, 1)
        grid = grid * torch.arange(1, self.points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(
        self, query: torch.Tensor, reference: torch.Tensor, value_in: torch.Tensor, shapes: Sequence[tuple[int, int]]
    ) -> torch.Tensor:
        """query (N, Lq, C), reference (N, Lq, L, 2) as (x, y) in [0, 1], value_in (N, S, C) -> (N, Lq, C)."""
        n, lq, _ = query.shape
        value = self.value_proj(value_in).view(n, value_in.shape[1], self.heads, self.dim // self.heads)
        offsets = self.sampling_offsets(query).view(n, lq, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(query).view(n, lq, self.heads, self.levels * self.points)
        weights = weights.softmax(-1).view(n, lq, self.heads, self.levels, self.points)
        normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype, device=query.device)
        locations = reference[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        return self.output_proj(deformable_attention_core(value, shapes, locations, weights))


class EncoderLayer(nn.Module):
    """Post-norm deformable self-attention + ReLU FFN."""

    def __init__(self, dim: int, ffn_dim: int, levels: int, heads: int, points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(dim, levels, heads, points)
        self.norm1 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, src: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> torch.Tensor:
        src = self.norm1(src + self.self_attn(src + pos, reference, src, shapes))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class Encoder(nn.Module):
    def __init__(self, layer_args: tuple[int, int, int, int, int], num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(num_layers))


def reference_points(shapes: Sequence[tuple[int, int]], batch: int, device: torch.device) -> torch.Tensor:
    """Pixel centres of every level as (x, y) in [0, 1], shared by all levels: (B, sum H*W, L, 2)."""
    refs = []
    for h, w in shapes:
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
            torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
            indexing="ij",
        )
        refs.append(torch.stack((ref_x.reshape(-1) / w, ref_y.reshape(-1) / h), -1))
    ref = torch.cat(refs, 0)
    return ref[None, :, None, :].expand(batch, -1, len(shapes), -1)


class DeformableEncoder(nn.Module):
    """The encoder-only deformable transformer over flattened levels (no padding mask: padded zeros attend)."""

    def __init__(self, dim: int, heads: int, num_layers: int, ffn_dim: int, levels: int, points: int) -> None:
        super().__init__()
        self.encoder = Encoder((dim, ffn_dim, levels, heads, points), num_layers)
        self.level_embed = nn.Parameter(torch.empty(levels, dim))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m.reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(self, srcs: Sequence[torch.Tensor], pos: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """srcs / pos: (B, C, H_l, W_l) per level -> memory (B, sum H*W, C) and the level shapes."""
        shapes = [(int(s.shape[2]), int(s.shape[3])) for s in srcs]
        flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        flat_pos = torch.cat([p.flatten(2).transpose(1, 2) + self.level_embed[i].view(1, 1, -1) for i, p in enumerate(pos)], 1)
        reference = reference_points(shapes, flat.shape[0], flat.device)
        out = flat
        for layer in self.encoder.layers:
            out = layer(out, flat_pos, reference, shapes)
        return out, shapes


class ConvNorm(nn.Conv2d):
    """detectron2-style ``Conv2d`` with ``norm`` and ``activation`` applied after the convolution."""

    def __init__(self, *args, norm: nn.Module | None = None, relu: bool = False, **kwargs) -> None:  # noqa: ANN002
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.relu(x) if self.relu else x


def _c2_xavier_fill(conv: nn.Conv2d) -> None:
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class MSDeformAttnPixelDecoder(nn.Module):
    """Deformable encoder on [res5, res4, res3] and an FPN step to res2.

    Args:
        in_channels: channels of res2, res3, res4, res5.
        conv_dim: width of every map (256); also the mask-feature width here (``mask_dim``).
        mask_dim: channels of ``mask_features``.
        num_layers, num_heads, ffn_dim, num_points: deformable encoder (6, 8, 1024, 4 in FC-CLIP).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        conv_dim: int = 256,
        mask_dim: int = 256,
        num_layers: int = 6,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        num_points: int = 4,
    ) -> None:
        super().__init__()
        res2, *encoder_in = in_channels
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, conv_dim, kernel_size=1), nn.GroupNorm(32, conv_dim)) for c in encoder_in[::-1]
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        self.transformer = DeformableEncoder(conv_dim, num_heads, num_layers, ffn_dim, len(encoder_in), num_points)
        self.num_pos_feats = conv_dim // 2
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, kernel_size=1)
        _c2_xavier_fill(self.mask_features)
        self.adapter_1 = ConvNorm(res2, conv_dim, kernel_size=1, bias=False, norm=nn.GroupNorm(32, conv_dim))
        self.layer_1 = ConvNorm(conv_dim, conv_dim, kernel_size=3, padding=1, bias=False, norm=nn.GroupNorm(32, conv_dim), relu=True)
        _c2_xavier_fill(self.adapter_1)
        _c2_xavier_fill(self.layer_1)

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Trunk features ``res2..res5`` -> ``(mask_features (B, mask_dim, H/4, W/4), [1/32, 1/16, 1/8] maps
        (B, conv_dim, h, w))``, all float32 (the official decoder disables autocast here)."""
        levels = [features[k].float() for k in ("res5", "res4", "res3")]
        srcs = [proj(x) for proj, x in zip(self.input_proj, levels)]
        pos = [sine_position_embedding(x, self.num_pos_feats) for x in levels]
        memory, shapes = self.transformer(srcs, pos)
        b = memory.shape[0]
        maps = [z.transpose(1, 2).view(b, -1, h, w) for z, (h, w) in zip(memory.split([h * w for h, w in shapes], 1), shapes)]
        lateral = self.adapter_1(features["res2"].float())
        y = self.layer_1(lateral + F.interpolate(maps[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False))
        return self.mask_features(y), maps
