"""Teacher-student agreement of pixel-text alignment maps on held-out images.

InfoCLIP's claim is that it keeps the fine-tuned CLIP's pixel-text alignment close to the pretrained one. This
module measures exactly that, for any run with or without the objective, from the model contract only
(``DenseEmbeddings`` of the student's ``forward_train`` and of the adapter's frozen teacher):

* the alignment map of one image is R = cos(D_V, D_L), shape (H*W, T): each dense token's cosine similarity to
  every class text embedding. It is parameter-free on purpose: the LPAM map the loss uses is learnt by the
  InfoCLIP run itself and does not exist in a plain fine-tuning run, so it cannot compare the two;
* ``alignment_mi``: the matrix-based Rényi alpha mutual information I(A_R^T; A_R^S) in bits between the
  cosine-kernel Gram matrices of the teacher's and the student's maps over the image's H*W tokens (the
  functional L_d maximises, ``infoclip.core.mutual_information``), averaged over images; ``alignment_mi_ratio``
  divides each image's MI by the teacher map's own entropy S(A_R^T), so 1 is "as informative as possible";
* ``alignment_cka``: linear CKA (Kornblith et al. 2019) between the two (H*W, T) maps, an independent
  similarity in [0, 1], averaged over images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from infoclip.adapters.contract import DenseEmbeddings
from infoclip.core import gram_matrix, mutual_information, renyi_entropy
from infoclip.errors import InputError

#: the validation-metric names written by the engine
METRICS = ("alignment_mi", "alignment_mi_ratio", "alignment_cka")


def alignment_maps(embeddings: DenseEmbeddings) -> torch.Tensor:
    """Cosine alignment maps R = cos(D_V, D_L).

    Args:
        embeddings: image (B, N, D) and text (T, D) or (B, T, D).

    Returns:
        (B, N, T) float32 in [-1, 1].
    """
    image = F.normalize(embeddings.image.float(), dim=-1)
    text = F.normalize(embeddings.text.float(), dim=-1)
    if text.ndim == 2:
        return image @ text.T
    return image @ text.transpose(1, 2)


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Linear centred kernel alignment of two representations of the same n samples.

    Args:
        x: (n, p) float; y: (n, q) float; n >= 2.

    Returns:
        0-dim float64 tensor in [0, 1]: ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F) with column-centred
        X_c, Y_c; 1 for representations equal up to rotation and isotropic scaling. 0 when either is constant.

    Raises:
        InputError: not two 2-D tensors with the same number n >= 2 of rows.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise InputError(f"linear CKA needs (n, p) and (n, q) tensors with n >= 2, got {tuple(x.shape)} and {tuple(y.shape)}")
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    denominator = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    if denominator <= 0:
        return x.new_zeros(())
    return (torch.linalg.matrix_norm(y.T @ x) ** 2 / denominator).clamp(0.0, 1.0)


def map_agreement(teacher_map: torch.Tensor, student_map: torch.Tensor, alpha: float = 2.0) -> dict[str, float]:
    """Agreement of one image's teacher and student alignment maps (see the module docstring).

    Args:
        teacher_map, student_map: (N, T) float, N >= 2 tokens, the same T classes.
        alpha: Rényi order (the objective's ``alpha``).

    Returns:
        ``{"alignment_mi": bits, "alignment_mi_ratio": MI / S(A_R^T), "alignment_cka": [0, 1]}``.
    """
    if teacher_map.shape != student_map.shape or teacher_map.ndim != 2:
        raise InputError(f"alignment maps must both be (N, T), got {tuple(teacher_map.shape)} and {tuple(student_map.shape)}")
    teacher_gram = gram_matrix(teacher_map.double())
    student_gram = gram_matrix(student_map.double())
    mi = float(mutual_information(teacher_gram, student_gram, alpha=alpha))
    entropy = float(renyi_entropy(teacher_gram, alpha=alpha))
    return {
        "alignment_mi": mi,
        "alignment_mi_ratio": mi / entropy if entropy > 0 else 0.0,
        "alignment_cka": float(linear_cka(teacher_map, student_map)),
    }


class AgreementMeter:
    """Mean of ``map_agreement`` over the images of several batches."""

    def __init__(self, alpha: float = 2.0) -> None:
        self.alpha = float(alpha)
        self.sums = dict.fromkeys(METRICS, 0.0)
        self.count = 0

    def update(self, teacher: DenseEmbeddings, student: DenseEmbeddings) -> None:
        """Add one batch: the teacher's and the student's embeddings of the same images and classes."""
        teacher_maps, student_maps = alignment_maps(teacher), alignment_maps(student)
        if teacher_maps.shape != student_maps.shape:
            raise InputError(
                f"teacher and student alignment maps differ in shape: {tuple(teacher_maps.shape)} vs {tuple(student_maps.shape)}"
            )
        for t_map, s_map in zip(teacher_maps, student_maps):
            for key, value in map_agreement(t_map, s_map, self.alpha).items():
                self.sums[key] += value
            self.count += 1

    def result(self) -> dict[str, float]:
        """Means over the images seen (an empty dict before any)."""
        return {key: value / self.count for key, value in self.sums.items()} if self.count else {}


@torch.no_grad()
def measure_agreement(
    student: Any,
    teacher: Callable[[torch.Tensor, Sequence[str]], DenseEmbeddings],
    images: Sequence[torch.Tensor],
    class_names: Sequence[str],
    size: int,
    alpha: float = 2.0,
    batch_size: int = 8,
) -> dict[str, float]:
    """Mean teacher-student agreement on ``images``.

    Args:
        student: an ``OVSSModel`` (its ``forward_train`` gives the student's embeddings; it is run in eval mode
            and left in the mode it was in).
        teacher: ``teacher(images, class_names) -> DenseEmbeddings`` (the frozen pretrained CLIP).
        images: (3, H, W) float RGB tensors in [0, 255], on the models' device.
        class_names: the T classes the maps are computed over (seen and unseen alike).
        size: the square side both models see (the training crop size), images are resized to it.
        alpha: Rényi order.

    Returns:
        ``{name: mean}`` for ``METRICS``.
    """
    if not images:
        raise InputError("alignment agreement needs at least one image")
    meter = AgreementMeter(alpha)
    was_training = student.training
    student.eval()
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.stack([
                F.interpolate(img[None].float(), size=(size, size), mode="bilinear", align_corners=False)[0]
                for img in images[start : start + batch_size]
            ])  # fmt: skip
            meter.update(teacher(batch, list(class_names)), student.forward_train(batch, list(class_names)).embeddings)
    finally:
        student.train(was_training)
    return meter.result()
