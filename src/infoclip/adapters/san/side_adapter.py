"""SAN's side-adapter network: a small timm ViT on the full image with learnable queries, CLIP features
added in, and the MLP mask decoder that turns its queries into masks and attention biases.

Module and parameter names are the official ones (``side_adapter_network.*`` in SAN checkpoints), so the
importer keeps them verbatim: ``vit_model`` (timm ``VisionTransformer`` without class token and final
norm), ``query_embed``, ``query_pos_embed``, ``fusion_layers.layer_<j>``, ``mask_decoder``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of a (B, C, H, W) map: biased variance, eps 1e-6, affine (SAN's own)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLP(nn.Module):
    """``layers.0 .. layers.{n-1}``: in -> hidden (ReLU) ... -> out, Linear or 1x1 convolutions."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int, conv: bool = False) -> None:
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1)
        outs = [hidden] * (num_layers - 1) + [out_dim]
        make = (lambda i, o: nn.Conv2d(i, o, kernel_size=1)) if conv else nn.Linear
        self.layers = nn.ModuleList(make(i, o) for i, o in zip(dims, outs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == last else F.relu(layer(x))
        return x


class AddFusion(nn.Module):
    """Adds a CLIP feature map to the side ViT's patch tokens: LayerNorm2d, 1x1 conv, bilinear resize."""

    def __init__(self, clip_width: int, side_width: int) -> None:
        super().__init__()
        conv = nn.Conv2d(clip_width, side_width, kernel_size=1)
        nn.init.kaiming_uniform_(conv.weight, a=1)  # detectron2's c2_xavier_fill
        nn.init.zeros_(conv.bias)
        self.input_proj = nn.Sequential(LayerNorm2d(clip_width), conv)

    def forward(self, patches: torch.Tensor, feature: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """patches (B, h*w, C_side) + resized projection of feature (B, C_clip, h_c, w_c) -> (B, h*w, C_side)."""
        y = F.interpolate(self.input_proj(feature), size=grid, mode="bilinear", align_corners=False)
        return patches + y.permute(0, 2, 3, 1).reshape(patches.shape)


class MLPMaskDecoder(nn.Module):
    """Queries and pixel tokens -> mask logits and per-head attention biases.

    ``mask = query_mlp(q) . pix_mlp(x)``; ``bias[head] = query_mlp(q) . attn_mlp(x)[head]``, rescaled by a
    learnt affine ``bias_scaling`` (``nn.Linear(1, 1)`` applied elementwise).
    """

    def __init__(self, in_channels: int, total_heads: int, embed_channels: int, mlp_channels: int, mlp_num_layers: int) -> None:
        super().__init__()
        self.total_heads = total_heads
        self.query_mlp = MLP(in_channels, mlp_channels, embed_channels, mlp_num_layers)
        self.pix_mlp = MLP(in_channels, mlp_channels, embed_channels, mlp_num_layers, conv=True)
        self.attn_mlp = MLP(in_channels, mlp_channels, embed_channels * total_heads, mlp_num_layers, conv=True)
        self.bias_scaling = nn.Linear(1, 1)

    def forward(self, query: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, Q, C), x (B, C, h, w) -> mask logits (B, Q, h, w), attention bias (B, heads, Q, h, w)."""
        query = self.query_mlp(query)
        pix = self.pix_mlp(x)
        b, c, h, w = pix.shape
        masks = torch.einsum("bqc,bchw->bqhw", query, pix)
        attn = self.attn_mlp(x).reshape(b, self.total_heads, c, h, w)
        bias = torch.einsum("bqc,bnchw->bnqhw", query, attn)
        bias = self.bias_scaling(bias[..., None]).squeeze(-1)
        return masks, bias


class SideAdapterNetwork(nn.Module):
    """The side ViT with ``num_queries`` query tokens (first), CLIP features fused by addition, decoded masks.

    Args:
        clip_width: channels of the CLIP features.
        clip_heads: heads of the CLIP recognition blocks (one attention bias per head).
        width, depth, num_heads, patch_size, image_size: the side ViT (timm, pre-norm blocks, exact GELU,
            LN eps 1e-6); its position table is ``image_size / patch_size`` square.
        num_queries: query tokens (= [SOS] tokens of the recognition head).
        fusion_map: ``(side block j, CLIP feature i)`` pairs; feature i is added after side block j (0: before
            the first block).
        deep_supervision: side blocks whose outputs are decoded in training (the last one only in eval).
        embed_channels, mlp_channels, mlp_num_layers: the mask decoder.
    """

    def __init__(
        self,
        clip_width: int,
        clip_heads: int,
        width: int,
        depth: int,
        num_heads: int,
        patch_size: int,
        image_size: int,
        num_queries: int,
        fusion_map: Sequence[Sequence[int]],
        deep_supervision: Sequence[int],
        embed_channels: int,
        mlp_channels: int,
        mlp_num_layers: int,
    ) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        vit = VisionTransformer(
            img_size=image_size, patch_size=patch_size, embed_dim=width, depth=depth, num_heads=num_heads,
            num_classes=0, global_pool="", class_token=False, fc_norm=False, drop_path_rate=0.0,
        )  # fmt: skip
        vit.norm = nn.Identity()  # SAN deletes the final norm
        self.vit_model = vit
        self.table_grid = (image_size // patch_size, image_size // patch_size)
        self.num_queries = num_queries
        self.query_embed = nn.Parameter(torch.zeros(1, num_queries, width))
        self.query_pos_embed = nn.Parameter(torch.zeros(1, num_queries, width))
        nn.init.normal_(self.query_embed, std=0.02)
        nn.init.normal_(self.query_pos_embed, std=0.02)
        self.fusion_map = {int(side): int(feature) for side, feature in fusion_map}
        self.fusion_layers = nn.ModuleDict({f"layer_{side}": AddFusion(clip_width, width) for side in self.fusion_map})
        self.deep_supervision = tuple(int(i) for i in deep_supervision)
        self.mask_decoder = MLPMaskDecoder(width, clip_heads, embed_channels, mlp_channels, mlp_num_layers)

    def _position_table(self, grid: tuple[int, int]) -> torch.Tensor:
        pos = self.vit_model.pos_embed
        if grid == self.table_grid:
            return pos
        th, tw = self.table_grid
        table = pos.reshape(1, th, tw, -1).permute(0, 3, 1, 2)
        return F.interpolate(table, size=grid, mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)

    def _fuse(self, block: int, x: torch.Tensor, features: Sequence[torch.Tensor], grid: tuple[int, int]) -> torch.Tensor:
        if block not in self.fusion_map:
            return x
        length = grid[0] * grid[1]
        fused = self.fusion_layers[f"layer_{block}"](x[:, -length:], features[self.fusion_map[block]], grid)
        return torch.cat([x[:, :-length], fused], dim=1)

    def forward(self, images: torch.Tensor, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Masks and attention biases of the decoded side blocks (all supervised ones in training, the last in eval).

        Args:
            images: (B, 3, H, W) float, CLIP-normalised and padded (H, W multiples of the patch size).
            features: CLIP feature maps indexed by feature number, each (B, C_clip, h_c, w_c).

        Returns:
            ``(masks, biases)``: lists of (B, Q, H/p, W/p) mask logits and (B, heads, Q, H/p, W/p) biases.
        """
        x = self.vit_model.patch_embed.proj(images)
        b, _, h, w = x.shape
        grid = (h, w)
        x = x.flatten(2).transpose(1, 2)
        pos = torch.cat([self.query_pos_embed.expand(b, -1, -1), self._position_table(grid).expand(b, -1, -1)], dim=1)
        x = torch.cat([self.query_embed.expand(b, -1, -1), x], dim=1) + pos
        x = self.vit_model.norm_pre(x)
        x = self._fuse(0, x, features, grid)
        decoded = self.deep_supervision if self.training else self.deep_supervision[-1:]
        masks, biases = [], []
        depth = len(self.vit_model.blocks)
        for i, block in enumerate(self.vit_model.blocks, start=1):
            x = self._fuse(i, block(x), features, grid)
            if i in decoded:
                query = x[:, : self.num_queries]
                pixels = x[:, self.num_queries :].transpose(1, 2).reshape(b, -1, h, w)
                mask, bias = self.mask_decoder(query, pixels)
                masks.append(mask)
                biases.append(bias)
            if i < depth:
                x = x + pos  # SAN re-adds the position table before every block
        return masks, biases
