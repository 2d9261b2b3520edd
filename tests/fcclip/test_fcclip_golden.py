"""infoclip's FC-CLIP equals the official code (bytedance/fc-clip @ 2b0bbe2) on the committed goldens.

Weights: the seeded official-format checkpoint (``conftest.seeded_state``), converted by infoclip's importer.
Input: the golden image through the whole protocol (ResizeShortestEdge to a 64 short side, pad 32, ensemble,
semantic inference in both upsampling orders, back to the original 45 x 60).
"""

from __future__ import annotations

import json

import pytest
import torch

from infoclip.adapters.fcclip.convert import import_official_checkpoint
from infoclip.adapters.fcclip.model import FCCLIP
from infoclip.adapters.fcclip.vocabularies import seen_classes
from infoclip.config import deep_merge

from .conftest import golden_class_names, official_shapes

TOL = 1e-4


@pytest.fixture(scope="module")
def converted(tmp_path_factory, official_tiny_state):
    path = tmp_path_factory.mktemp("golden") / "fcclip_cocopan.pth"
    torch.save({"model": official_tiny_state}, path)
    return import_official_checkpoint(path)


@pytest.fixture(scope="module")
def golden_model(converted, golden):
    _, meta = golden
    state, config = converted
    model = FCCLIP(deep_merge(config, {"inference": {"test_short_side": int(meta["short_side"])}}))
    model.load_state_dict(state, strict=True)
    return model.eval()


def test_seeded_layout_is_the_official_one(golden):
    _, meta = golden
    assert sorted(official_shapes("fcclip-tiny")) == json.loads(meta["official_keys"])


@pytest.mark.parametrize("order", ["after", "before"])
def test_end_to_end_scores_equal_the_official_code(golden_model, golden, order):
    tensors, meta = golden
    golden_model.config["inference"]["postprocess_before_inference"] = order == "before"
    image = tensors["image"].permute(2, 0, 1).float()
    scores = golden_model.predict(image, golden_class_names(meta))
    expected = tensors[f"sem_seg_{order}"]
    assert scores.shape == expected.shape == (6, 45, 60)
    assert (scores - expected).abs().max() < TOL
    assert torch.equal(scores.argmax(0), expected.argmax(0))


def test_full_context_text_makes_the_scores_equal_to_float_rounding(converted, golden):
    tensors, meta = golden
    state, config = converted
    overrides = {"inference": {"test_short_side": int(meta["short_side"]), "text_truncate": False}}
    model = FCCLIP(deep_merge(config, overrides))
    model.load_state_dict(state, strict=True)
    scores = model.predict(tensors["image"].permute(2, 0, 1).float(), golden_class_names(meta))
    assert (scores - tensors["sem_seg_after"]).abs().max() < 1e-5  # 0.0 on the machine that made the goldens


def test_the_two_upsampling_orders_differ(golden):
    tensors, _ = golden
    assert (tensors["sem_seg_after"] - tensors["sem_seg_before"]).abs().max() > 1e-2


def test_model_level_tensors_equal_the_official_code(golden_model, golden):
    from infoclip.adapters.catseg.model import resize_shortest_edge

    tensors, meta = golden
    names = golden_class_names(meta)
    image = resize_shortest_edge(tensors["image"].permute(2, 0, 1).float(), int(meta["short_side"]), 1333)
    with torch.no_grad():
        out = golden_model.run(golden_model.preprocess(image[None]), names)
        ov = golden_model.out_of_vocabulary_logits(out)
    pairs = {
        "text": (out.text, tensors["text"]),
        "res5": (out.features["res5"][0], tensors["res5"]),
        "mask_features": (out.mask_features[0], tensors["mask_features"]),
        "head0_logits": (out.heads[0].logits[0], tensors["head0_logits"]),
        "head0_masks": (out.heads[0].masks[0], tensors["head0_masks"]),
        "pred_logits": (out.heads[-1].logits[0], tensors["pred_logits"]),
        "pred_masks": (out.heads[-1].masks[0], tensors["pred_masks"]),
        "ov_logits": (ov[0], tensors["ov_logits"]),
    }
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        assert (ours - theirs).abs().max() < TOL, name
    assert seen_classes(names, golden_model.train_class_names) == tensors["seen"].bool().tolist()
