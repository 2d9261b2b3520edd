"""FC-CLIP modules: deformable-attention sampling rule, ensemble, config, training paths, teacher, adapter."""

from __future__ import annotations

import math

import pytest
import torch

from infoclip.adapters.fcclip.decoder import mask_pool, synonym_max_logits
from infoclip.adapters.fcclip.pixel_decoder import deformable_attention_core, sine_position_embedding
from infoclip.errors import ConfigError, InputError

NAMES = ["person,child", "wall", "zebra crossing,crosswalk", "unicorn"]


def _scalar_sample(value: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """The CUDA kernel's rule (ms_deform_im2col_cuda.cuh): h = y*H - 0.5, w = x*W - 0.5, zero outside corners."""
    d, h_, w_ = value.shape
    h, w = y * h_ - 0.5, x * w_ - 0.5
    out = torch.zeros(d, dtype=value.dtype)
    if not (-1 < h < h_ and -1 < w < w_):
        return out
    h0, w0 = math.floor(h), math.floor(w)
    for hh, ww in ((h0, w0), (h0, w0 + 1), (h0 + 1, w0), (h0 + 1, w0 + 1)):
        if 0 <= hh < h_ and 0 <= ww < w_:
            out += (1 - abs(h - hh)) * (1 - abs(w - ww)) * value[:, hh, ww]
    return out


def test_deformable_sampling_follows_the_cuda_rule_at_the_edges():
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5, 2)]
    n, m, d, lq, p = 1, 2, 3, 5, 4
    value = torch.randn(n, sum(h * w for h, w in shapes), m, d, generator=g, dtype=torch.float64)
    # points inside, on the border, just outside (still partly sampled) and far outside (zero)
    loc = torch.rand(n, lq, m, len(shapes), p, 2, generator=g, dtype=torch.float64) * 1.6 - 0.3
    loc[0, 0, 0, 0, 0] = torch.tensor([0.0, 0.0], dtype=torch.float64)
    loc[0, 0, 0, 0, 1] = torch.tensor([1.1, -0.2], dtype=torch.float64)
    weights = torch.rand(n, lq, m, len(shapes), p, generator=g, dtype=torch.float64)
    out = deformable_attention_core(value, shapes, loc, weights)
    assert out.shape == (n, lq, m * d)
    start = [0, shapes[0][0] * shapes[0][1]]
    for q in range(lq):
        for head in range(m):
            expected = torch.zeros(d, dtype=torch.float64)
            for lvl, (h, w) in enumerate(shapes):
                v = value[0, start[lvl] : start[lvl] + h * w, head].T.reshape(d, h, w)
                for pt in range(p):
                    x, y = loc[0, q, head, lvl, pt].tolist()
                    expected += weights[0, q, head, lvl, pt] * _scalar_sample(v, x, y)
            assert torch.allclose(out[0, q, head * d : (head + 1) * d], expected, atol=1e-12)


def test_sine_position_embedding_interleaves_sin_and_cos():
    pos = sine_position_embedding(torch.zeros(2, 5, 3, 4), 8)
    assert pos.shape == (2, 16, 3, 4)
    y = 2 / (3 + 1e-6) * 2 * math.pi  # row 1 (second row), channel 0 = sin(y / 1), channel 1 = cos(y / 1e4^(0/8))
    assert pos[0, 0, 1, 0].item() == pytest.approx(math.sin(y), abs=1e-6)
    assert pos[0, 1, 1, 0].item() == pytest.approx(math.cos(y), abs=1e-6)
    x = 4 / (4 + 1e-6) * 2 * math.pi
    assert pos[1, 8, 0, 3].item() == pytest.approx(math.sin(x), abs=1e-6)


def test_synonym_max_and_void_column():
    text = torch.nn.functional.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    x = torch.randn(1, 2, 8)
    logits = synonym_max_logits(x, text, torch.tensor(math.log(1000.0)), [2, 1, 2])
    full = 100 * torch.nn.functional.normalize(x, dim=-1) @ text.T  # scale clamped at 100
    assert torch.allclose(logits[..., 0], full[..., :2].max(-1).values)
    assert torch.allclose(logits[..., 2], full[..., 3:5].max(-1).values)
    assert torch.allclose(logits[..., 3], full[..., 5])


def test_mask_pooling_is_a_binary_mean_and_empty_masks_give_zero():
    x = torch.arange(8.0).view(1, 2, 2, 2)
    masks = torch.tensor([[[[1.0, -1.0], [-1.0, 2.0]], [[-1.0, -1.0], [-1.0, -1.0]]]])
    pooled = mask_pool(x, masks)
    assert torch.allclose(pooled[0, 0], torch.tensor([1.5, 5.5]))
    assert torch.equal(pooled[0, 1], torch.zeros(2))


def test_config_refuses_unknown_keys_and_mismatched_widths():
    from infoclip.adapters.fcclip import resolve_model_config

    with pytest.raises(ConfigError, match="model.decoder.hiddn_dim"):
        resolve_model_config({"decoder": {"hiddn_dim": 3}})
    with pytest.raises(ConfigError, match="must be equal"):
        resolve_model_config({"decoder": {"hidden_dim": 128}})
    with pytest.raises(ConfigError, match="ensemble.alpha"):
        resolve_model_config({"ensemble": {"alpha": 1.5}})
    with pytest.raises(ConfigError, match="clip.finetune"):
        resolve_model_config({"clip": {"finetune": "all"}})


def test_official_preset_is_the_released_architecture():
    from infoclip.adapters.fcclip import FCCLIP, preset_model_config

    with torch.device("meta"):
        model = FCCLIP(preset_model_config("fcclip-convnext-l"))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert model.backbone.channels == (192, 384, 768, 1536) and model.embed_dim == 768
    assert trainable == 20_721_601 and total == 372_494_210  # fcclip-reference.md §1.7 (official modules)
    assert model.clip_tag == "convnext_large_d_320:laion2b_s29b_b131k_ft_soup"


def test_ensemble_log_space_equals_the_official_formula_without_underflow(tiny_model):
    images = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        official, masks = tiny_model.eval()(images, NAMES)
        tiny_model.config["ensemble"]["log_space"] = True
        log_space, _ = tiny_model(images, NAMES)
    assert official.shape == (1, 12, len(NAMES) + 1) and masks.shape == (1, 12, 16, 24)
    assert torch.isfinite(official).all()
    assert (official - log_space).abs().max() < 1e-5


def test_ensemble_reproduces_the_official_nan_on_underflow_and_log_space_avoids_it(tiny_model):
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        outputs = tiny_model.eval().run(tiny_model.preprocess(images), NAMES)
        outputs.heads[-1].logits[0, 0, 0] = 200.0  # in-vocab probability of the other classes underflows to 0
        official = tiny_model.class_log_probs(outputs, NAMES)
        tiny_model.config["ensemble"]["log_space"] = True
        safe = tiny_model.class_log_probs(outputs, NAMES)
    assert torch.isnan(official[0, 0, :-1]).all() and torch.isfinite(official[0, 1:]).all()
    assert torch.isfinite(safe[0, 0]).all()


def test_predict_scores_have_the_image_size_and_the_segmenter_checks_input(tiny_model):
    image = torch.rand(3, 37, 50, generator=torch.Generator().manual_seed(2)) * 255
    tiny_model.config["inference"]["test_short_side"] = 64
    scores = tiny_model.predict(image, NAMES)
    assert scores.shape == (4, 37, 50) and scores.dtype == torch.float32
    assert torch.equal(scores, tiny_model.predict(image, NAMES, protocol="whole"))
    assert scores.min() >= 0 and scores.sum(0).max() <= 12
    from infoclip import Segmenter

    segmenter = Segmenter(tiny_model, "tiny FC-CLIP")  # the entry point checks; predict trusts (OVSSModel.predict's contract)
    with pytest.raises(InputError, match="protocol"):
        segmenter.predict(image.permute(1, 2, 0).numpy().astype("uint8"), NAMES, protocol="tiles")
    with pytest.raises(InputError, match="class"):
        segmenter.predict(image.permute(1, 2, 0).numpy().astype("uint8"), [])


def test_training_reaches_the_heads_only_and_stage4_trains_the_last_stage(tiny_config):
    from infoclip.adapters.fcclip import build_model
    from infoclip.config import deep_merge

    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 255
    labels = torch.randint(-1, 4, (2, 64, 64), generator=torch.Generator().manual_seed(4))
    for mode in ("none", "stage4"):
        model = build_model(deep_merge(tiny_config, {"clip": {"finetune": mode}})).train()
        assert not model.backbone.training
        out = model.forward_train(images, NAMES)
        assert out.logits.shape == (2, 4, 16, 16)
        assert out.embeddings.image.shape == (2, 4, 32) and out.embeddings.grid == (2, 2)
        assert out.embeddings.text.shape == (4, 32)
        model.task_loss(out.logits, labels).backward()
        clip_grads = {n for n, p in model.backbone.clip_model.named_parameters() if p.grad is not None}
        if mode == "none":
            assert clip_grads == set()
        else:
            assert clip_grads and all(n.startswith("visual.trunk.stages.3.") for n in clip_grads)
        assert all(p.grad is not None for p in model.sem_seg_head.parameters())


def test_teacher_is_the_dense_clip_head_of_its_own_frozen_clip(tiny_model, tiny_config):
    from infoclip.adapters.fcclip import build_teacher

    teacher = build_teacher(tiny_config, tiny_model)
    assert teacher.backbone is not tiny_model.backbone
    assert not any(p.requires_grad for p in teacher.parameters())
    mine, theirs = tiny_model.backbone.state_dict(), teacher.backbone.state_dict()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 255
    emb = teacher(images, NAMES)
    assert emb.image.shape == (1, 4, 32) and emb.grid == (2, 2) and emb.text.shape == (4, 32)
    with torch.no_grad():
        res5 = tiny_model.backbone.features(tiny_model.preprocess(images))["res5"]
        # the per-pixel head at one pixel equals the region head on a one-pixel mask
        region = tiny_model.backbone.region_embeddings(res5[:, :, 1, 0][:, None])
    assert torch.allclose(emb.image[:, 2], region[:, 0], atol=1e-6)
    assert torch.allclose(emb.text.norm(dim=-1), torch.ones(4))
    teacher.to(torch.bfloat16)  # the engine's teacher precision must leave the student alone
    assert tiny_model.backbone.clip_model.logit_scale.dtype == torch.float32


def test_adapter_is_registered_with_its_presets():
    from infoclip.adapters import get_adapter

    adapter = get_adapter("fcclip")
    assert set(adapter.configs) == {"fcclip-convnext-l", "fcclip-tiny"}
    assert "official" in adapter.importers


def test_fcclip_vocabularies_ship_with_synonyms():
    from infoclip.adapters.fcclip import VOCABULARIES, fcclip_vocabulary
    from infoclip.adapters.fcclip.vocabularies import seen_classes, split_synonyms

    sizes = {name: len(fcclip_vocabulary(name)) for name in VOCABULARIES}
    assert sizes == {"ade150": 150, "ade847": 847, "coco133": 133, "pc459": 459, "pc59": 59, "voc20": 20, "voc21": 21}
    synonyms = {name: sum(map(len, split_synonyms(fcclip_vocabulary(name)))) for name in VOCABULARIES}
    assert synonyms == {"ade150": 403, "ade847": 1342, "coco133": 254, "pc459": 559, "pc59": 160, "voc20": 79, "voc21": 153}
    coco = fcclip_vocabulary("coco133")
    seen = {name: sum(seen_classes(fcclip_vocabulary(name), coco)) for name in ("ade150", "ade847", "pc59", "pc459", "voc21")}
    assert seen == {"ade150": 64, "ade847": 101, "pc59": 51, "pc459": 85, "voc21": 21}  # reference §1.5
    with pytest.raises(InputError, match="no FC-CLIP vocabulary"):
        fcclip_vocabulary("ade")
