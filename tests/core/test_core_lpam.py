"""LPAM: parameter count, the score formula, text sharing, residual options, input checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from infoclip.core import LPAM
from infoclip.errors import ConfigError, InputError


@pytest.mark.parametrize(("dim", "count"), [(512, 527_360), (768, 1_184_256)])
def test_parameter_count_matches_the_paper(dim, count):
    assert sum(p.numel() for p in LPAM(dim).parameters()) == count


def _randomised(lpam: LPAM) -> LPAM:
    # Non-trivial LayerNorm affine parameters, so that the test sees them used in the right places.
    with torch.no_grad():
        for parameter in lpam.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    return lpam


@pytest.mark.parametrize("residual", ["ln_dot", "cosine"])
def test_scores_follow_the_formula(residual):
    dim = 8
    lpam = _randomised(LPAM(dim, residual=residual)).double()
    image, text = torch.randn(2, 6, dim, dtype=torch.float64), torch.randn(3, dim, dtype=torch.float64)
    image_ln = F.layer_norm(image, (dim,), lpam.ln_image.weight, lpam.ln_image.bias)
    text_ln = F.layer_norm(text, (dim,), lpam.ln_text.weight, lpam.ln_text.bias)
    projected_image = image_ln @ lpam.proj_image.weight.T + lpam.proj_image.bias
    projected_text = text_ln @ lpam.proj_text.weight.T + lpam.proj_text.bias
    expected = projected_image @ projected_text.T / math.sqrt(dim)
    if residual == "ln_dot":
        expected = expected + image_ln @ text_ln.T
    else:
        expected = expected + F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    result = lpam(image, text)
    assert result.shape == (2, 6, 3)
    torch.testing.assert_close(result, expected)


def test_shared_text_equals_the_same_text_given_per_image():
    lpam = _randomised(LPAM(16))
    image, text = torch.randn(3, 5, 16), torch.randn(4, 16)
    torch.testing.assert_close(lpam(image, text), lpam(image, text.expand(3, 4, 16)))


def test_per_image_text_is_used_per_image():
    lpam = LPAM(16)
    image, text = torch.randn(2, 5, 16), torch.randn(2, 4, 16)
    result = lpam(image, text)
    torch.testing.assert_close(result[1], lpam(image[1:], text[1])[0])


def test_every_parameter_gets_gradient():
    lpam = LPAM(8)
    lpam(torch.randn(2, 4, 8), torch.randn(3, 8)).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lpam.parameters())


@pytest.mark.parametrize(
    ("image", "text", "message"),
    [
        (torch.randn(4, 8), torch.randn(3, 8), r"D_V must have shape \(B, H\*W, dim\)"),
        (torch.randn(2, 4, 8), torch.randn(3, 8, 1, 1), r"D_L must have shape"),
        (torch.randn(2, 4, 7), torch.randn(3, 7), "width 8"),
        (torch.randn(2, 4, 8), torch.randn(3, 8, dtype=torch.float64).long(), "floating-point"),
        (torch.randn(2, 4, 8), torch.randn(3, 5, 8), "batch size"),
        (torch.randn(2, 0, 8), torch.randn(3, 8), "must not be empty"),
    ],
)
def test_forward_rejects_wrong_shapes(image, text, message):
    with pytest.raises(InputError, match=message):
        LPAM(8)(image, text)


@pytest.mark.parametrize(("kwargs", "message"), [({"dim": 0}, "dim"), ({"dim": 8.0}, "dim"), ({"dim": 8, "residual": "dot"}, "residual")])
def test_constructor_rejects_bad_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LPAM(**kwargs)
