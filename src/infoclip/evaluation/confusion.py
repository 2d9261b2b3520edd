"""A streaming confusion matrix for semantic segmentation, accumulated in place on the prediction's device."""

from __future__ import annotations

import numpy as np
import torch

from infoclip.data.spec import IGNORE_INDEX
from infoclip.errors import InputError


def _as_tensor(x: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{what} must be a torch.Tensor or numpy array, not {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype == torch.bool or x.is_complex():
        raise InputError(f"{what} must hold integer class indices, got dtype {x.dtype}")
    return x


class ConfusionMatrix:
    """(K, K) int64 pixel counts: ``matrix[g, p]`` = pixels of ground-truth class g predicted as p.

    Pixels whose label is ``IGNORE_INDEX`` (-1) are not counted, exactly as detectron2's
    ``SemSegEvaluator`` drops its extra "ignore" row and column before computing metrics.
    The counts live on ``device`` so GPU evaluation never copies predictions to the host.
    """

    def __init__(self, num_classes: int, device: str | torch.device = "cpu") -> None:
        if num_classes < 1:
            raise InputError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        # Flat (K+1) x K counts whose first row collects the ignored pixels: pixel (g, p) goes to
        # (g + 1) * K + p, so the ignore label -1 needs no masking and no torch.where.
        self._counts = torch.zeros((num_classes + 1) * num_classes, dtype=torch.int64, device=device)
        self._one = torch.ones((), dtype=torch.int64, device=device)

    @property
    def matrix(self) -> torch.Tensor:
        """The (K, K) int64 counts (a view: in-place changes, e.g. an all-reduce, update this matrix)."""
        k = self.num_classes
        return self._counts[k:].view(k, k)

    def update(self, pred: torch.Tensor | np.ndarray, label: torch.Tensor | np.ndarray, *, check: bool = True) -> None:
        """Add one image (or a batch).

        Args:
            pred: (H, W) or (B, H, W) integer predicted classes in ``0..K-1``.
            label: same shape, integer ground truth in ``0..K-1`` or ``IGNORE_INDEX`` (-1).
            check: verify the value ranges (two extra passes, about half the cost of an update); pass
                ``False`` only when the caller guarantees them, as ``evaluate`` does (argmax over K scores,
                labels validated by the dataset reader).

        Raises:
            InputError: shapes differ, non-integer dtypes, or (with ``check``) values out of range.
        """
        pred, label = _as_tensor(pred, "pred"), _as_tensor(label, "label")
        if pred.shape != label.shape:
            raise InputError(f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(label.shape)}")
        if pred.numel() == 0:
            return
        k = self.num_classes
        device = self._counts.device
        pred = pred.to(device=device, dtype=torch.int64).reshape(-1)
        label = label.to(device=device, dtype=torch.int64).reshape(-1)
        if check:
            p_min, p_max = torch.aminmax(pred)
            l_min, l_max = torch.aminmax(label)
            if p_min < 0 or p_max >= k:
                raise InputError(f"predictions must be class indices in 0..{k - 1}, got values {int(p_min)}..{int(p_max)}")
            if l_min < IGNORE_INDEX or l_max >= k:
                raise InputError(
                    f"labels must be class indices in 0..{k - 1} or {IGNORE_INDEX}, got values {int(l_min)}..{int(l_max)}"
                )
        # index_add_ in place into the persistent counts rather than torch.bincount: no fresh (K+1)*K output to
        # allocate and add per image (the dominant cost at 847 classes, see benchmarks/evaluator.py); integer
        # counts make the result order-independent on CUDA too.
        flat = torch.add(pred, label, alpha=k).add_(k)
        self._counts.index_add_(0, flat, self._one.expand(flat.numel()))

    def reset(self) -> None:
        self._counts.zero_()

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts into this matrix (e.g. after gathering from other workers); returns self."""
        if other.num_classes != self.num_classes:
            raise InputError(f"cannot merge a {other.num_classes}-class confusion matrix into a {self.num_classes}-class one")
        self._counts.add_(other._counts.to(self._counts.device))
        return self

    def numpy(self) -> np.ndarray:
        """A copy of the counts as a (K, K) int64 numpy array."""
        return self.matrix.detach().cpu().numpy().copy()
