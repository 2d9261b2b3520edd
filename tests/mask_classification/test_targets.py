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
