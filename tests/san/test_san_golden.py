"""infoclip's SAN against outputs of the official SAN code (tests/san/golden/README.md says how they were made)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

GOLDEN = Path(__file__).parent / "golden"
VOCAB = ["cat", "dog", "person, individual", "wall-brick", "sky"]
TOLERANCE = 1e-4


def image(seed: int, h: int, w: int) -> torch.Tensor:
    """The deterministic uint8 test image of the golden run: smooth content plus noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, h // 8 + 1, w // 8 + 1, generator=g)
    img = F.interpolate(base[None], size=(h, w), mode="bilinear", align_corners=False)[0] * 200
    img = img + torch.rand(3, h, w, generator=g) * 55
    return img.round().clamp(0, 255).to(torch.uint8)


def official_checkpoint() -> dict[str, torch.Tensor]:
    """The seeded official-layout weights (README: one generator over the sorted official keys)."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in json.loads((GOLDEN / "official_keys.json").read_text()):
        if key == "ov_classifier.attn_mask":
            state[key] = torch.full(shape, float("-inf")).triu_(1)
        elif key == "criterion.empty_weight":
            state[key] = torch.ones(shape)
        elif key.endswith("logit_scale"):
            state[key] = torch.tensor(math.log(10.0))
        else:
            noise = torch.randn(shape, generator=g, dtype=torch.float32)
            if any(p in key for p in ("ln_", "norm", "input_proj.0")) and key.endswith("weight"):
                state[key] = 1.0 + 0.1 * noise
            elif len(shape) >= 2 and key.endswith("weight"):
                state[key] = noise / math.sqrt(math.prod(shape[1:]))
            else:
                state[key] = 0.05 * noise
    return state


@pytest.fixture(scope="module")
def golden_model():
    import open_clip

    from infoclip.adapters.san.convert import convert_official_state
    from infoclip.adapters.san.model import SAN

    if "san-golden-clip" not in open_clip.list_models():
        open_clip.add_model_config(GOLDEN / "san-golden-clip.json")
    config = {"clip": {"name": "san-golden-clip", "pretrained": None},
              "side_adapter": {"width": 48, "num_queries": 10}, "mask_decoder": {"embed_channels": 32, "mlp_channels": 32}}  # fmt: skip
    state, resolved = convert_official_state(official_checkpoint(), source="golden", config=config)
    model = SAN(resolved)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def golden():
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "official_outputs.safetensors"))


def test_model_level_outputs_equal_the_official(golden_model, golden):
    img = image(1, 160, 200)
    with torch.no_grad():
        outputs = golden_model(img[None].float(), VOCAB)
        classifier = golden_model.clip_model.logit_scale.exp() * golden_model.classifier(VOCAB)
    assert (classifier - golden["model.classifier"]).abs().max() < 1e-6
    for name in ("pred_logits", "pred_masks"):
        got, want = outputs[name], golden[f"model.{name}"]
        assert got.shape == want.shape
        assert (got - want).abs().max() < TOLERANCE, name


def test_end_to_end_scores_equal_the_official(golden_model, golden):
    scores = golden_model.predict(image(2, 48, 64).float(), VOCAB)
    want = golden["e2e.sem_seg"]
    assert scores.shape == want.shape == (5, 48, 64)
    assert (scores - want).abs().max() < TOLERANCE
    assert torch.equal(scores.argmax(0), want.argmax(0))


def test_a_wrong_quirk_would_be_caught(golden_model, golden):
    """The comparison is sensitive: replacing the max-pooled bias by average pooling moves the logits."""
    import infoclip.adapters.san.recognition as rec

    original = F.adaptive_max_pool2d
    try:
        rec.F.adaptive_max_pool2d = F.adaptive_avg_pool2d  # type: ignore[attr-defined]
        with torch.no_grad():
            outputs = golden_model(image(1, 160, 200)[None].float(), VOCAB)
    finally:
        rec.F.adaptive_max_pool2d = original  # type: ignore[attr-defined]
    assert (outputs["pred_logits"] - golden["model.pred_logits"]).abs().max() > 10 * TOLERANCE
