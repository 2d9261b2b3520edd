import math

import pytest
import torch

from infoclip.mask_classification.losses import dice_loss, pairwise_dice, pairwise_sigmoid_bce, sigmoid_bce_loss


def test_bce_by_hand():
    logits = torch.tensor([[0.0, 0.0], [2.0, -1.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    row0 = math.log(2)
    row1 = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    assert sigmoid_bce_loss(logits, targets, 2.0).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)


def test_dice_by_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0]])  # sigmoid 0.5 everywhere
    targets = torch.tensor([[1.0, 1.0, 0.0]])
    # 1 - (2*1.0 + 1) / (1.5 + 2 + 1)
    assert dice_loss(logits, targets, 1.0).item() == pytest.approx(1 - 3.0 / 4.5, rel=1e-6)
    assert dice_loss(logits, targets, 4.0).item() == pytest.approx((1 - 3.0 / 4.5) / 4, rel=1e-6)


def test_pairwise_costs_equal_the_per_pair_losses():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=gen) * 3
    targets = (torch.rand(3, 50, generator=gen) > 0.5).float()
    bce, dice = pairwise_sigmoid_bce(logits, targets), pairwise_dice(logits, targets)
    assert bce.shape == dice.shape == (4, 3)
    for m in range(4):
        for n in range(3):
            assert bce[m, n].item() == pytest.approx(sigmoid_bce_loss(logits[m : m + 1], targets[n : n + 1], 1).item(), rel=1e-5)
            assert dice[m, n].item() == pytest.approx(dice_loss(logits[m : m + 1], targets[n : n + 1], 1).item(), rel=1e-5)


def test_losses_compute_in_float32_and_refuse_other_shapes():
    logits = torch.zeros(2, 5, dtype=torch.float16)
    assert sigmoid_bce_loss(logits, torch.ones(2, 5), 1).dtype == torch.float32
    with pytest.raises(ValueError, match="one to one"):
        dice_loss(torch.zeros(2, 5), torch.zeros(3, 5), 1)
    with pytest.raises(ValueError, match="same points"):
        pairwise_dice(torch.zeros(2, 5), torch.zeros(3, 4))
