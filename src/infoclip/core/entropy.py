"""Matrix-based Rényi alpha-entropy, joint entropy and mutual information, in bits.

S_alpha(A) = 1/(1 - alpha) * log2 sum_i lambda_i(A)^alpha for a PSD matrix A with unit trace
(Sanchez Giraldo et al. 2015), with the von Neumann (Shannon) entropy -sum_i lambda_i log2 lambda_i at
alpha = 1. Two routes compute it:

* ``"frobenius"`` (alpha = 2 only): S_2(A) = -log2 |A|_F^2, because |A|_F^2 = sum_i lambda_i^2 for a
  symmetric A. O(n^2), no eigendecomposition.
* ``"eigvalsh"`` (any alpha > 0): the eigenvalues of A, O(n^3), differentiable through ``torch.linalg.eigvalsh``.

Facts that hold for unit-diagonal PSD Grams (the ones ``gram_matrix`` returns), and facts that do not:
0 <= S_alpha(A) <= log2 n; S(A, B) >= max(S(A), S(B)), hence I(A; B) <= min(S(A), S(B)). Neither
I(A; B) >= 0 nor I(A; A) = S(A) holds for continuous kernels (the Gaussian kernel at alpha = 2 has negative
mutual information; I(A; A) < S(A) unless the kernel is a 0/1 partition kernel).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import torch

from infoclip.core._validation import check_alpha, check_choice, require_gram
from infoclip.core.gram import hadamard_product
from infoclip.errors import ConfigError, InputError

METHODS = ("auto", "frobenius", "eigvalsh")

#: A Gram matrix, or several Gram matrices of the same samples standing for one joint variable.
GramOrGrams = Union[torch.Tensor, Sequence[torch.Tensor]]

_LN2 = math.log(2.0)


def resolve_method(alpha: float, method: str) -> str:
    """The route ``renyi_entropy`` takes: ``"auto"`` is ``"frobenius"`` at alpha = 2, else ``"eigvalsh"``."""
    method = check_choice(method, "method", METHODS)
    if method == "auto":
        return "frobenius" if alpha == 2.0 else "eigvalsh"
    if method == "frobenius" and alpha != 2.0:
        raise ConfigError(f"method='frobenius' computes the alpha = 2 entropy only, got alpha={alpha}")
    return method


def renyi_entropy(a: torch.Tensor, alpha: float = 2.0, method: str = "auto") -> torch.Tensor:
    """Matrix-based Rényi alpha-entropy of a Gram matrix, in bits.

    Args:
        a: (n, n) symmetric PSD floating matrix with positive trace, normally unit trace (``gram_matrix``,
            ``joint_gram``). It is divided by its trace, so the result is scale invariant and unaffected by
            rounding of the trace. Symmetry, PSD-ness and the trace are not checked: that would need a
            device synchronisation on every call.
        alpha: order, a finite number > 0. alpha = 1 is the von Neumann (Shannon) limit.
        method: ``"auto"`` (Frobenius at alpha = 2, eigenvalues otherwise), ``"frobenius"`` (alpha = 2 only)
            or ``"eigvalsh"``.

    Returns:
        0-dim tensor in [0, log2 n] bits, float64 for float64 input and float32 otherwise, differentiable.

    Numerics of the eigenvalue route (p = eigenvalues / their sum): round-off negative eigenvalues count as 0
    and get the one-sided gradient at 0, so at alpha = 2 value and gradient match the Frobenius route even
    for singular A. Zero eigenvalues give 0 log 0 = 0 at alpha = 1, with zero gradient instead of the
    infinite derivative of -p log p at p = 0. For alpha < 1 the gradient alpha * p^(alpha - 1) diverges as
    p -> 0, so eigenvalues below n * eps(dtype) * p_max (round-off of ``eigvalsh``) count as exactly 0. The
    sum is evaluated as log1p(sum_i p_i expm1((alpha - 1) ln p_i)) / (1 - alpha): this stays accurate as
    alpha -> 1, where the textbook formula divides a rounding error by (1 - alpha).
    """
    a = require_gram(a, "A")
    alpha = check_alpha(alpha)
    route = resolve_method(alpha, method)
    if a.dtype != torch.float64:
        a = a.to(torch.float32)
    tiny = torch.finfo(a.dtype).tiny
    if route == "frobenius":
        # S_2(A / tr A) = 2 log2 tr A - 2 log2 |A|_F; the fused norm reads A once and stores no A * A.
        trace = a.diagonal().sum().clamp_min(tiny)
        frobenius = torch.linalg.vector_norm(a).clamp_min(tiny)
        return 2.0 * (torch.log2(trace) - torch.log2(frobenius))
    eigenvalues = torch.linalg.eigvalsh(a)
    # Round-off negatives count as 0 in value; the gradient passes as at 0 (the one-sided derivative).
    eigenvalues = eigenvalues + (eigenvalues.clamp_min(0.0) - eigenvalues).detach()
    p = eigenvalues / eigenvalues.sum().clamp_min(tiny)
    if alpha < 1.0:
        keep = p > a.shape[0] * torch.finfo(a.dtype).eps * p.max().detach()
        # Eigenvalues counted as 0 must lose their mass too: near alpha = 1 the sum of the dropped p_i,
        # divided by (1 - alpha), would otherwise shift the entropy by a tenth of a bit in float32.
        p = torch.where(keep, p, torch.zeros_like(p))
        p = p / p.sum().clamp_min(tiny)
    else:
        keep = p > 0
    log_p = torch.log(torch.where(keep, p, torch.ones_like(p)))
    if alpha == 1.0:
        return -(p * log_p).sum() / _LN2
    # sum_i p_i^alpha - 1 = sum_i (p_i^alpha - p_i); an eigenvalue counted as 0 contributes -p_i (value 0).
    terms = torch.where(keep, p * torch.expm1((alpha - 1.0) * log_p), -p)
    return torch.log1p(terms.sum()) / ((1.0 - alpha) * _LN2)


def _as_grams(grams: GramOrGrams, name: str) -> tuple[torch.Tensor, ...]:
    if isinstance(grams, torch.Tensor):
        return (grams,)
    if isinstance(grams, (tuple, list)) and grams:
        return tuple(grams)
    raise InputError(f"{name} must be a Gram matrix or a non-empty tuple of Gram matrices, got {type(grams).__name__}")


def joint_entropy(*grams: torch.Tensor, alpha: float = 2.0, method: str = "auto") -> torch.Tensor:
    """Joint Rényi alpha-entropy, in bits, of variables observed on the same n samples.

    Args:
        *grams: one or more (n, n) PSD Gram matrices (see ``renyi_entropy``); their normalised Hadamard
            product (``joint_gram``) is the Gram of the joint variable.
        alpha, method: as in ``renyi_entropy``.

    Returns:
        0-dim tensor in [0, log2 n] bits; for unit-diagonal Grams at least the largest marginal entropy.
    """
    # renyi_entropy divides by the trace itself: renormalising the product first would be a wasted n^2 pass.
    return renyi_entropy(hadamard_product(*grams), alpha=alpha, method=method)


def mutual_information(a: GramOrGrams, b: GramOrGrams, alpha: float = 2.0, method: str = "auto") -> torch.Tensor:
    """Matrix-based Rényi alpha mutual information I(A; B) = S(A) + S(B) - S(A, B), in bits.

    Args:
        a, b: each an (n, n) Gram matrix or a tuple of Gram matrices of the same n samples standing for a
            joint variable: I(D_V, D_L; R) is ``mutual_information((A_V, A_L), A_R)``.
        alpha, method: as in ``renyi_entropy``.

    Returns:
        0-dim tensor, at most min(S(A), S(B)) bits. It can be slightly negative for alpha > 1 with continuous
        kernels (a property of Rényi entropy, not a bug), and I(A; A) < S(A) for continuous kernels.
    """
    grams_a = _as_grams(a, "a")
    grams_b = _as_grams(b, "b")
    return (
        joint_entropy(*grams_a, alpha=alpha, method=method)
        + joint_entropy(*grams_b, alpha=alpha, method=method)
        - joint_entropy(*grams_a, *grams_b, alpha=alpha, method=method)
    )
