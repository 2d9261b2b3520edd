"""The InfoCLIP losses: alignment compression L_c and alignment distillation L_d (method doc §4).

    L_c = I(D_V^T, D_L^T; R^T) - S(D_V^T, D_L^T)  = S(A_R^T) - S(A_V^T o A_L^T o A_R^T / tr)
    L_d = -I(R^T; R^S)                            = S(A_R^T o A_R^S / tr) - S(A_R^T) - S(A_R^S)

S(D_V^T, D_L^T) is left out of L_c because it depends on the frozen teacher only. Entropies are in bits
(matrix-based Rényi, ``infoclip.core.entropy``); the Grams are built on a sample axis
(``infoclip.core.sample_axis``: ``"batch"`` by default, ``"pairs"`` as an option).

Gradient routing: the teacher embeddings D_V^T, D_L^T come without gradient (frozen teacher); R^T = LPAM(D_V^T,
D_L^T) still carries gradient to the shared LPAM. L_c reaches LPAM only (never the student); L_d reaches LPAM
through R^T and R^S and the student through R^S. ``detach_teacher=True`` stops L_d's gradient through R^T
(an ablation; the default follows InfoSAM, which does not detach).

Value ranges (unit-diagonal Grams, n samples): L_c in [-log2 n, 0]; L_d in [-log2 n, a small positive
margin] since Rényi mutual information at alpha = 2 is not guaranteed to be >= 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from infoclip.core._validation import check_alpha, require_ndim, require_tensor, shape_of
from infoclip.core.entropy import joint_entropy, renyi_entropy, resolve_method
from infoclip.core.lpam import LPAM
from infoclip.core.sample_axis import SampleAxis
from infoclip.errors import ConfigError, InputError


def compression_from_grams(
    image_gram: torch.Tensor,
    text_gram: torch.Tensor,
    alignment_gram: torch.Tensor,
    alpha: float = 2.0,
    method: str = "auto",
    alignment_entropy: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_c = S(A_R) - S(A_V, A_L, A_R) from (n, n) Grams; ``alignment_entropy`` reuses a computed S(A_R)."""
    if alignment_entropy is None:
        alignment_entropy = renyi_entropy(alignment_gram, alpha=alpha, method=method)
    return alignment_entropy - joint_entropy(image_gram, text_gram, alignment_gram, alpha=alpha, method=method)


def distillation_from_grams(
    teacher_gram: torch.Tensor,
    student_gram: torch.Tensor,
    alpha: float = 2.0,
    method: str = "auto",
    teacher_entropy: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_d = -I(A_RT; A_RS) from (n, n) Grams; ``teacher_entropy`` reuses a computed S(A_RT)."""
    if teacher_entropy is None:
        teacher_entropy = renyi_entropy(teacher_gram, alpha=alpha, method=method)
    student_entropy = renyi_entropy(student_gram, alpha=alpha, method=method)
    return joint_entropy(teacher_gram, student_gram, alpha=alpha, method=method) - teacher_entropy - student_entropy


class _InfoLossBase(nn.Module):
    def __init__(
        self,
        alpha: float,
        gram_axis: str,
        kernel: str,
        sigma: float | None,
        method: str,
        gather_across_ranks: bool,
    ) -> None:
        super().__init__()
        self.alpha = check_alpha(alpha)
        self.method = method
        resolve_method(self.alpha, method)
        self.sample_axis = SampleAxis(gram_axis, kernel, sigma, gather_across_ranks)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, method={self.method!r}, {self.sample_axis!r}"


class CompressionLoss(_InfoLossBase):
    """Alignment compression L_c = S(R^T) - S(D_V^T, D_L^T, R^T), in bits (minimised).

    Args:
        alpha: Rényi order, a finite number > 0 (2 = Frobenius route, O(n^2)).
        gram_axis: ``"batch"`` (one sample per image) or ``"pairs"`` (one per (image, class)); on the batch
            axis, text shared by the batch drops out (L_c = I(D_V; R)), see ``infoclip.core.sample_axis``.
        kernel, sigma: Gram kernel and Gaussian bandwidth (``gram_matrix``).
        method: entropy route, ``"auto"``, ``"frobenius"`` or ``"eigvalsh"`` (``renyi_entropy``).
        gather_across_ranks: gather samples from every rank under torch.distributed (default True).
    """

    def __init__(
        self,
        alpha: float = 2.0,
        gram_axis: str = "batch",
        kernel: str = "cosine",
        sigma: float | None = None,
        method: str = "auto",
        gather_across_ranks: bool = True,
    ) -> None:
        super().__init__(alpha, gram_axis, kernel, sigma, method, gather_across_ranks)

    def forward(
        self, teacher_image: torch.Tensor, teacher_text: torch.Tensor, teacher_alignment: torch.Tensor
    ) -> torch.Tensor:
        """L_c of one batch.

        Args:
            teacher_image: D_V^T, (B, H*W, D) floating; detached here (frozen teacher).
            teacher_text: D_L^T, (T, D) shared by the batch or (B, T, D) per image; detached here.
            teacher_alignment: R^T = LPAM(D_V^T, D_L^T), (B, H*W, T).

        Returns:
            0-dim float32 (float64 for float64 input) tensor in [-log2 n, 0] bits, identical on every rank
            when gathering; 0 when n = 1.
        """
        # The teacher is frozen: no gradient into D_V^T, D_L^T through their Grams (R^T is the caller's graph).
        grams = self.sample_axis.grams(
            {"teacher alignment R^T": teacher_alignment},
            require_tensor(teacher_image, "teacher image embeddings D_V^T").detach(),
            require_tensor(teacher_text, "teacher text embeddings D_L^T").detach(),
        )
        assert grams.image is not None and grams.text is not None
        (alignment_gram,) = grams.alignments.values()
        return compression_from_grams(grams.image, grams.text, alignment_gram, self.alpha, self.method)


class DistillationLoss(_InfoLossBase):
    """Alignment distillation L_d = -I(R^T; R^S), in bits (minimised, i.e. the mutual information is maximised).

    Args:
        alpha, gram_axis, kernel, sigma, method, gather_across_ranks: as in ``CompressionLoss``.
        detach_teacher: stop the gradient through R^T inside L_d (ablation); default False.
    """

    def __init__(
        self,
        alpha: float = 2.0,
        gram_axis: str = "batch",
        kernel: str = "cosine",
        sigma: float | None = None,
        method: str = "auto",
        gather_across_ranks: bool = True,
        detach_teacher: bool = False,
    ) -> None:
        super().__init__(alpha, gram_axis, kernel, sigma, method, gather_across_ranks)
        self.detach_teacher = bool(detach_teacher)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, detach_teacher={self.detach_teacher}"

    def forward(self, teacher_alignment: torch.Tensor, student_alignment: torch.Tensor) -> torch.Tensor:
        """L_d of one batch.

        Args:
            teacher_alignment: R^T, (B, H*W, T) floating.
            student_alignment: R^S, (B, H*W, T), same shape.

        Returns:
            0-dim float32 (float64 for float64 input) tensor, in [-log2 n, small positive] bits; 0 when n = 1.
        """
        if self.detach_teacher:
            teacher_alignment = teacher_alignment.detach()
        grams = self.sample_axis.grams(
            {"teacher alignment R^T": teacher_alignment, "student alignment R^S": student_alignment}
        )
        teacher_gram, student_gram = grams.alignments.values()
        return distillation_from_grams(teacher_gram, student_gram, self.alpha, self.method)


def _check_given_alignment(
    alignment: object, image: torch.Tensor, text: torch.Tensor, teacher_alignment: torch.Tensor
) -> None:
    """A precomputed R^S must be the map of the student embeddings passed alongside it."""
    alignment = require_ndim(alignment, "student_alignment R^S", (3,), "(B, H*W, T)")
    image = require_ndim(image, "student image embeddings D_V^S", (3,), "(B, H*W, D)")
    text = require_ndim(text, "student text embeddings D_L^S", (2, 3), "(T, D) or (B, T, D)")
    expected = (image.shape[0], image.shape[1], text.shape[-2])
    if alignment.shape != teacher_alignment.shape or tuple(alignment.shape) != expected:
        raise InputError(
            f"student_alignment has shape {shape_of(alignment)}, expected {expected} = (B, H*W, T) from D_V^S "
            f"{shape_of(image)} and D_L^S {shape_of(text)}, like the teacher's alignment {shape_of(teacher_alignment)}"
        )


class InfoCLIPObjective(nn.Module):
    """The InfoCLIP objective lambda_1 L_c + lambda_2 L_d with its shared LPAM (add it to the task loss).

    Owns the LPAM (``objective.lpam``), which maps teacher and student embeddings alike, so an optimiser
    built from ``objective.parameters()`` trains it. Computes each Gram and S(A_R^T) once for both losses.

    Args:
        lpam: the shared ``LPAM`` (``LPAM(dim)``).
        lambda_compression, lambda_distillation: weights lambda_1, lambda_2 (paper: 1, 1), finite numbers.
        alpha, gram_axis, kernel: as in ``CompressionLoss``.
        detach_teacher_in_distillation: stop L_d's gradient through R^T (ablation); default False.
        sigma, method, gather_across_ranks: keyword-only, as in ``CompressionLoss``.
    """

    def __init__(
        self,
        lpam: LPAM,
        lambda_compression: float = 1.0,
        lambda_distillation: float = 1.0,
        alpha: float = 2.0,
        gram_axis: str = "batch",
        kernel: str = "cosine",
        detach_teacher_in_distillation: bool = False,
        *,
        sigma: float | None = None,
        method: str = "auto",
        gather_across_ranks: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(lpam, nn.Module):
            raise ConfigError(f"lpam must be an LPAM module, got {type(lpam).__name__}")
        for name, value in (("lambda_compression", lambda_compression), ("lambda_distillation", lambda_distillation)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        self.lpam = lpam
        self.lambda_compression = float(lambda_compression)
        self.lambda_distillation = float(lambda_distillation)
        self.alpha = check_alpha(alpha)
        self.method = method
        resolve_method(self.alpha, method)
        self.detach_teacher_in_distillation = bool(detach_teacher_in_distillation)
        self.sample_axis = SampleAxis(gram_axis, kernel, sigma, gather_across_ranks)

    def extra_repr(self) -> str:
        return (
            f"lambda_compression={self.lambda_compression}, lambda_distillation={self.lambda_distillation}, "
            f"alpha={self.alpha}, method={self.method!r}, "
            f"detach_teacher_in_distillation={self.detach_teacher_in_distillation}, {self.sample_axis!r}"
        )

    def forward(
        self,
        student_image: torch.Tensor,
        student_text: torch.Tensor,
        teacher_image: torch.Tensor,
        teacher_text: torch.Tensor,
        student_alignment: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Both losses of one batch.

        Args:
            student_image: D_V^S, (B, H*W, D) dense image embeddings of the student's training forward.
            student_text: D_L^S, (T, D) or (B, T, D).
            teacher_image: D_V^T, (B, H*W, D), normally computed under no_grad; detached here in any case,
                so the teacher never receives gradient (LPAM does, through R^T).
            teacher_text: D_L^T, (T, D) or (B, T, D); detached here too.
            student_alignment: R^S = ``self.lpam(student_image, student_text)`` when the model has already
                computed it (e.g. to feed its decoder); it is reused instead of being recomputed.

        Returns:
            dict with 0-dim tensors ``"compression"`` (L_c), ``"distillation"`` (L_d), ``"total"``
            (lambda_1 L_c + lambda_2 L_d), all in bits, and the local maps ``"alignment_teacher"`` (R^T) and
            ``"alignment_student"`` (R^S), each (B, H*W, T).
        """
        # The teacher is frozen: its embeddings never receive gradient, even when the caller forgot no_grad.
        teacher_image = require_tensor(teacher_image, "teacher image embeddings D_V^T").detach()
        teacher_text = require_tensor(teacher_text, "teacher text embeddings D_L^T").detach()
        teacher_alignment = self.lpam(teacher_image, teacher_text)
        if student_alignment is None:
            student_alignment = self.lpam(student_image, student_text)
        else:
            _check_given_alignment(student_alignment, student_image, student_text, teacher_alignment)
        grams = self.sample_axis.grams(
            {"teacher alignment R^T": teacher_alignment, "student alignment R^S": student_alignment},
            teacher_image,
            teacher_text,
        )
        assert grams.image is not None and grams.text is not None
        teacher_gram, student_gram = grams.alignments.values()
        teacher_entropy = renyi_entropy(teacher_gram, alpha=self.alpha, method=self.method)
        compression = compression_from_grams(
            grams.image, grams.text, teacher_gram, self.alpha, self.method, alignment_entropy=teacher_entropy
        )
        if self.detach_teacher_in_distillation:
            teacher_gram, teacher_entropy = teacher_gram.detach(), teacher_entropy.detach()
        distillation = distillation_from_grams(
            teacher_gram, student_gram, self.alpha, self.method, teacher_entropy=teacher_entropy
        )
        return {
            "compression": compression,
            "distillation": distillation,
            "total": self.lambda_compression * compression + self.lambda_distillation * distillation,
            "alignment_teacher": teacher_alignment,
            "alignment_student": student_alignment,
        }
