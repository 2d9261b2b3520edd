import math

import pytest
import torch
import torch.nn.functional as F

from infoclip.errors import ConfigError
from infoclip.mask_classification.criterion import SetCriterion, SetCriterionConfig
from infoclip.mask_classification.point_sampling import point_sample
from infoclip.mask_classification.targets import MaskTargets

SMALL = dict(num_points=50, oversample_ratio=3.0, importance_sample_ratio=0.75)


def _outputs(seed, batch=2, queries=4, classes=3, size=(5, 5), aux=2, grad=False):
    gen = torch.Generator().manual_seed(seed)

    def head():
        logits = torch.randn(batch, queries, classes + 1, generator=gen).requires_grad_(grad)
        masks = torch.randn(batch, queries, *size, generator=gen).requires_grad_(grad)
        return {"pred_logits": logits, "pred_masks": masks}

    out = head()
    out["aux_outputs"] = [head() for _ in range(aux)]
    return out


def _targets(seed, counts=(2, 1), classes=3, size=(10, 10)):
    gen = torch.Generator().manual_seed(seed + 100)
    return [
        MaskTargets(torch.randperm(classes, generator=gen)[:n], torch.rand(n, *size, generator=gen) > 0.5) for n in counts
    ]


def test_loss_values_by_hand_with_constant_masks():
    # constant mask logits make every point read the same value, whatever the sampled points
    crit = SetCriterion(SetCriterionConfig(num_classes=2, deep_supervision=False, **SMALL))
    logits = torch.tensor([[[3.0, 0.0, 0.0], [0.0, 0.0, 3.0]]])  # query 0 says class 0, query 1 no-object
    masks = torch.stack([torch.full((4, 4), 2.0), torch.full((4, 4), -2.0)])[None]
    target = MaskTargets(torch.tensor([0]), torch.ones(1, 8, 8, dtype=torch.bool))
    out = crit({"pred_logits": logits, "pred_masks": masks}, [target], torch.Generator().manual_seed(0))
    assert [t.tolist() for t in out.matches[0][0]] == [[0], [0]]
    # CE: query 0 -> class 0 (weight 1), query 1 -> no-object (weight 0.1); weighted mean
    lse = math.log(math.exp(3) + 2)
    ce = (1.0 * (lse - 3) + 0.1 * (lse - 3)) / 1.1
    assert out.terms["loss_ce"].item() == pytest.approx(ce, rel=1e-6)
    assert set(out.terms) == {"loss_ce", "loss_mask", "loss_dice"}
    assert out.num_masks == 1.0
    assert out.total.item() == pytest.approx(sum(out.weighted.values()).item())
    assert out.weighted["loss_mask"].item() == pytest.approx(5 * out.terms["loss_mask"].item())


def test_mask_losses_by_hand_on_replayed_points():
    crit = SetCriterion(SetCriterionConfig(num_classes=1, deep_supervision=False, **SMALL))
    logits = torch.tensor([[[5.0, 0.0], [0.0, 5.0]]])
    masks = torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(1)) * 2
    target_mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    target_mask[:, 3:12, 2:9] = True
    target = MaskTargets(torch.tensor([0]), target_mask)
    out = crit({"pred_logits": logits, "pred_masks": masks}, [target], torch.Generator().manual_seed(3))
    (rows, cols), = out.matches[0]
    assert rows.tolist() == [0] and cols.tolist() == [0]
    # the documented draw order: matching points (1, 50, 2), candidates (1, 150, 2), the uniform rest (1, 13, 2)
    replay = torch.Generator().manual_seed(3)
    torch.rand(1, 50, 2, generator=replay)
    candidates = torch.rand(1, 150, 2, generator=replay)
    rest = torch.rand(1, 13, 2, generator=replay)
    chosen = masks[:, :1]
    read = point_sample(chosen, candidates)[0, 0]
    points = torch.cat([candidates[:, (-read.abs()).topk(37).indices], rest], 1)
    x = point_sample(chosen, points)[0, 0]
    t = point_sample(target_mask[None].float(), points)[0, 0]
    bce = sum(-(ti * math.log(torch.sigmoid(xi)) + (1 - ti) * math.log(1 - torch.sigmoid(xi))) for xi, ti in zip(x, t)) / 50
    p = torch.sigmoid(x)
    dice = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    assert out.terms["loss_mask"].item() == pytest.approx(float(bce), rel=1e-5)
    assert out.terms["loss_dice"].item() == pytest.approx(float(dice), rel=1e-5)


def test_deep_supervision_keys_matches_and_gradients():
    crit = SetCriterion(SetCriterionConfig(num_classes=3, **SMALL))
    outputs = _outputs(0, grad=True)
    result = crit(outputs, _targets(0), torch.Generator().manual_seed(0))
    assert set(result.terms) == {f"{k}{s}" for k in ("loss_ce", "loss_mask", "loss_dice") for s in ("", "_0", "_1")}
    assert len(result.matches) == 3 and all(len(m) == 2 for m in result.matches)
    assert result.num_masks == 3.0
    assert all(v.dtype == torch.float32 and v.dim() == 0 for v in result.terms.values())
    result.total.backward()
    for head in [outputs, *outputs["aux_outputs"]]:
        assert head["pred_logits"].grad.abs().sum() > 0 and head["pred_masks"].grad.abs().sum() > 0
    off = SetCriterion(SetCriterionConfig(num_classes=3, deep_supervision=False, **SMALL))
    assert set(off(_outputs(0), _targets(0)).terms) == {"loss_ce", "loss_mask", "loss_dice"}


def test_same_generator_seed_same_loss_and_official_draw_order_on_the_global_stream():
    crit = SetCriterion(SetCriterionConfig(num_classes=3, **SMALL))
    a = crit(_outputs(1), _targets(1), torch.Generator().manual_seed(9))
    b = crit(_outputs(1), _targets(1), torch.Generator().manual_seed(9))
    c = crit(_outputs(1), _targets(1), torch.Generator().manual_seed(10))
    assert all(torch.equal(a.terms[k], b.terms[k]) for k in a.terms)
    assert any(not torch.equal(a.terms[k], c.terms[k]) for k in a.terms if "mask" in k)
    torch.manual_seed(9)
    g = crit(_outputs(1), _targets(1))
    torch.manual_seed(9)
    g2 = crit(_outputs(1), _targets(1))
    assert all(torch.equal(g.terms[k], g2.terms[k]) for k in g.terms)


def test_images_without_targets():
    crit = SetCriterion(SetCriterionConfig(num_classes=3, **SMALL))
    outputs = _outputs(2, grad=True)
    none = _targets(2, counts=(0, 0))
    result = crit(outputs, none, torch.Generator().manual_seed(0))
    assert result.num_masks == 1.0
    assert result.terms["loss_mask"].item() == 0 and result.terms["loss_dice"].item() == 0
    # every query is no-object: the CE is the plain mean of -log p(no-object) (all weights 0.1)
    expected = F.cross_entropy(outputs["pred_logits"].detach().transpose(1, 2), torch.full((2, 4), 3))
    assert result.terms["loss_ce"].item() == pytest.approx(expected.item(), rel=1e-6)
    result.total.backward()
    assert outputs["pred_masks"].grad is not None
    mixed = crit(_outputs(2), _targets(2, counts=(0, 2)), torch.Generator().manual_seed(0))
    assert mixed.num_masks == 2.0 and mixed.terms["loss_mask"].item() > 0
    assert [len(r) for r, _ in mixed.matches[0]] == [0, 2]


def test_targets_of_different_sizes_are_padded_like_the_official_criterion():
    crit = SetCriterion(SetCriterionConfig(num_classes=3, deep_supervision=False, **SMALL))
    targets = [
        MaskTargets(torch.tensor([0]), torch.ones(1, 8, 10, dtype=torch.bool)),
        MaskTargets(torch.tensor([1]), torch.ones(1, 6, 10, dtype=torch.bool)),
    ]
    result = crit(_outputs(3, aux=0), targets, torch.Generator().manual_seed(0))
    assert torch.isfinite(result.total)


def test_config_checks():
    cfg = SetCriterionConfig.from_mapping({"class_weight": 1.0, "num_points": 100}, num_classes=5)
    assert cfg.num_classes == 5 and cfg.match_costs().class_weight == 1.0 and cfg.match_costs().num_points == 100
    assert SetCriterionConfig(num_classes=2, match_dice_weight=0.5).match_costs().dice_weight == 0.5
    with pytest.raises(ConfigError, match="unknown set criterion"):
        SetCriterionConfig.from_mapping({"clas_weight": 1.0}, num_classes=5)
    with pytest.raises(ConfigError, match="num_classes"):
        SetCriterionConfig.from_mapping({})
    crit = SetCriterion(SetCriterionConfig(num_classes=3))
    assert crit.empty_weight.tolist() == pytest.approx([1, 1, 1, 0.1])
    assert "empty_weight" in crit.state_dict()
    with pytest.raises(ValueError, match="num_classes \\+ 1"):
        crit(_outputs(0, classes=4), _targets(0))


def test_autocast_does_not_change_matching_or_losses():
    # the matcher's pairwise products would run in bfloat16 under autocast; the official matcher turns it off
    crit = SetCriterion(SetCriterionConfig(num_classes=3, **SMALL))
    ref = crit(_outputs(5), _targets(5), torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = crit(_outputs(5), _targets(5), torch.Generator().manual_seed(2))
    assert all(mixed.terms[k].dtype == torch.float32 for k in mixed.terms)
    assert {k: v.item() for k, v in mixed.terms.items()} == {k: v.item() for k, v in ref.terms.items()}
