"""Matrix-based Rényi entropy: the two alpha = 2 routes, bounds, ordering, invariances, alpha -> 1, checks.

Deliberately absent: MI >= 0 and MI(A, A) = S(A) on continuous kernels; neither holds (method doc §8).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from infoclip.core import gram_matrix, joint_entropy, mutual_information, renyi_entropy
from infoclip.errors import ConfigError, InputError

ALPHAS = (0.5, 1.0, 1.5, 2.0, 3.0)
DTYPES = (torch.float32, torch.float64)
# Value tolerance in bits: float32 rounding of a sum of n^2 terms, relative to the value (<= log2 n).
ATOL = {torch.float32: 3e-5, torch.float64: 1e-10}

seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 40)
widths = st.integers(1, 24)


def _features(seed: int, n: int, d: int, dtype: torch.dtype, requires_grad: bool = False) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    # A shared offset makes the samples correlated, so the Grams are far from both 11^T/n and I/n.
    x = x + 1.5 * torch.randn(1, d, generator=generator, dtype=torch.float64)
    return x.to(dtype).requires_grad_(requires_grad)


def _kernel_args(kernel: str) -> dict:
    return {"kernel": "gaussian", "sigma": 4.0} if kernel == "gaussian" else {"kernel": "cosine"}


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25, deadline=None, derandomize=True)
# d >= 2: for d = 1 the cosine kernel is a sign, and its gradient is pure round-off amplified by 1/|x|.
@given(seed=seeds, n=sizes, d=st.integers(2, 24))
def test_frobenius_route_equals_eigenvalue_route_in_value_and_gradient(dtype, seed, n, d):
    x = _features(seed, n, d, dtype, requires_grad=True)
    y = _features(seed + 1, n, d, dtype)
    values, gradients = [], []
    for method in ("frobenius", "eigvalsh"):
        x.grad = None
        value = renyi_entropy(gram_matrix(x), alpha=2.0, method=method) + mutual_information(
            gram_matrix(x), gram_matrix(y), alpha=2.0, method=method
        )
        value.backward()
        values.append(value.detach())
        gradients.append(x.grad.clone())
    assert values[0].dtype == dtype
    torch.testing.assert_close(values[0], values[1], atol=ATOL[dtype], rtol=0)
    # Relative to the largest gradient entry, floored for gradients that vanish up to round-off.
    scale = max(gradients[0].abs().max().item(), 1e-2)
    relative = 1e-4 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(gradients[0], gradients[1], atol=relative * scale, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_frobenius_and_eigenvalue_gradients_agree_with_respect_to_the_matrix(dtype):
    a = gram_matrix(_features(3, 12, 5, dtype)).detach()
    grads = []
    for method in ("frobenius", "eigvalsh"):
        leaf = a.clone().requires_grad_(True)
        renyi_entropy(leaf, method=method).backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4 if dtype == torch.float32 else 1e-10, rtol=1e-4)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=seeds, n=sizes, d=widths)
def test_entropy_lies_between_zero_and_log2_n(alpha, kernel, seed, n, d):
    a = gram_matrix(_features(seed, n, d, torch.float64), **_kernel_args(kernel))
    value = renyi_entropy(a, alpha=alpha).item()
    assert -1e-9 <= value <= math.log2(n) + 1e-9


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_constant_and_orthogonal_samples_reach_the_bounds(alpha, n):
    for method in ("auto", "eigvalsh"):
        assert renyi_entropy(torch.full((n, n), 1.0 / n), alpha, method).item() == pytest.approx(0.0, abs=1e-5)
        assert renyi_entropy(torch.eye(n) / n, alpha, method).item() == pytest.approx(math.log2(n), abs=1e-5)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("kernel", ["cosine", "gaussian"])
@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=seeds, n=st.integers(2, 30), d=widths)
def test_joint_entropy_is_at_least_each_marginal(alpha, kernel, seed, n, d):
    grams = [gram_matrix(_features(seed + k, n, d, torch.float64), **_kernel_args(kernel)) for k in range(3)]
    joint = joint_entropy(*grams, alpha=alpha).item()
    for gram in grams:
        assert joint >= renyi_entropy(gram, alpha=alpha).item() - 1e-9
    mi = mutual_information(grams[0], grams[1], alpha=alpha).item()
    assert mi <= min(renyi_entropy(g, alpha=alpha).item() for g in grams[:2]) + 1e-9


@pytest.mark.parametrize("alpha", ALPHAS)
@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=seeds, n=st.integers(2, 30), d=widths)
def test_permuting_samples_consistently_changes_nothing(alpha, seed, n, d):
    x, y = _features(seed, n, d, torch.float64), _features(seed + 1, n, d, torch.float64)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))

    def quantities(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = gram_matrix(x), gram_matrix(y)
        return torch.stack([renyi_entropy(a, alpha), joint_entropy(a, b, alpha=alpha), mutual_information(a, b, alpha)])

    torch.testing.assert_close(quantities(x[perm], y[perm]), quantities(x, y))


def test_mutual_information_of_a_tuple_is_that_of_the_joint_variable():
    a, b, c = (gram_matrix(_features(k, 9, 4, torch.float64)) for k in range(3))
    expected = joint_entropy(a, b) + renyi_entropy(c) - joint_entropy(a, b, c)
    torch.testing.assert_close(mutual_information((a, b), c), expected)
    torch.testing.assert_close(mutual_information([c], (a, b)), expected)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_mutual_information_of_a_partition_kernel_with_itself_is_its_entropy(alpha):
    # MI(A, A) = S(A) holds for 0/1 partition kernels (A o A = A), which makes it a valid check here.
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    a = (labels[:, None] == labels[None, :]).double() / len(labels)
    assert mutual_information(a, a, alpha).item() == pytest.approx(renyi_entropy(a, alpha).item(), abs=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_alpha_one_is_the_limit_of_alpha_to_one(dtype):
    a = gram_matrix(_features(7, 50, 6, dtype))
    shannon = renyi_entropy(a, alpha=1.0).item()
    p = torch.linalg.eigvalsh(a.double()).clamp_min(0)
    p = p[p > 0]
    assert shannon == pytest.approx(-(p * p.log2()).sum().item(), abs=1e-5)
    # Near alpha = 1 the naive 1/(1 - alpha) log2 sum(lambda^alpha) divides float32 round-off (~1e-7) by
    # |1 - alpha|: a 0.1-bit error at 1e-6. The slope dS/dalpha is a few bits, so 1e-3 may move S by ~1e-2.
    for alpha, tolerance in ((1 - 1e-6, 2e-5), (1 + 1e-6, 2e-5), (1 - 1e-3, 1e-2), (1 + 1e-3, 1e-2)):
        assert renyi_entropy(a, alpha=alpha).item() == pytest.approx(shannon, abs=tolerance)


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("method", ["auto", "eigvalsh"])
def test_rank_deficient_grams_have_finite_value_and_gradient(alpha, method):
    # Duplicated samples: an exactly singular Gram with round-off eigenvalues around 0.
    x = _features(11, 3, 5, torch.float32).repeat(4, 1).requires_grad_(True)
    value = renyi_entropy(gram_matrix(x), alpha=alpha, method=method)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()
    assert value.item() == pytest.approx(renyi_entropy(gram_matrix(x[:3].double()), alpha=alpha).item(), abs=1e-4)


def test_single_sample_has_zero_entropy_for_every_alpha():
    for alpha in ALPHAS:
        for method in ("auto", "eigvalsh"):
            assert renyi_entropy(torch.ones(1, 1), alpha, method).item() == 0.0


def test_entropy_is_computed_in_float32_for_half_precision():
    a = gram_matrix(torch.randn(6, 4)).to(torch.bfloat16)
    assert renyi_entropy(a).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"a": torch.ones(3, 4)}, InputError, "square"),
        ({"a": torch.ones(2, 2, 2)}, InputError, r"\(n, n\)"),
        ({"a": torch.ones(2, 2, dtype=torch.int32)}, InputError, "floating-point"),
        ({"alpha": 0.0}, ConfigError, "alpha"),
        ({"alpha": -1.0}, ConfigError, "alpha"),
        ({"alpha": float("nan")}, ConfigError, "alpha"),
        ({"alpha": float("inf")}, ConfigError, "alpha"),
        ({"alpha": True}, ConfigError, "alpha"),
        ({"alpha": 1.5, "method": "frobenius"}, ConfigError, "alpha = 2 entropy only"),
        ({"method": "svd"}, ConfigError, "method must be one of"),
    ],
)
def test_entropy_rejects_bad_arguments(kwargs, error, message):
    arguments = {"a": torch.eye(3) / 3, **kwargs}
    with pytest.raises(error, match=message):
        renyi_entropy(**arguments)


def test_joint_entropy_and_mutual_information_reject_bad_arguments():
    with pytest.raises(InputError, match="at least one"):
        joint_entropy()
    with pytest.raises(InputError, match="same samples"):
        joint_entropy(torch.eye(3) / 3, torch.eye(2) / 2)
    with pytest.raises(InputError, match="tuple of Gram matrices"):
        mutual_information((), torch.eye(2) / 2)
