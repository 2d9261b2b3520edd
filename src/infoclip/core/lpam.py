"""LPAM, the learnable pixel-text alignment module of InfoCLIP (reconstruction, method doc §2).

One LPAM is shared by the teacher and the student: it maps dense image embeddings D_V and class text
embeddings D_L to a pixel-text alignment map R, on which the InfoCLIP losses are computed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.core._validation import check_choice, require_ndim, shape_of
from infoclip.errors import ConfigError, InputError

RESIDUALS = ("ln_dot", "cosine")


class LPAM(nn.Module):
    """Learnable pixel-text alignment: LayerNorm per modality, two projections, a residual, no softmax.

    R = proj_image(LN_image(D_V)) proj_text(LN_text(D_L))^T / sqrt(dim) + residual, where residual is

    * ``"ln_dot"`` (default): LN_image(D_V) LN_text(D_L)^T, the dot product of the LayerNormed inputs
      (the overview figure's second MatMul, and InfoSAM's relation module); for unit LayerNorm affine
      parameters this is dim times the Pearson correlation of the two embeddings;
    * ``"cosine"``: the cosine similarity of the raw inputs D_V and D_L (CAT-Seg's cost volume), in [-1, 1].

    Parameters: two LayerNorms (2 * 2 * dim) and two dim x dim linear layers with bias (2 * (dim^2 + dim)),
    527,360 at dim = 512 (the paper's +0.53 M) and 1,184,256 at dim = 768.

    Args:
        dim: embedding width D of both modalities, >= 1.
        residual: ``"ln_dot"`` or ``"cosine"``.
    """

    def __init__(self, dim: int, residual: str = "ln_dot") -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"LPAM dim must be an integer >= 1, got {dim!r}")
        self.dim = dim
        self.residual = check_choice(residual, "residual", RESIDUALS)
        self.ln_image = nn.LayerNorm(dim)
        self.ln_text = nn.LayerNorm(dim)
        self.proj_image = nn.Linear(dim, dim)
        self.proj_text = nn.Linear(dim, dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, residual={self.residual!r}"

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Alignment map R of every pixel with every class.

        Args:
            image: D_V, (B, H*W, dim) floating tensor of dense image embeddings (any real values).
            text: D_L, (T, dim) class text embeddings shared by the batch, or (B, T, dim) per image.

        Returns:
            R, (B, H*W, T) tensor of unbounded real scores, in the dtype of the computation (autocast
            applies).
        """
        image = require_ndim(image, "image embeddings D_V", (3,), "(B, H*W, dim)")
        text = require_ndim(text, "text embeddings D_L", (2, 3), "(T, dim) or (B, T, dim)")
        if image.shape[-1] != self.dim or text.shape[-1] != self.dim:
            raise InputError(
                f"LPAM(dim={self.dim}) needs embeddings of width {self.dim}, got D_V {shape_of(image)} "
                f"and D_L {shape_of(text)}"
            )
        if text.ndim == 3 and text.shape[0] != image.shape[0]:
            raise InputError(
                f"per-image text embeddings need the image batch size: D_V {shape_of(image)}, D_L {shape_of(text)}"
            )
        # "bpd,td->bpt" for text shared by the batch: the text side is projected once, not B times.
        pattern = "bpd,td->bpt" if text.ndim == 2 else "bpd,btd->bpt"
        image_ln = self.ln_image(image)
        text_ln = self.ln_text(text)
        scores = torch.einsum(pattern, self.proj_image(image_ln), self.proj_text(text_ln)) / math.sqrt(self.dim)
        if self.residual == "ln_dot":
            residual = torch.einsum(pattern, image_ln, text_ln)
        else:
            residual = torch.einsum(pattern, F.normalize(image, dim=-1), F.normalize(text, dim=-1))
        return scores + residual
