"""infoclip.clip: the dense CLIP forward pieces and weight loading (tiny random CLIP, offline)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from infoclip.adapters.catseg import CATSeg, build_teacher
from infoclip.clip import (
    TINY_CLIP,
    build_clip,
    class_prompts,
    encode_image_dense,
    encode_text,
    get_tokenizer,
    resize_position_embedding,
    resolve_pretrained,
)
from infoclip.errors import CheckpointError, ConfigError, WeightsNotFoundError


def _cubic_weights(t: float, a: float = -0.75) -> list[float]:
    def k(x: float) -> float:
        x = abs(x)
        if x <= 1:
            return (a + 2) * x**3 - (a + 3) * x**2 + 1
        if x < 2:
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
        return 0.0

    return [k(t + 1), k(t), k(1 - t), k(2 - t)]


def _bicubic_matrix(size_in: int, size_out: int) -> np.ndarray:
    """Keys' cubic convolution (a = -0.75), half-pixel centres, border replicated, no antialias."""
    m = np.zeros((size_out, size_in))
    for i in range(size_out):
        src = (i + 0.5) * size_in / size_out - 0.5
        base = math.floor(src)
        for offset, w in zip(range(-1, 3), _cubic_weights(src - base)):
            m[i, min(max(base + offset, 0), size_in - 1)] += w
    return m


def test_position_embedding_resize_is_plain_bicubic():
    torch.manual_seed(0)
    pos = torch.randn(1 + 14 * 14, 6, dtype=torch.float64)
    resized = resize_position_embedding(pos, (24, 24))
    assert resized.shape == (1 + 24 * 24, 6)
    assert torch.equal(resized[0], pos[0])  # CLS entry kept
    m = _bicubic_matrix(14, 24)
    grid = pos[1:].reshape(14, 14, 6).numpy()
    expected = np.einsum("ik,jl,klc->ijc", m, m, grid).reshape(576, 6)
    np.testing.assert_allclose(resized[1:].numpy(), expected, atol=1e-12)
    # open_clip's force_image_size path antialiases, which is a different (wrong for CAT-Seg) table
    table = pos[1:].reshape(1, 14, 14, 6).permute(0, 3, 1, 2)
    antialiased = F.interpolate(table, size=(24, 24), mode="bicubic", align_corners=False, antialias=True)
    assert not np.allclose(antialiased[0].permute(1, 2, 0).reshape(576, 6).numpy(), expected, atol=1e-3)
    assert resize_position_embedding(pos, (14, 14)) is pos


def test_dense_last_block_is_value_path_with_cls_residual():
    model = build_clip(TINY_CLIP, init_seed=0).eval()
    images = torch.randn(2, 3, 64, 64)
    tokens, (before_last,) = encode_image_dense(model, images, taps=(2,))
    last = model.visual.transformer.resblocks[3]
    d = last.attn.embed_dim
    y = last.ln_1(before_last)
    v = F.linear(y, last.attn.v_proj_weight, last.attn.in_proj_bias[2 * d :]) @ last.attn.out_proj.weight.T
    v = v + last.attn.out_proj.bias + before_last[:, :1]  # residual: the incoming CLS token, broadcast
    v = v + last.mlp(last.ln_2(v))
    expected = model.visual.ln_post(v) @ model.visual.proj  # ln_post and proj on every token
    assert torch.allclose(tokens, expected, atol=1e-5)
    # the ordinary (non-dense) path through the split attention equals open_clip's own forward
    pooled = model.encode_image(images)
    x = model.visual.ln_post(last(before_last))[:, 0] @ model.visual.proj
    assert torch.allclose(pooled, x, atol=1e-5)


def test_text_uses_first_synonym_and_single_template():
    prompts = class_prompts(["sofa, couch", "bed "], ["A photo of a {} in the scene"])
    assert prompts == ["A photo of a sofa in the scene", "A photo of a bed  in the scene"]
    tokenizer = get_tokenizer(TINY_CLIP)
    a, b = tokenizer(prompts[1:]), tokenizer(["A photo of a bed in the scene"])
    assert torch.equal(a, b)  # the tokenizer collapses the trailing space of ADE's "bed "
    model = build_clip(TINY_CLIP, init_seed=0)
    tokens = tokenizer(prompts)
    assert torch.allclose(encode_text(model, tokens), model.encode_text(tokens), atol=1e-6)


def _save_open_clip_weights(tmp_path, seed: int):
    """A tiny open_clip model with packed nn.MultiheadAttention weights, saved as a plain state dict."""
    import open_clip

    from infoclip.clip import register_tiny_configs

    register_tiny_configs()
    torch.manual_seed(seed)
    reference = open_clip.create_model(TINY_CLIP)
    path = tmp_path / "tiny-clip.pt"
    torch.save(reference.state_dict(), path)
    return reference.eval(), path


def test_pretrained_from_local_file_splits_packed_qkv(tmp_path, tiny_config):
    reference, path = _save_open_clip_weights(tmp_path, seed=5)
    config = {**tiny_config, "clip": {**tiny_config["clip"], "pretrained": str(path)}}
    model = CATSeg(config).eval()
    assert model.load_pretrained() == path
    names = ["cat", "dog"]
    tokens = get_tokenizer(TINY_CLIP)(class_prompts(names, config["prompt_templates"]))
    expected = F.normalize(reference.encode_text(tokens), dim=-1)
    assert torch.allclose(model.encode_classes(names)[:, 0], expected, atol=1e-6)
    block = model.clip_model.visual.transformer.resblocks[0].attn
    packed = reference.visual.transformer.resblocks[0].attn.in_proj_weight
    assert torch.equal(torch.cat([block.q_proj_weight, block.k_proj_weight, block.v_proj_weight]), packed)
    assert block.q_proj_weight.requires_grad and not block.k_proj_weight.requires_grad
    teacher = build_teacher(config, model)
    assert torch.equal(teacher.clip_model.visual.proj, reference.visual.proj)


def test_wrong_or_missing_weights_fail_clearly(tmp_path, tiny_config):
    state = build_clip(TINY_CLIP, init_seed=0).state_dict()
    state.pop("visual.proj")
    state["visual.extra"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    model = CATSeg({**tiny_config, "clip": {**tiny_config["clip"], "pretrained": str(bad)}})
    with pytest.raises(CheckpointError, match="missing: visual.proj; unexpected: visual.extra"):
        model.load_pretrained()
    with pytest.raises(WeightsNotFoundError, match="not found"):
        resolve_pretrained(TINY_CLIP, str(tmp_path / "absent.pt"))
    with pytest.raises(ConfigError, match="no pretrained tag"):
        resolve_pretrained("ViT-B-16-quickgelu", "not-a-tag")


def test_offline_download_is_one_clear_error(tmp_path):
    import time

    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_pretrained("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "timm/vit_base_patch16_clip_224.openai" in message and "model.clip.pretrained" in message
