"""CAT-Seg's cost aggregation (CVPR'24 code, ``cat_seg/modeling/transformer/model.py``), in plain PyTorch.

Module and attribute names follow the official code so that an official checkpoint maps onto this one
by a prefix change only (``sem_seg_head.predictor.transformer.`` -> ``aggregator.``). The one structural
difference: the shifted-window mask of the second Swin block is a non-persistent buffer here (it is
derived from the grid), so the importer drops the official ``...block_2.attn_mask`` entries.

Data flow (catseg-reference.md §1.4-1.8), ViT-B/16 sizes: cosine cost volume (B, P=1, T, 24, 24) ->
7x7 conv embedding (B, 128, T, 24, 24) -> 2 x [2 Swin blocks per class map (window 12, shift 6, appearance
guidance concatenated into Q and K only, no relative position bias) -> linear-attention class aggregation
(pooled 2x2 in training, 1x1 in evaluation; classes padded to ``pad_len`` with learnable tokens)] ->
two upsampling decoder stages with decoder guidance -> 3x3 head -> logits (B, T, 96, 96).
When T > ``pad_len`` the ``pad_len`` classes with the highest cost anywhere in the image are kept per
image and the others get logit -100.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.errors import ConfigError, InputError

#: the logit CAT-Seg gives classes dropped by the top-``pad_len`` preselection
DROPPED_CLASS_LOGIT = -100.0


def chunked_rows(fn, rows: int, chunk: int) -> torch.Tensor:  # noqa: ANN001
    """``fn(0, rows)`` with autograd on; without it, ``cat(fn(i, j))`` over row ranges of at most ``chunk``.

    Every module chunked this way treats rows (class maps, class sequences) independently, so chunking
    bounds peak memory in inference without changing the result.
    """
    if torch.is_grad_enabled() or chunk <= 0 or rows <= chunk:
        return fn(0, rows)
    return torch.cat([fn(i, min(i + chunk, rows)) for i in range(0, rows, chunk)], dim=0)


class FeedForward(nn.Module):
    """timm's ``Mlp`` as CAT-Seg's Swin blocks use it: fc1 -> GELU (erf) -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Window self-attention whose queries and keys also see the appearance guidance (values do not)."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (N * nW, n, dim + guidance_dim) windows; mask (nW, n, n) additive or None -> (N * nW, n, dim)."""
        windows, n, _ = x.shape
        heads = self.num_heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(windows, n, heads, -1).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x[..., : self.dim]))
        if mask is not None:
            num_windows = mask.shape[0]
            shape = (windows // num_windows, num_windows, heads, n, -1)
            q, k, v = q.reshape(shape), k.reshape(shape), v.reshape(shape)
            mask = mask.to(q.dtype).unsqueeze(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.reshape(windows, heads, n, -1).transpose(1, 2).reshape(windows, n, -1)
        return self.proj(out)


def shifted_window_mask(grid: tuple[int, int], window: int, shift: int) -> torch.Tensor:
    """Swin's mask for shifted windows: (nW, window^2, window^2), -100 between tokens of different regions."""
    h, w = grid

    def region(size: int) -> torch.Tensor:
        idx = torch.arange(size)
        return (idx >= size - window).long() + (idx >= size - shift).long()

    labels = (region(h)[:, None] * 3 + region(w)[None, :]).float()
    windows = labels.view(h // window, window, w // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    differ = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(differ.shape).masked_fill(differ, -100.0)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, H, W, C) -> (N * nW, window^2, C), windows row-major within each map."""
    n, h, w, c = x.shape
    x = x.view(n, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_merge(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (N * nW, window^2, C) -> (N, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class SwinTransformerBlock(nn.Module):
    """Pre-norm (shifted-)window attention block with guidance in Q/K and no relative position bias."""

    def __init__(self, dim: int, guidance_dim: int, grid: tuple[int, int], num_heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.grid = grid
        if min(grid) <= window:  # Swin's rule: one window covering the map, nothing to shift
            window, shift = min(grid), 0
        if grid[0] % window or grid[1] % window:
            raise ConfigError(f"feature grid {grid} is not divisible by the window size {window}")
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, guidance_dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, dim * 4)
        mask = shifted_window_mask(grid, window, shift) if shift > 0 else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (N, H, W, C) per-class maps; guidance (N or 1, H, W, Cg) normalised, or None -> (N, H, W, C)."""
        h, w = self.grid
        y = self.norm1(x)
        if guidance is not None:
            y = torch.cat([y, guidance.expand(y.shape[0], -1, -1, -1)], dim=-1)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = window_merge(self.attn(window_partition(y, self.window), self.attn_mask), self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class SwinTransformerBlockWrapper(nn.Module):
    """Spatial aggregation: a W-MSA block then a shifted SW-MSA block on every class's cost map."""

    def __init__(self, dim: int, guidance_dim: int, grid: tuple[int, int], num_heads: int, window: int,
                 chunk: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.block_1 = SwinTransformerBlock(dim, guidance_dim, grid, num_heads, window, shift=0)
        self.block_2 = SwinTransformerBlock(dim, guidance_dim, grid, num_heads, window, shift=window // 2)
        self.guidance_norm = nn.LayerNorm(guidance_dim) if guidance_dim > 0 else None
        self.chunk = chunk

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, H, W, C); guidance (B, H, W, Cg) or None -> (B, T, H, W, C)."""
        b, t, h, w, c = x.shape
        if guidance is not None and self.guidance_norm is not None:
            # LayerNorm is per token, so normalising before repeating over classes gives the same values.
            guidance = self.guidance_norm(guidance)
        else:
            guidance = None
        maps = x.reshape(b * t, h, w, c)

        def run(start: int, stop: int) -> torch.Tensor:
            g = None
            if guidance is not None:  # map i belongs to image i // T
                g = guidance.index_select(0, torch.arange(start, stop, device=x.device) // t)
            return self.block_2(self.block_1(maps[start:stop], g), g)

        return chunked_rows(run, b * t, self.chunk).reshape(b, t, h, w, c)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Katharopoulos et al.'s linear attention with feature map elu(x) + 1, as CAT-Seg computes it.

    q, k, v: (N, L, heads, d) float. Returns (N, L, heads, d). Values are divided by L before and the
    result multiplied by L after (the official code's fp16 overflow guard, kept for identical rounding).
    """
    q = F.elu(q) + 1
    k = F.elu(k) + 1
    length = v.shape[1]
    kv = torch.einsum("nshd,nshv->nhdv", k, v / length)
    z = 1 / (torch.einsum("nlhd,nhd->nlh", q, k.sum(dim=1)) + eps)
    return torch.einsum("nlhd,nhdv,nlh->nlhv", q, kv, z) * length


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention over the class axis (CAT-Seg's ``"full"`` option). q, k, v: (N, L, heads, d)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


class AttentionLayer(nn.Module):
    """Class-axis attention with the text guidance concatenated into Q and K; no output projection."""

    def __init__(self, dim: int, guidance_dim: int, num_heads: int, attention_type: str) -> None:
        super().__init__()
        if attention_type not in ("linear", "full"):
            raise ConfigError(f"attention_type must be 'linear' or 'full', got {attention_type!r}")
        self.num_heads = num_heads
        self.attention_type = attention_type
        self.q = nn.Linear(dim + guidance_dim, dim)
        self.k = nn.Linear(dim + guidance_dim, dim)
        self.v = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (N, L, dim); guidance (N, L, Cg) or None -> (N, L, dim)."""
        xg = torch.cat([x, guidance], dim=-1) if guidance is not None else x
        n, length, _ = x.shape
        shape = (n, length, self.num_heads, -1)
        q, k, v = self.q(xg).reshape(shape), self.k(xg).reshape(shape), self.v(x).reshape(shape)
        attend = linear_attention if self.attention_type == "linear" else full_attention
        return attend(q, k, v).reshape(n, length, -1)


class ClassTransformerLayer(nn.Module):
    """Class aggregation: attention across classes at every (pooled) position, residual upsampled back.

    Pooling is ``pooling_train`` in training mode and ``pooling_eval`` in evaluation mode (the official
    configs: 2x2 for training, 1x1 for the published evaluation).
    """

    def __init__(
        self,
        dim: int,
        guidance_dim: int,
        num_heads: int,
        attention_type: str,
        pooling_train: Sequence[int],
        pooling_eval: Sequence[int],
        pad_len: int,
        chunk: int = 0,
    ) -> None:
        super().__init__()
        self.chunk = chunk
        self.pooling_train = tuple(int(p) for p in pooling_train)
        self.pooling_eval = tuple(int(p) for p in pooling_eval)
        self.attention = AttentionLayer(dim, guidance_dim, num_heads, attention_type)
        self.MLP = nn.Sequential(nn.Linear(dim, dim * 4), nn.ReLU(), nn.Linear(dim * 4, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.pad_len = pad_len
        self.padding_tokens = nn.Parameter(torch.zeros(1, 1, dim)) if pad_len > 0 else None
        self.padding_guidance = nn.Parameter(torch.zeros(1, 1, guidance_dim)) if pad_len > 0 and guidance_dim > 0 else None

    @property
    def pooling(self) -> tuple[int, int]:
        return self.pooling_train if self.training else self.pooling_eval

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, H, W, C); guidance (B, T, Cg) or None -> (B, T, H, W, C)."""
        b, t, h, w, c = x.shape
        pool = self.pooling
        pooled = x
        if pool != (1, 1):
            pooled = F.avg_pool2d(x.reshape(b * t, h, w, c).permute(0, 3, 1, 2), pool)
            pooled = pooled.permute(0, 2, 3, 1).reshape(b, t, pooled.shape[-2], pooled.shape[-1], c)
        hp, wp = pooled.shape[2], pooled.shape[3]
        pad = self.pad_len - t if self.padding_tokens is not None and t < self.pad_len else 0
        seq = pooled.permute(0, 2, 3, 1, 4)  # (B, H', W', T, C): one class sequence per position
        if pad:
            seq = torch.cat([seq, self.padding_tokens.expand(b, hp, wp, pad, c)], dim=3)
        seq = seq.reshape(b * hp * wp, t + pad, c)
        if guidance is not None and pad and self.padding_guidance is not None:
            guidance = torch.cat([guidance, self.padding_guidance.expand(b, pad, -1)], dim=1)

        def run(start: int, stop: int) -> torch.Tensor:
            rows = seq[start:stop]
            g = None
            if guidance is not None:  # sequence i belongs to image i // (H' W')
                g = guidance.index_select(0, torch.arange(start, stop, device=seq.device) // (hp * wp))
            rows = rows + self.attention(self.norm1(rows), g)
            return rows + self.MLP(self.norm2(rows))

        seq = chunked_rows(run, seq.shape[0], self.chunk)
        # Padding classes are dropped before upsampling: every class map is upsampled on its own.
        out = seq.reshape(b, hp, wp, t + pad, c)[:, :, :, :t].permute(0, 3, 1, 2, 4)
        if (hp, wp) != (h, w):
            out = out.reshape(b * t, hp, wp, c).permute(0, 3, 1, 2)
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True)
            out = out.permute(0, 2, 3, 1).reshape(b, t, h, w, c)
        return x + out


class AggregatorLayer(nn.Module):
    """Spatial aggregation (``swin_block``) then class aggregation (``attention``)."""

    def __init__(self, hidden_dim, text_guidance_dim, appearance_guidance_dim, num_heads, grid, window,
                 attention_type, pooling_train, pooling_eval, pad_len, chunk=0) -> None:  # fmt: skip
        super().__init__()
        self.swin_block = SwinTransformerBlockWrapper(hidden_dim, appearance_guidance_dim, grid, num_heads, window, chunk)
        self.attention = ClassTransformerLayer(
            hidden_dim, text_guidance_dim, num_heads, attention_type, pooling_train, pooling_eval, pad_len, chunk
        )

    def forward(self, x: torch.Tensor, appearance: torch.Tensor | None, text: torch.Tensor | None) -> torch.Tensor:
        return self.attention(self.swin_block(x, appearance), text)


class DoubleConv(nn.Module):
    """(3x3 conv without bias -> GroupNorm(channels // 16) -> ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 16:
            raise ConfigError(f"decoder widths must be multiples of 16 (GroupNorm of width/16 groups), got {out_channels}")
        groups = out_channels // 16
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Up(nn.Module):
    """2x transposed-conv upsampling to ``in - guidance`` channels, concat guidance, ``DoubleConv``."""

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, guidance: torch.Tensor | None) -> torch.Tensor:
        """x (N, C, h, w) class maps; guidance (N, Cg, 2h, 2w), the guidance of each map's image, or None."""
        x = self.up(x)
        if guidance is not None:
            x = torch.cat([x, guidance], dim=1)
        return self.conv(x)


class Aggregator(nn.Module):
    """CAT-Seg's cost aggregation network, from cost volume to per-class logits.

    Args:
        text_guidance_dim / appearance_guidance_dim: CLIP embedding width (512 for ViT-B/16, 768 for L/14).
        text_guidance_proj_dim / appearance_guidance_proj_dim: projected guidance widths (128).
        decoder_dims: widths of the two upsampling stages (64, 32).
        decoder_guidance_dims: widths of the two decoder guidance maps (256, 128).
        decoder_guidance_proj_dims: their projected widths (32, 16).
        num_layers / num_heads / hidden_dim: 2 / 4 / 128.
        feature_resolution: (H, W) of the CLIP patch grid (24, 24).
        window_size: Swin window (12; shift = window // 2).
        pooling_train / pooling_eval: class-aggregation pooling (2, 2) / (1, 1).
        attention_type: ``"linear"`` (official) or ``"full"``.
        prompt_channel: number of prompt templates P (1).
        pad_len: class-axis length of class aggregation (256); 0 disables padding and preselection.
        no_grad_chunk: without autograd, class maps (Swin blocks, decoder) and class sequences (class
            aggregation) processed at a time; bounds inference memory, same numbers. 0: all at once.
    """

    def __init__(
        self,
        text_guidance_dim: int = 512,
        text_guidance_proj_dim: int = 128,
        appearance_guidance_dim: int = 512,
        appearance_guidance_proj_dim: int = 128,
        decoder_dims: Sequence[int] = (64, 32),
        decoder_guidance_dims: Sequence[int] = (256, 128),
        decoder_guidance_proj_dims: Sequence[int] = (32, 16),
        num_layers: int = 2,
        num_heads: int = 4,
        hidden_dim: int = 128,
        feature_resolution: Sequence[int] = (24, 24),
        window_size: int = 12,
        pooling_train: Sequence[int] = (2, 2),
        pooling_eval: Sequence[int] = (1, 1),
        attention_type: str = "linear",
        prompt_channel: int = 1,
        pad_len: int = 256,
        no_grad_chunk: int = 256,
    ) -> None:
        super().__init__()
        if hidden_dim % num_heads:
            raise ConfigError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        grid = (int(feature_resolution[0]), int(feature_resolution[1]))
        self.grid = grid
        self.pad_len = int(pad_len)
        self.no_grad_chunk = int(no_grad_chunk)
        self.layers = nn.ModuleList(
            AggregatorLayer(hidden_dim, text_guidance_proj_dim, appearance_guidance_proj_dim, num_heads, grid,
                            window_size, attention_type, pooling_train, pooling_eval, self.pad_len,
                            self.no_grad_chunk)  # fmt: skip
            for _ in range(num_layers)
        )
        self.conv1 = nn.Conv2d(prompt_channel, hidden_dim, kernel_size=7, stride=1, padding=3)
        self.guidance_projection = nn.Sequential(
            nn.Conv2d(appearance_guidance_dim, appearance_guidance_proj_dim, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
        )
        self.text_guidance_projection = nn.Sequential(nn.Linear(text_guidance_dim, text_guidance_proj_dim), nn.ReLU())
        self.decoder_guidance_projection = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, dp, kernel_size=3, stride=1, padding=1), nn.ReLU())
            for d, dp in zip(decoder_guidance_dims, decoder_guidance_proj_dims)
        )
        self.decoder1 = Up(hidden_dim, decoder_dims[0], decoder_guidance_proj_dims[0])
        self.decoder2 = Up(decoder_dims[0], decoder_dims[1], decoder_guidance_proj_dims[1])
        self.head = nn.Conv2d(decoder_dims[1], 1, kernel_size=3, stride=1, padding=1)

    @staticmethod
    def correlation(img_feats: torch.Tensor, text_feats: torch.Tensor) -> torch.Tensor:
        """Cosine cost volume. img_feats (B, C, H, W); text_feats (B, T, P, C) -> (B, P, T, H, W) in [-1, 1]."""
        img = F.normalize(img_feats, dim=1)
        text = F.normalize(text_feats, dim=-1)
        return torch.einsum("bchw,btpc->bpthw", img, text)

    def select_classes(self, corr: torch.Tensor) -> torch.Tensor:
        """Per image, the ``pad_len`` classes with the highest cost anywhere: (B, pad_len) int64, ascending.

        The official code keeps ``topk(sorted=False)`` order; class aggregation is permutation-equivariant
        over classes and logits are scattered back by index, so sorting the indices changes no result.
        """
        best = corr.permute(0, 2, 1, 3, 4).flatten(2).max(dim=-1).values
        return best.topk(self.pad_len, dim=-1, sorted=False).indices.sort(dim=-1).values

    def conv_decoder(self, x: torch.Tensor, guidance: Sequence[torch.Tensor]) -> torch.Tensor:
        """x (B, T, H, W, C) -> logits (B, T, 4H, 4W); class maps are decoded independently."""
        b, t, h, w, c = x.shape
        maps = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)

        def decode(start: int, stop: int) -> torch.Tensor:
            image = torch.arange(start, stop, device=x.device) // t  # map i belongs to image i // T
            g1, g2 = guidance[0].index_select(0, image), guidance[1].index_select(0, image)
            return self.head(self.decoder2(self.decoder1(maps[start:stop], g1), g2))

        out = chunked_rows(decode, b * t, self.no_grad_chunk)
        return out.reshape(b, t, out.shape[-2], out.shape[-1])

    def forward(
        self,
        img_feats: torch.Tensor,
        text_feats: torch.Tensor,
        guidance: Sequence[torch.Tensor],
        corr: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of every class at 4x the feature grid.

        Args:
            img_feats: (B, C, H, W) float dense CLIP image embeddings (appearance guidance source too).
            text_feats: (B, T, P, C) float class text embeddings.
            guidance: ``[appearance (B, C, H, W), decoder1 (B, Cd1, 2H, 2W), decoder2 (B, Cd2, 4H, 4W)]``.
            corr: optional (B, P, T, H, W) cost volume replacing the cosine one (InfoCLIP's LPAM map).

        Returns:
            (B, T, 4H, 4W) float logits; classes dropped by the top-``pad_len`` preselection hold -100.
        """
        if img_feats.ndim != 4 or text_feats.ndim != 4 or text_feats.shape[0] != img_feats.shape[0]:
            raise InputError(
                f"aggregator inputs must be img_feats (B, C, H, W) and text_feats (B, T, P, C), got "
                f"{tuple(img_feats.shape)} and {tuple(text_feats.shape)}"
            )
        if tuple(img_feats.shape[-2:]) != self.grid:
            raise InputError(f"aggregator built for a {self.grid} grid got features of {tuple(img_feats.shape[-2:])}")
        b, t = text_feats.shape[:2]
        if corr is None:
            corr = self.correlation(img_feats, text_feats)
        elif corr.shape != (b, text_feats.shape[2], t, *self.grid):
            raise InputError(f"cost volume must be (B, P, T, H, W) = {(b, text_feats.shape[2], t, *self.grid)}, got {tuple(corr.shape)}")
        classes = None
        if 0 < self.pad_len < t:
            classes = self.select_classes(corr)
            corr = torch.gather(corr, 2, classes[:, None, :, None, None].expand(-1, corr.shape[1], -1, *self.grid))
            text_feats = torch.gather(
                F.normalize(text_feats, dim=-1), 1, classes[:, :, None, None].expand(-1, -1, *text_feats.shape[2:])
            )
        tk = corr.shape[2]
        p = corr.shape[1]
        embed = self.conv1(corr.transpose(1, 2).reshape(b * tk, p, *self.grid))
        x = embed.reshape(b, tk, -1, *self.grid).permute(0, 1, 3, 4, 2)  # (B, T, H, W, C)

        appearance = self.guidance_projection(guidance[0]).permute(0, 2, 3, 1)  # (B, H, W, Cg)
        decoder_guidance = [proj(g) for proj, g in zip(self.decoder_guidance_projection, guidance[1:])]
        text = F.normalize(text_feats.mean(dim=2), dim=-1)
        text_guidance = self.text_guidance_projection(text)  # (B, T, Ct)

        for layer in self.layers:
            x = layer(x, appearance, text_guidance)
        logits = self.conv_decoder(x, decoder_guidance)
        if classes is not None:
            full = logits.new_full((b, t, *logits.shape[-2:]), DROPPED_CLASS_LOGIT)
            logits = full.scatter(1, classes[:, :, None, None].expand(-1, -1, *logits.shape[-2:]), logits)
        return logits
