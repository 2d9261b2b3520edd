import itertools

import pytest
import torch

from infoclip.errors import TrainingError
from infoclip.mask_classification.matcher import HungarianMatcher, MatchCosts
from infoclip.mask_classification.point_sampling import random_points
from infoclip.mask_classification.targets import MaskTargets


def _batch(seed, queries=5, classes=4, targets=(3, 0, 5)):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(len(targets), queries, classes + 1, generator=gen) * 2
    masks = torch.randn(len(targets), queries, 6, 7, generator=gen) * 3
    tgts = [
        MaskTargets(torch.randint(0, classes, (n,), generator=gen), torch.rand(n, 12, 14, generator=gen) > 0.5)
        for n in targets
    ]
    return logits, masks, tgts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matching_is_optimal_against_brute_force(seed):
    logits, masks, targets = _batch(seed)
    matcher = HungarianMatcher(MatchCosts(num_points=64))
    matches = matcher(logits, masks, targets, torch.Generator().manual_seed(seed))
    replay = torch.Generator().manual_seed(seed)
    for b, (target, (rows, cols)) in enumerate(zip(targets, matches)):
        points = random_points(1, 64, torch.device("cpu"), replay)
        n = len(target)
        assert len(rows) == len(cols) == min(n, logits.shape[1])
        if n == 0:
            continue
        cost = matcher.cost_matrix(logits[b], masks[b], target, points)
        assert rows.tolist() == sorted(rows.tolist())
        assert sorted(cols.tolist()) == list(range(n)) if n <= logits.shape[1] else len(set(cols.tolist())) == len(cols)
        found = cost[rows, cols].sum().item()
        queries = range(logits.shape[1])
        if n <= logits.shape[1]:
            best = min(sum(cost[q, t].item() for t, q in enumerate(perm)) for perm in itertools.permutations(queries, n))
        else:  # more targets than queries: every query gets one target
            best = min(
                sum(cost[q, t].item() for q, t in enumerate(perm)) for perm in itertools.permutations(range(n), len(queries))
            )
        assert found == pytest.approx(best, abs=1e-5)


def test_cost_matrix_by_hand():
    # one query, constant mask logit 0 -> BCE ln 2, dice 1 - (2*0.5*P + 1)/(0.5*P + P + 1) for a full target
    logits = torch.tensor([[0.0, 0.0, 0.0]])  # 2 classes + no object, p = 1/3
    masks = torch.zeros(1, 4, 4)
    target = MaskTargets(torch.tensor([1]), torch.ones(1, 4, 4, dtype=torch.bool))
    points = torch.full((1, 10, 2), 0.5)
    cost = HungarianMatcher(MatchCosts(class_weight=2, mask_weight=5, dice_weight=5, num_points=10)).cost_matrix(
        logits, masks, target, points
    )
    dice = 1 - (2 * 0.5 * 10 + 1) / (0.5 * 10 + 10 + 1)
    expected = 5 * torch.log(torch.tensor(2.0)).item() + 2 * (-1 / 3) + 5 * dice
    assert cost.item() == pytest.approx(expected, rel=1e-6)


def test_matching_is_deterministic_and_draws_per_image():
    logits, masks, targets = _batch(7)
    matcher = HungarianMatcher(MatchCosts(num_points=32))
    gen = torch.Generator().manual_seed(11)
    first = matcher(logits, masks, targets, gen)
    after = torch.rand(1, generator=gen)
    gen2 = torch.Generator().manual_seed(11)
    second = matcher(logits, masks, targets, gen2)
    for (r1, c1), (r2, c2) in zip(first, second):
        assert torch.equal(r1, r2) and torch.equal(c1, c2)
    # three images, one (1, 32, 2) draw each, the empty one included
    replay = torch.Generator().manual_seed(11)
    torch.rand(3, 32, 2, generator=replay)
    assert torch.equal(torch.rand(1, generator=replay), after)


def test_matcher_refuses_bad_input():
    logits, masks, targets = _batch(0)
    matcher = HungarianMatcher(MatchCosts(num_points=8))
    with pytest.raises(ValueError, match="target sets"):
        matcher(logits, masks, targets[:2])
    bad = [MaskTargets(torch.tensor([4]), torch.ones(1, 3, 3, dtype=torch.bool))] * 3
    with pytest.raises(ValueError, match="no-object"):
        matcher(logits, masks, bad)
    logits[0, 0, 0] = float("nan")
    with pytest.raises(TrainingError, match="not finite"):
        matcher(logits, masks, targets)
    with pytest.raises(ValueError, match="positive"):
        MatchCosts(0, 0, 0)


def test_costs_stay_float32_under_autocast():
    logits, masks, targets = _batch(4)
    matcher = HungarianMatcher(MatchCosts(num_points=200))
    points = random_points(1, 200, torch.device("cpu"), torch.Generator().manual_seed(0))
    ref = matcher.cost_matrix(logits[0], masks[0], targets[0], points)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = matcher.cost_matrix(logits[0], masks[0], targets[0], points)
    assert mixed.dtype == torch.float32 and torch.equal(mixed, ref)
