import pytest
import torch

from infoclip.mask_classification.semantic_inference import semantic_scores


def test_semantic_scores_equal_the_query_sum():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=gen)
    masks = torch.randn(2, 3, 4, 6, generator=gen)
    scores = semantic_scores(logits, masks)
    assert scores.shape == (2, 4, 4, 6) and scores.dtype == torch.float32
    for b in range(2):
        probs = torch.softmax(logits[b], -1)
        expected = sum(probs[q, :4, None, None] * torch.sigmoid(masks[b, q]) for q in range(3))
        assert torch.allclose(scores[b], expected, atol=1e-6)


def test_semantic_scores_refuse_mismatched_queries():
    with pytest.raises(ValueError, match="same B and Q"):
        semantic_scores(torch.zeros(1, 3, 5), torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="besides no-object"):
        semantic_scores(torch.zeros(1, 3, 1), torch.zeros(1, 3, 2, 2))
