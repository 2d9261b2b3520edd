"""Which samples the InfoCLIP Gram matrices are over, and how the variables D_V, D_L and R are sampled.

Two sample axes (method doc §3.3):

* ``"batch"`` (default, as in InfoSAM's code and LLaVAFlow): one sample per image, n = B (global batch under
  torch.distributed). Samples are D_V[b] flattened (H*W*D), D_L[b] flattened (T*D) and R[b] flattened (H*W*T).
  When the class text is shared by the batch, D_L is the same on every sample, A_L = 11^T/n, which is the
  identity of the normalised Hadamard product: **the text term drops out of L_c** on this axis, which
  leaves L_c = I(D_V; R). This is a property of the axis, not a bug. Entropies are capped at log2 B.
* ``"pairs"``: one sample per (image b, class t), n = B*T, pair index b*T + t. The D_V sample of pair (b, t) is
  image b's features, the D_L sample is class t's text embedding, the R sample is the map R[b, :, t] (H*W).
  So A_V = A_img (x) 11^T_T and, for shared text, A_L = 11^T_B (x) A_txt (Kronecker products, renormalised),
  built from the B x B and T x T Grams instead of n x n Grams of repeated long vectors; A_V o A_L is then
  A_img (x) A_txt. Every term of L_c carries information on this axis.

Under torch.distributed both axes gather the per-image samples (D_V, per-image D_L, R) of every rank
(``infoclip.core.distributed``); text shared by the batch is not gathered: it must be the same on every rank,
as with a fixed training vocabulary.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from infoclip.core._validation import check_choice, require_ndim, shape_of
from infoclip.core.distributed import distributed_world_size, gather_batch_sizes, gather_samples
from infoclip.core.gram import check_kernel, gram_matrix, normalize_gram
from infoclip.errors import InputError

GRAM_AXES = ("batch", "pairs")


@dataclass(frozen=True)
class SampleGrams:
    """The normalised (n, n) Grams of one loss evaluation; ``image``/``text`` are None when not requested."""

    alignments: dict[str, torch.Tensor]
    image: torch.Tensor | None
    text: torch.Tensor | None
    num_samples: int


class SampleAxis:
    """Builds the normalised Gram matrices of D_V, D_L and alignment maps R on one sample axis.

    Args:
        gram_axis: ``"batch"`` or ``"pairs"`` (module docstring).
        kernel: ``"cosine"`` or ``"gaussian"`` (``gram_matrix``), the same for every variable.
        sigma: Gaussian bandwidth, used for every variable on its raw flattened samples.
        gather_across_ranks: under an initialised torch.distributed process group with more than one rank,
            gather the samples of every rank (the default); False keeps per-rank Grams.
    """

    def __init__(
        self,
        gram_axis: str = "batch",
        kernel: str = "cosine",
        sigma: float | None = None,
        gather_across_ranks: bool = True,
    ) -> None:
        self.gram_axis = check_choice(gram_axis, "gram_axis", GRAM_AXES)
        self.kernel, self.sigma = check_kernel(kernel, sigma)
        self.gather_across_ranks = bool(gather_across_ranks)

    def __repr__(self) -> str:
        return (
            f"SampleAxis(gram_axis={self.gram_axis!r}, kernel={self.kernel!r}, sigma={self.sigma!r}, "
            f"gather_across_ranks={self.gather_across_ranks})"
        )

    def grams(
        self,
        alignments: Mapping[str, torch.Tensor],
        image: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
    ) -> SampleGrams:
        """Normalised Grams of the alignment maps and, when given, of D_V and D_L, over the same samples.

        Args:
            alignments: name -> R, each (B, H*W, T) floating tensor, all of the same shape (names are used
                in error messages and as keys of the result).
            image: D_V, (B, H*W, D) dense image embeddings the maps were computed from, or None.
            text: D_L, (T, D) shared by the batch or (B, T, D) per image, or None.

        Returns:
            ``SampleGrams`` with (n, n) unit-trace Grams (float32, or float64 for float64 input), n = global B
            on the batch axis and global B * T on the pairs axis. Autocast is disabled inside.
        """
        if not alignments:
            raise InputError("at least one alignment map R is needed")
        reference_name, reference = next(iter(alignments.items()))
        for name, alignment in alignments.items():
            require_ndim(alignment, name, (3,), "(B, H*W, T)")
            if alignment.shape != reference.shape:
                raise InputError(
                    f"{name} has shape {shape_of(alignment)} but {reference_name} has {shape_of(reference)}; "
                    "the alignment maps must be of the same images and classes"
                )
        batch, pixels, classes = reference.shape
        if image is not None:
            require_ndim(image, "image embeddings D_V", (3,), "(B, H*W, D)")
            if image.shape[:2] != (batch, pixels):
                raise InputError(
                    f"image embeddings D_V {shape_of(image)} do not match the alignment map "
                    f"{shape_of(reference)}: expected (B={batch}, H*W={pixels}, D)"
                )
        if text is not None:
            require_ndim(text, "text embeddings D_L", (2, 3), "(T, D) or (B, T, D)")
            if text.shape[-2] != classes or (text.ndim == 3 and text.shape[0] != batch):
                raise InputError(
                    f"text embeddings D_L {shape_of(text)} do not match the alignment map {shape_of(reference)}: "
                    f"expected (T={classes}, D) or (B={batch}, T={classes}, D)"
                )

        gather = self.gather_across_ranks and distributed_world_size() > 1
        sizes = gather_batch_sizes(batch, reference.device) if gather else [batch]
        global_batch = sum(sizes)

        def collect(x: torch.Tensor) -> torch.Tensor:
            return gather_samples(x, sizes) if gather else x

        with torch.autocast(device_type=reference.device.type, enabled=False):
            alignment_grams = {name: self._alignment_gram(collect(r)) for name, r in alignments.items()}
            image_gram = None if image is None else self._image_gram(collect(image), classes)
            text_gram = None
            if text is not None:
                text_gram = self._text_gram(collect(text) if text.ndim == 3 else text, global_batch)
        num_samples = global_batch * (classes if self.gram_axis == "pairs" else 1)
        if num_samples == 1:
            warnings.warn(
                "InfoCLIP Gram matrices over a single sample: every entropy and both losses are 0 with zero "
                "gradient. Use at least 2 images per step (summed over ranks) or gram_axis='pairs'.",
                RuntimeWarning,
                stacklevel=3,
            )
        return SampleGrams(alignment_grams, image_gram, text_gram, num_samples)

    def _gram(self, x: torch.Tensor) -> torch.Tensor:
        return gram_matrix(x, kernel=self.kernel, sigma=self.sigma)

    def _alignment_gram(self, r: torch.Tensor) -> torch.Tensor:
        if self.gram_axis == "batch":
            return self._gram(r)
        return self._gram(r.transpose(1, 2).reshape(r.shape[0] * r.shape[2], r.shape[1]))

    def _image_gram(self, image: torch.Tensor, classes: int) -> torch.Tensor:
        per_image = self._gram(image)
        if self.gram_axis == "batch":
            return per_image
        ones = per_image.new_ones(classes, classes)
        return normalize_gram(torch.kron(per_image, ones))

    def _text_gram(self, text: torch.Tensor, global_batch: int) -> torch.Tensor:
        if text.ndim == 3:
            if self.gram_axis == "batch":
                return self._gram(text)
            return self._gram(text.reshape(text.shape[0] * text.shape[1], text.shape[2]))
        if self.gram_axis == "batch":
            # Shared text is the same sample for every image; its Gram is ~11^T/n (see module docstring).
            return self._gram(text.unsqueeze(0).expand(global_batch, *text.shape))
        per_class = self._gram(text)
        ones = per_class.new_ones(global_batch, global_batch)
        return normalize_gram(torch.kron(ones, per_class))
