import pytest
import torch

from infoclip.mask_classification.targets import MaskTargets, batch_semantic_targets, semantic_targets


def test_one_mask_per_present_class_ascending_ignore_in_none():
    label = torch.tensor([[3, 3, -1], [0, 3, -1]])
    t = semantic_targets(label, num_classes=5)
    assert t.labels.tolist() == [0, 3] and t.labels.dtype == torch.int64
    assert t.masks.dtype == torch.bool and t.masks.shape == (2, 2, 3)
    assert t.masks[0].tolist() == [[False, False, False], [True, False, False]]
    assert t.masks[1].tolist() == [[True, True, False], [False, True, False]]
    assert not t.masks[:, :, 2].any()  # ignored column is negative everywhere


def test_all_ignored_image_has_no_target():
    t = semantic_targets(torch.full((4, 5), -1))
    assert len(t) == 0 and t.masks.shape == (0, 4, 5)


def test_batch_and_bad_input():
    targets = batch_semantic_targets(torch.tensor([[[1, 1]], [[-1, 0]]]))
    assert [t.labels.tolist() for t in targets] == [[1], [0]]
    with pytest.raises(ValueError, match=r"\[-1, 2\]"):
        semantic_targets(torch.tensor([[0, 3]]), num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        semantic_targets(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="one mask per label"):
        MaskTargets(torch.tensor([0, 1]), torch.zeros(1, 2, 2, dtype=torch.bool))


def test_panoptic_targets_skip_crowd_keep_order_and_instances():
    from infoclip.data.panoptic import PanopticSegment
    from infoclip.mask_classification.targets import panoptic_targets

    ids = torch.tensor([[0, 5, 5], [9, 9, 7], [3, 3, 7]])
    segments = [
        PanopticSegment(9, 12, False, True),
        PanopticSegment(5, 12, False, True),  # a second instance of the same class
        PanopticSegment(7, 100, True, False),  # crowd: no target
        PanopticSegment(3, 90, False, False),
        PanopticSegment(4, 91, False, False),  # listed but cropped away: empty mask (official), or dropped
    ]
    t = panoptic_targets(ids, segments)
    assert t.labels.tolist() == [12, 12, 90, 91]
    assert t.masks[0].tolist() == [[False] * 3, [True, True, False], [False] * 3]
    assert t.masks[1].tolist() == [[False, True, True], [False] * 3, [False] * 3]
    assert not t.masks[3].any()
    covered = t.masks.any(0)
    assert not covered[ids == 7].any() and not covered[ids == 0].any()
    dropped = panoptic_targets(ids, segments, drop_empty=True)
    assert dropped.labels.tolist() == [12, 12, 90]
    with pytest.raises(ValueError, match="segment-id map"):
        panoptic_targets(ids.float(), segments)
