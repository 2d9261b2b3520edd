"""The SAN model on the tiny preset: shapes, the recognition mask, the dense tap, fine-tuning modes, scores."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from infoclip.errors import ConfigError, InputError
from tests.san.conftest import CLASSES


def test_adapter_registered_with_presets():
    from infoclip.adapters import get_adapter

    adapter = get_adapter("san")
    assert {"san-vit-b16", "san-vit-l14-336", "san-tiny"} <= set(adapter.configs)
    assert "official" in adapter.importers


def test_released_presets_have_the_official_parameter_counts():
    """Whole-model and trainable counts of the official models (san-reference.md §1.1, measured there)."""
    from infoclip.adapters.san import build_model, preset_model_config

    expected = {"san-vit-b16": (157_840_307, 8_370_866), "san-vit-l14-336": (436_674_995, 9_321_650)}
    for preset, (total, trainable) in expected.items():
        with torch.device("meta"):
            model = build_model(preset_model_config(preset))
        assert sum(p.numel() for p in model.parameters()) == total, preset
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == trainable, preset


def test_outputs_train_and_eval(tiny_model, images):
    outputs = tiny_model(images, CLASSES)  # eval: the last side block only; 96 x 120 pads to 96 x 128
    assert outputs["pred_logits"].shape == (2, 10, len(CLASSES) + 1)
    assert outputs["pred_masks"].shape == (2, 10, 6, 8)
    assert outputs["aux_outputs"] == []
    tiny_model.train()
    outputs = tiny_model(images, CLASSES)
    assert len(outputs["aux_outputs"]) == 1
    assert outputs["aux_outputs"][0]["pred_logits"].shape == (2, 10, len(CLASSES) + 1)


def test_clip_view_uses_scale_factor(tiny_config):
    from infoclip.adapters.san.model import san_clip_input

    config = {**tiny_config, "clip": {**tiny_config["clip"], "resolution_scale": 0.7}}
    images = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 255
    padded, view = san_clip_input(images, config)
    assert padded.shape[-2:] == (64, 96)
    expected = F.interpolate(padded, scale_factor=0.7, mode="bilinear", align_corners=False)
    assert torch.equal(view, expected)
    assert not torch.allclose(view, F.interpolate(padded, size=view.shape[-2:], mode="bilinear", align_corners=False))


def test_padding_is_zero_after_normalisation(tiny_config):
    from infoclip.adapters.san.model import san_clip_input

    padded, _ = san_clip_input(torch.full((1, 3, 40, 50), 255.0), tiny_config)
    assert padded.shape[-2:] == (64, 64)
    assert torch.all(padded[..., 40:, :] == 0) and torch.all(padded[..., :, 50:] == 0)
    assert torch.all(padded[..., :40, :50] > 1)


def test_recognition_mask_structure():
    from infoclip.adapters.san.recognition import recognition_mask

    bias = torch.randn(2, 3, 4, 8, 8)
    mask = recognition_mask(bias, (4, 4))
    q, length = 4, 16
    assert mask.shape == (2, 3, q + 1 + length, q + 1 + length)
    pooled = F.max_pool2d(bias.reshape(2, 12, 8, 8), 2).reshape(2, 3, q, length)
    assert torch.equal(mask[:, :, :q, q + 1 :], pooled)
    sos_block = mask[0, 0, :q, :q]
    assert torch.equal(torch.diagonal(sos_block), torch.zeros(q))
    assert torch.all(sos_block[~torch.eye(q, dtype=torch.bool)] == -100)
    assert torch.all(mask[:, :, :q, q] == -100)  # SOS never reads CLS
    assert torch.all(mask[:, :, q:, :q] == -100) and torch.all(mask[:, :, q:, q:] == 0)


def test_dense_tap_is_clip_dense_readout_and_teacher_matches_at_init(tiny_config, images):
    """Tokens entering the last recognition block are plain CLIP tokens (SOS blocked at -100), so the tap
    equals the dense forward of CLIP alone; the teacher of a pretrained: null CLIP is the same init."""
    from infoclip.adapters.san import build_model, build_teacher
    from infoclip.adapters.san.model import san_clip_input
    from infoclip.clip import encode_image_dense

    model = build_model(tiny_config).train()
    out = model.forward_train(images, CLASSES)
    _, view = san_clip_input(images, tiny_config)
    dense, _ = encode_image_dense(model.clip_model, view)
    emb = out.embeddings
    assert emb.grid == (3, 4) and emb.image.shape == (2, 12, model.embed_dim)
    assert torch.allclose(emb.image, dense[:, 1:], atol=1e-5)
    assert emb.text.shape == (len(CLASSES), model.embed_dim)
    assert torch.allclose(emb.text, model.classifier(CLASSES)[:-1], atol=1e-6)  # background row left out
    teacher = build_teacher(tiny_config, model)
    t = teacher(images, CLASSES)
    assert t.grid == emb.grid and torch.allclose(t.image, emb.image.detach(), atol=1e-5)
    assert torch.allclose(t.text, emb.text, atol=1e-6)
    assert not any(p.requires_grad for p in teacher.parameters())
    emb.image.sum().backward()
    assert model.clip_model.visual.positional_embedding.grad is not None


@pytest.mark.parametrize("mode", ["san", "qv_rec", "qv_all"])
def test_finetune_modes(tiny_config, mode):
    from infoclip.adapters.san import build_model

    config = {**tiny_config, "clip": {**tiny_config["clip"], "finetune": mode}}
    model = build_model(config)
    trained = {n for n, p in model.clip_model.named_parameters() if p.requires_grad}
    qv = {f"visual.transformer.resblocks.{i}.attn.{w}_proj_weight" for i in range(4) for w in ("q", "v")}
    expected = {"visual.positional_embedding"}
    if mode == "qv_rec":
        expected |= {n for n in qv if ".resblocks.3." in n}
    elif mode == "qv_all":
        expected |= qv
    assert trained == expected
    assert not any("k_proj" in n or n.startswith("transformer.") for n in trained)
    assert model.bg_embed.requires_grad and all(p.requires_grad for p in model.side_adapter_network.parameters())
    assert f"CLIP fine-tuning: {mode}" in model.parameter_table()


def test_semantic_scores_formula_and_predict(tiny_model):
    image = torch.rand(3, 40, 70, generator=torch.Generator().manual_seed(2)) * 255
    scores = tiny_model.semantic_scores(image, CLASSES, (50, 80))
    out = tiny_model(image[None], CLASSES)
    masks = F.interpolate(out["pred_masks"], size=(64, 96), mode="bilinear", align_corners=False)[..., :40, :70]
    masks = F.interpolate(masks, size=(50, 80), mode="bilinear", align_corners=False)[0].sigmoid()
    expected = torch.einsum("qc,qhw->chw", out["pred_logits"][0].softmax(-1)[:, :-1], masks)
    assert scores.shape == (len(CLASSES), 50, 80) and torch.allclose(scores, expected, atol=1e-6)

    original = torch.rand(3, 30, 45, generator=torch.Generator().manual_seed(3)) * 255
    probs = tiny_model.predict(original, CLASSES)
    assert probs.shape == (len(CLASSES), 30, 45) and probs.dtype == torch.float32
    assert float(probs.min()) >= 0 and float(probs.sum(0).max()) <= 10  # one sigmoid per query: at most Q
    from infoclip import Segmenter

    with pytest.raises(InputError, match="whole"):  # the entry point checks the protocol; predict trusts it
        Segmenter(tiny_model, "san-tiny").predict(original.permute(1, 2, 0).byte().numpy(), CLASSES, protocol="sliding")


def test_text_uses_raw_names_and_template_mean(tiny_model):
    from infoclip.adapters.san.classifier import san_prompts
    from infoclip.clip import encode_text

    assert san_prompts(["sofa, couch"], ["a {}.", "the {}"]) == ["a sofa, couch.", "the sofa, couch"]
    text = tiny_model.text_embeddings(["sofa, couch"])
    tokens = tiny_model.text_encoder.tokenizer(san_prompts(["sofa, couch"], tiny_model.config["prompt_templates"]))
    with torch.no_grad():
        each = F.normalize(encode_text(tiny_model.clip_model, tokens), dim=-1)
    assert torch.allclose(text[0], F.normalize(each.mean(0), dim=-1), atol=1e-6)
    weights = tiny_model.classifier(["cat", "dog"])
    assert weights.shape == (3, tiny_model.embed_dim)
    assert torch.allclose(weights[-1], F.normalize(tiny_model.bg_embed[0], dim=-1))


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"side_adapter": {"widht": 8}}, "model.side_adapter.widht"),
        ({"clip": {"finetune": "full"}}, "model.clip.finetune"),
        ({"side_adapter": {"fusion_map": [[0, 12]]}}, "uses CLIP feature 12"),
        ({"side_adapter": {"deep_supervision": [3]}}, "must end with the last side block"),
    ],
)
def test_config_errors_name_the_key(tiny_config, override, fragment):
    from infoclip.adapters.san import resolve_model_config

    with pytest.raises(ConfigError, match=fragment):
        resolve_model_config({**{k: v for k, v in tiny_config.items()}, **{k: {**tiny_config[k], **v} for k, v in override.items()}})


def test_param_groups_follow_sans_optimizer(tiny_config):
    """train_net.py build_optimizer: no decay on position tables / query embeddings and nn.LayerNorm; SAN's
    LayerNorm2d, biases and the background row decay; the CLIP multiplier reaches only CLIP's Q/V weights."""
    from infoclip.adapters.parameters import WeightDecayPolicy
    from infoclip.adapters.san import build_model

    model = build_model({**tiny_config, "clip": {**tiny_config["clip"], "finetune": "qv_all"}})
    groups = model.param_groups(1e-4, WeightDecayPolicy(1e-4), {"clip": 0.01})
    names = {id(p): n for n, p in model.named_parameters()}
    where = {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert len(where) == sum(p.requires_grad for p in model.parameters())
    assert where["clip_model.visual.positional_embedding"] == (1e-4, 0.0)
    assert where["clip_model.visual.transformer.resblocks.0.attn.q_proj_weight"] == (pytest.approx(1e-6), 1e-4)
    for name in ("vit_model.pos_embed", "query_embed", "query_pos_embed", "vit_model.blocks.0.norm1.weight"):
        assert where[f"side_adapter_network.{name}"] == (1e-4, 0.0), name
    for name in ("fusion_layers.layer_0.input_proj.0.weight", "vit_model.blocks.0.attn.qkv.bias", "mask_decoder.bias_scaling.weight"):
        assert where[f"side_adapter_network.{name}"] == (1e-4, 1e-4), name
    assert where["bg_embed"] == (1e-4, 1e-4)
