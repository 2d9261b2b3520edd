"""The miniature's ConvNeXt CLIP (the frozen CLIP of its FC-CLIP rows): architecture, dense path, pretraining."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from infoclip.errors import ConfigError
from infoclip.miniature import tiny_clip
from infoclip.miniature.pretrain import PretrainSettings, pretrain_clip, zero_shot_report
from infoclip.miniature.world import WorldSpec


def test_convnext_dense_path_is_fcclip_out_of_vocabulary_readout():
    """The pretraining's dense embeddings are exactly what FC-CLIP's backbone computes per pixel from the same
    weights (its out-of-vocabulary head on res5), and the pooled one is open_clip's own image embedding."""
    from infoclip.adapters.fcclip.backbone import ConvNeXtCLIP

    torch.manual_seed(0)
    ours = tiny_clip.create_clip(name=tiny_clip.MINIATURE_CONVNEXT).eval()
    backbone = ConvNeXtCLIP(tiny_clip.MINIATURE_CONVNEXT).eval()
    visual_state = {k: v for k, v in ours.state_dict().items() if k.startswith("visual.")}
    missing, unexpected = backbone.clip_model.load_state_dict(visual_state, strict=False)
    assert not unexpected and all(not k.startswith("visual.") for k in missing)
    images = tiny_clip.tower_inputs(ours.visual, torch.rand(2, 3, 64, 64) * 255)
    assert images.shape == (2, 3, 128, 128)  # the 64 px world runs at the tower's 128 px
    with torch.no_grad():
        pooled, dense = tiny_clip.encode_image_both(ours.visual, images)
        features = backbone.features(images)
        reference_dense = backbone.dense_embeddings(features["clip_vis_dense"])
        reference_pooled = ours.encode_image(images)
    assert features["res5"].shape == (2, 320, 4, 4) and dense.shape == (2, 16, 64)
    torch.testing.assert_close(dense, reference_dense)
    torch.testing.assert_close(pooled, reference_pooled, rtol=1e-5, atol=1e-6)
    # the head on the mean of the last-stage map is not the mean of the per-pixel embeddings (LayerNorm after
    # the pool): the dense path really is per pixel
    assert not torch.allclose(pooled, dense.mean(1), atol=1e-3)


def test_pretraining_a_convnext_clip_runs_and_moves_its_dense_embeddings():
    settings = PretrainSettings(architecture=tiny_clip.MINIATURE_CONVNEXT, max_steps=2, batch_size=4, warmup_steps=1, seed=3)
    torch.manual_seed(3)
    start = tiny_clip.create_clip(name=tiny_clip.MINIATURE_CONVNEXT)
    logs: list[str] = []
    model = pretrain_clip(WorldSpec(), dataclasses.replace(settings, log_every=1), log=logs.append)
    assert any("dense_tags" in line for line in logs) and logs[-1].startswith("pretrain done: 2 steps")
    assert model.visual.trunk.stages[3].blocks[0].conv_dw.weight.shape[0] == 320  # convnext_atto, not the ViT
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, start.state_dict()[k])]
    assert any(k.startswith("visual.trunk.stages.3") for k in changed) and any(k.startswith("visual.head") for k in changed)
    report = zero_shot_report(model, WorldSpec(), n_images=4)
    assert 0.0 <= report.dense_miou_seen <= 1.0 and report.per_class_iou


def test_unknown_miniature_architecture_is_refused_by_name():
    with pytest.raises(ConfigError, match="infoclip-miniature-convnext"):
        PretrainSettings(architecture="convnext_tiny")
    with pytest.raises(ConfigError, match="unknown miniature CLIP architecture"):
        tiny_clip.shipped_weights_path("ViT-B-16")


def test_fcclip_builds_the_miniature_convnext_architecture():
    """FC-CLIP's loader finds the miniature's ConvNeXt CLIP among infoclip's small architectures."""
    from infoclip.adapters.fcclip.backbone import ConvNeXtCLIP

    backbone = ConvNeXtCLIP(tiny_clip.MINIATURE_CONVNEXT, init_seed=0)
    assert backbone.channels == (40, 80, 160, 320) and backbone.embed_dim == 64 and backbone.context_length == 24


def test_pretrain_clip_command_pretrains_the_convnext_clip(tmp_path):
    """`infoclip miniature pretrain-clip --architecture infoclip-miniature-convnext` writes fp16 weights that load
    strictly into the ConvNeXt architecture, whose dense forward then runs; a wrong name fails before any work."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from infoclip_cli.main import app

    out = tmp_path / "convnext.safetensors"
    result = CliRunner().invoke(
        app, ["miniature", "pretrain-clip", "--architecture", tiny_clip.MINIATURE_CONVNEXT, "--output", str(out), "--seconds", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "dense zero-shot mIoU" in result.output
    state = load_file(str(out))
    assert all(v.dtype == torch.float16 for v in state.values()) and "visual.trunk.stages.3.blocks.0.gamma" in state
    model = tiny_clip.create_clip(out, name=tiny_clip.MINIATURE_CONVNEXT)
    with torch.no_grad():
        _, dense = tiny_clip.encode_image_both(model.visual, tiny_clip.tower_inputs(model.visual, torch.rand(1, 3, 64, 64) * 255))
    assert dense.shape == (1, 16, 64) and torch.isfinite(dense).all()

    bad = CliRunner().invoke(app, ["miniature", "pretrain-clip", "--architecture", "convnext_tiny", "--output", str(tmp_path / "x.safetensors")])
    assert bad.exit_code != 0 and not (tmp_path / "x.safetensors").exists()
    assert "unknown miniature CLIP architecture 'convnext_tiny'" in str(bad.exception) + bad.output
