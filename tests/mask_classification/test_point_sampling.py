import pytest
import torch

from infoclip.mask_classification.point_sampling import (
    point_sample,
    random_points,
    uncertain_points_with_randomness,
    uncertainty,
)


def test_point_sample_reads_pixel_centres_in_xy_order():
    values = torch.arange(12.0).view(1, 1, 3, 4)  # value = 4*row + col
    # centre of pixel (row 2, col 1): x = (1 + 0.5) / 4, y = (2 + 0.5) / 3
    points = torch.tensor([[[1.5 / 4, 2.5 / 3], [0.5 / 4, 0.5 / 3]]])
    out = point_sample(values, points)
    assert out.shape == (1, 1, 2)
    assert torch.allclose(out[0, 0], torch.tensor([9.0, 0.0]), atol=1e-5)


def test_point_sample_interpolates_between_centres_and_pads_with_zero():
    values = torch.tensor([[[[2.0, 4.0]]]])  # 1x2
    mid = point_sample(values, torch.tensor([[[0.5, 0.5]]]))
    assert mid.item() == pytest.approx(3.0)
    edge = point_sample(values, torch.tensor([[[0.0, 0.5]]]))  # half a pixel outside the first centre
    assert edge.item() == pytest.approx(1.0)


def test_point_sample_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same N"):
        point_sample(torch.zeros(2, 1, 4, 4), torch.zeros(3, 5, 2))


def test_random_points_follow_the_generator():
    a = random_points(2, 7, torch.device("cpu"), torch.Generator().manual_seed(3))
    b = random_points(2, 7, torch.device("cpu"), torch.Generator().manual_seed(3))
    c = random_points(2, 7, torch.device("cpu"), torch.Generator().manual_seed(4))
    assert a.shape == (2, 7, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) < 1


def test_random_points_with_a_generator_leave_the_global_stream_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    random_points(4, 9, torch.device("cpu"), torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(3), expected)


def test_uncertain_points_prefer_the_boundary():
    # logit 0 (most uncertain) in the left half, -20 in the right half
    logits = torch.full((1, 1, 8, 8), -20.0)
    logits[..., :4] = 0.0
    gen = torch.Generator().manual_seed(0)
    points = uncertain_points_with_randomness(logits, 100, 3.0, 1.0, gen)
    assert points.shape == (1, 100, 2)
    # bilinear reads near x = 0.5 mix both halves; every chosen point is at least in the uncertain half
    assert float(points[0, :, 0].max()) < 0.5 + 1 / 16


def test_uncertain_points_split_and_determinism():
    logits = torch.randn(3, 1, 5, 6, generator=torch.Generator().manual_seed(0))
    p1 = uncertain_points_with_randomness(logits, 40, 3.0, 0.75, torch.Generator().manual_seed(5))
    p2 = uncertain_points_with_randomness(logits, 40, 3.0, 0.75, torch.Generator().manual_seed(5))
    assert torch.equal(p1, p2)
    # the first 30 are candidates: re-derive them from the same stream
    gen = torch.Generator().manual_seed(5)
    candidates = torch.rand(3, 120, 2, generator=gen)
    rest = torch.rand(3, 10, 2, generator=gen)
    scores = uncertainty(point_sample(logits, candidates))[:, 0]
    top = scores.topk(30, dim=1).indices
    for i in range(3):
        assert torch.equal(p1[i, :30], candidates[i, top[i]])
    assert torch.equal(p1[:, 30:], rest)


def test_uncertain_points_check_arguments():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        uncertain_points_with_randomness(torch.zeros(2, 3, 4, 4), 10, 3.0, 0.75)
    with pytest.raises(ValueError, match="oversample_ratio"):
        uncertain_points_with_randomness(torch.zeros(2, 1, 4, 4), 10, 0.5, 0.75)


def test_point_generator_is_a_function_of_seed_iteration_and_rank():
    from infoclip.mask_classification.point_sampling import point_generator

    def draw(*args):
        return torch.rand(5, generator=point_generator(*args))

    assert torch.equal(draw(1, 10), draw(1, 10))
    assert not torch.equal(draw(1, 10), draw(1, 11))
    assert not torch.equal(draw(1, 10), draw(2, 10))
    assert not torch.equal(draw(1, 10, 0), draw(1, 10, 1))
