"""Normalised Gram matrices: the kernel view of a set of samples that matrix-based Rényi entropy works on.

A variable observed on n samples is represented by the n x n Gram matrix of a positive-definite kernel,
normalised to unit trace, A = K / tr K (Sanchez Giraldo et al. 2015). Several variables observed on the
same samples have the joint Gram A_1 o ... o A_k / tr(A_1 o ... o A_k), with o the Hadamard product
(Yu et al. 2020).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from infoclip.core._validation import check_choice, compute_dtype, require_gram, require_tensor, shape_of
from infoclip.errors import ConfigError, InputError

KERNELS = ("cosine", "gaussian")

# Below this norm a sample counts as the zero vector for the cosine kernel (F.normalize's own eps).
_ZERO_NORM = 1e-12


def gram_matrix(x: torch.Tensor, kernel: str = "cosine", sigma: float | None = None) -> torch.Tensor:
    """Normalised Gram matrix A = K / tr K of n samples.

    Args:
        x: (n, ...) floating tensor, n >= 1; each sample ``x[i]`` is flattened to one vector.
        kernel: ``"cosine"`` (default): the linear (degree-1 polynomial) kernel on L2-normalised samples,
            K_ij = <x_i, x_j> / (|x_i| |x_j|), in [-1, 1] with unit diagonal. ``"gaussian"``:
            K_ij = exp(-|x_i - x_j|^2 / (2 sigma^2)), in (0, 1] with unit diagonal, on the raw samples.
        sigma: bandwidth of the Gaussian kernel, a number > 0; required for ``"gaussian"`` and
            rejected for ``"cosine"`` (there is no sensible default bandwidth across feature scales).

    Returns:
        (n, n) symmetric positive semi-definite matrix with unit trace. Both kernels have a unit diagonal,
        so A = K / n and every A_ii = 1/n. dtype: float64 for float64 input, float32 otherwise.

    A zero sample has no direction. The cosine kernel defines it as orthogonal to every other sample and
    similar to itself (K_ii = 1, K_ij = 0): K stays PSD with unit diagonal, tr K = n > 0, so A is always
    defined and finite. Its gradient with respect to an exactly zero sample is finite but large (of order
    1/1e-12, from the normalisation), as for any direction of a zero vector.
    """
    x = require_tensor(x, "x")
    if x.ndim < 1 or x.shape[0] < 1:
        raise InputError(f"x must have shape (n, ...) with n >= 1 samples, got shape {shape_of(x)}")
    kernel, sigma = check_kernel(kernel, sigma)
    flat = x.reshape(x.shape[0], -1).to(compute_dtype(x))
    if flat.shape[1] == 0:
        raise InputError(f"x has samples with no features, got shape {shape_of(x)}")
    if sigma is None:  # cosine: check_kernel gives a bandwidth exactly when the kernel is gaussian
        unit = F.normalize(flat, dim=1, eps=_ZERO_NORM)
        k = unit @ unit.T
        # Not symmetrised: BLAS may leave an asymmetry at round-off level, which changes entropies by about as
        # much, and an explicit (k + k.T) / 2 was the costliest operation of the whole loss at n = 2304.
        k.fill_diagonal_(1.0)
    else:
        # Distances are translation invariant; centring first reduces cancellation in |a|^2 + |b|^2 - 2ab.
        centred = flat - flat.mean(dim=0, keepdim=True)
        sq_norm = (centred * centred).sum(dim=1)
        sq_dist = (sq_norm[:, None] + sq_norm[None, :] - 2.0 * (centred @ centred.T)).clamp_min(0.0)
        # The diagonal is set before exp (which keeps its output for backward), giving exactly K_ii = 1.
        sq_dist.fill_diagonal_(0.0)
        k = torch.exp(sq_dist / (-2.0 * sigma * sigma))
    return k / k.shape[0]


def check_kernel(kernel: object, sigma: object) -> tuple[str, float | None]:
    """Validate a kernel name and its bandwidth; returns (kernel, sigma as float or None)."""
    kernel = check_choice(kernel, "kernel", KERNELS)
    if kernel == "cosine":
        if sigma is not None:
            raise ConfigError("sigma applies to the gaussian kernel only; leave it unset for kernel='cosine'")
        return kernel, None
    if sigma is None:
        raise ConfigError("kernel='gaussian' needs an explicit bandwidth: pass sigma=<number > 0>")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < float(sigma) < float("inf"):
        raise ConfigError(f"sigma must be a finite number > 0, got {sigma!r}")
    return kernel, float(sigma)


def normalize_gram(k: torch.Tensor) -> torch.Tensor:
    """K / tr K for an (n, n) PSD matrix with positive trace (the trace is not checked: no device sync)."""
    k = require_gram(k, "K")
    return k / k.diagonal().sum()


def hadamard_product(*grams: torch.Tensor) -> torch.Tensor:
    """A_1 o ... o A_k of (n, n) Grams of the same samples, not renormalised (``joint_gram`` is)."""
    if not grams:
        raise InputError("a joint Gram needs at least one Gram matrix")
    first = require_gram(grams[0], "A_1")
    product = first
    for index, gram in enumerate(grams[1:], start=2):
        gram = require_gram(gram, f"A_{index}")
        if gram.shape != first.shape:
            raise InputError(
                f"all Gram matrices must be of the same samples: A_1 has shape {shape_of(first)}, "
                f"A_{index} has shape {shape_of(gram)}"
            )
        product = product * gram
    return product


def joint_gram(*grams: torch.Tensor) -> torch.Tensor:
    """Joint Gram of variables observed on the same n samples: (A_1 o ... o A_k) / tr(A_1 o ... o A_k).

    Args:
        *grams: one or more (n, n) PSD Gram matrices of the same shape (unit trace not required).

    Returns:
        (n, n) PSD matrix with unit trace (Schur product theorem). The matrix 11^T/n is its identity element:
        a variable that is identical on every sample does not change the joint Gram.
    """
    return normalize_gram(hadamard_product(*grams))
