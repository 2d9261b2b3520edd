"""Gram matrices: kernels, normalisation, the zero-vector convention, joint Grams, input checks."""

from __future__ import annotations

import pytest
import torch

from infoclip.core import gram_matrix, joint_gram
from infoclip.errors import ConfigError, InputError


def test_cosine_gram_is_normalised_dot_product_of_unit_samples():
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    flat = x.reshape(6, -1)
    unit = flat / flat.norm(dim=1, keepdim=True)
    a = gram_matrix(x)
    assert a.shape == (6, 6) and a.dtype == torch.float64
    torch.testing.assert_close(a, unit @ unit.T / 6)
    torch.testing.assert_close(a.trace(), torch.tensor(1.0, dtype=torch.float64))
    # gram_matrix deliberately does not symmetrise (see its comment): BLAS may leave round-off asymmetry.
    torch.testing.assert_close(a, a.T, rtol=0, atol=1e-15)
    assert torch.linalg.eigvalsh(a).min() > -1e-12


def test_cosine_gram_ignores_sample_scale():
    x = torch.randn(5, 7)
    scales = torch.tensor([0.01, 1.0, 3.0, 100.0, 7.0]).unsqueeze(1)
    torch.testing.assert_close(gram_matrix(x * scales), gram_matrix(x))


def test_gaussian_gram_matches_definition_and_needs_a_bandwidth():
    x = torch.randn(5, 4, dtype=torch.float64)
    sigma = 1.7
    expected = torch.exp(-torch.cdist(x, x) ** 2 / (2 * sigma**2)) / 5
    torch.testing.assert_close(gram_matrix(x, kernel="gaussian", sigma=sigma), expected)
    with pytest.raises(ConfigError, match="explicit bandwidth"):
        gram_matrix(x, kernel="gaussian")
    for bad in (0.0, -1.0, float("inf"), float("nan"), True, "1"):
        with pytest.raises(ConfigError, match="sigma"):
            gram_matrix(x, kernel="gaussian", sigma=bad)
    with pytest.raises(ConfigError, match="gaussian kernel only"):
        gram_matrix(x, sigma=1.0)
    with pytest.raises(ConfigError, match="kernel must be one of"):
        gram_matrix(x, kernel="rbf")


def test_identical_samples_give_the_all_ones_gram():
    x = torch.randn(1, 10).expand(4, 10)
    torch.testing.assert_close(gram_matrix(x), torch.full((4, 4), 0.25))


def test_zero_sample_is_orthogonal_to_others_and_similar_to_itself():
    x = torch.randn(4, 6, requires_grad=True)
    with torch.no_grad():
        x[2] = 0.0
    a = gram_matrix(x)
    assert a[2, 2].item() == pytest.approx(0.25)
    assert torch.all(a[2, [0, 1, 3]] == 0) and torch.all(a[[0, 1, 3], 2] == 0)
    a.pow(2).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_all_zero_samples_give_the_identity_over_n():
    torch.testing.assert_close(gram_matrix(torch.zeros(3, 5)), torch.eye(3) / 3)


def test_single_sample_gives_one():
    assert gram_matrix(torch.randn(1, 8)).tolist() == [[1.0]]


def test_half_precision_is_computed_in_float32():
    a = gram_matrix(torch.randn(4, 8, dtype=torch.bfloat16))
    assert a.dtype == torch.float32
    torch.testing.assert_close(a.trace(), torch.tensor(1.0))


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.ones(3, 4, dtype=torch.int64), "floating-point"),
        (torch.tensor(1.0), r"\(n, \.\.\.\)"),
        (torch.ones(0, 4), r"\(n, \.\.\.\)"),
        (torch.ones(3, 0), "no features"),
        ([[1.0, 2.0]], "torch.Tensor"),
    ],
)
def test_gram_rejects_bad_input(x, message):
    with pytest.raises(InputError, match=message):
        gram_matrix(x)


def test_joint_gram_is_unit_trace_hadamard_product_with_all_ones_as_identity():
    a = gram_matrix(torch.randn(5, 3, dtype=torch.float64))
    b = gram_matrix(torch.randn(5, 9, dtype=torch.float64))
    joint = joint_gram(a, b)
    torch.testing.assert_close(joint, a * b / (a * b).trace())
    torch.testing.assert_close(joint.trace(), torch.tensor(1.0, dtype=torch.float64))
    ones = torch.full((5, 5), 1 / 5, dtype=torch.float64)
    torch.testing.assert_close(joint_gram(a, ones), a)
    torch.testing.assert_close(joint_gram(a), a)


def test_joint_gram_rejects_grams_of_different_samples():
    with pytest.raises(InputError, match="same samples"):
        joint_gram(torch.eye(3) / 3, torch.eye(4) / 4)
    with pytest.raises(InputError, match="square"):
        joint_gram(torch.ones(3, 4))
    with pytest.raises(InputError, match="at least one"):
        joint_gram()
