"""``infoclip convert fcclip``: official FC-CLIP checkpoints (detectron2 or bare), text-tower fill, refusals."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from infoclip.adapters.fcclip.convert import CLIP_PREFIX, convert_official_state, import_official_checkpoint
from infoclip.errors import CheckpointError

from .conftest import golden_class_names


def _model(state, config):
    from infoclip.adapters.fcclip import build_model

    model = build_model(config)
    model.load_state_dict(state, strict=True)
    return model


@pytest.mark.parametrize("wrap", ["detectron2", "bare", "ddp"])
def test_official_formats_convert_to_the_same_weights(wrap, official_file, official_tiny_state):
    data = {
        "detectron2": {"model": official_tiny_state, "iteration": 368749},
        "bare": official_tiny_state,
        "ddp": {"module." + k: v for k, v in official_tiny_state.items()},
    }[wrap]
    state, config = import_official_checkpoint(official_file(data))
    assert config["clip"]["name"] == "infoclip-tiny-convnext"
    packed = official_tiny_state[CLIP_PREFIX + "transformer.resblocks.0.attn.in_proj_weight"]
    assert torch.equal(state[CLIP_PREFIX + "transformer.resblocks.0.attn.k_proj_weight"], packed.chunk(3)[1])
    assert torch.equal(state["void_embedding.weight"], official_tiny_state["void_embedding.weight"])
    _model(state, config)


def test_missing_text_tower_is_filled_from_the_clip_and_said(official_tiny_state, caplog):
    from infoclip.adapters.fcclip.backbone import build_convnext_clip

    released = {k: v for k, v in official_tiny_state.items() if not k.startswith(tuple(CLIP_PREFIX + p for p in ("transformer.", "token_embedding", "ln_final")))}
    released["criterion.empty_weight"] = torch.ones(134)  # present in training checkpoints, dropped
    with caplog.at_level(logging.WARNING, logger="infoclip.adapters.fcclip.convert"):
        state, config = convert_official_state(released, source="fcclip_cocopan.pth")
    assert "fcclip_cocopan.pth holds no weights for" in caplog.text and "of the text tower" in caplog.text
    assert "infoclip-tiny-convnext:random init (seed 0)" in caplog.text
    init = build_convnext_clip("infoclip-tiny-convnext", 0).state_dict()
    assert torch.equal(state[CLIP_PREFIX + "token_embedding.weight"], init["token_embedding.weight"])
    assert torch.equal(state[CLIP_PREFIX + "visual.head.mlp.fc2.weight"], official_tiny_state[CLIP_PREFIX + "visual.head.mlp.fc2.weight"])
    _model(state, config)


def test_resnet_variants_are_refused_by_name(official_tiny_state):
    state = dict(official_tiny_state)
    state["sem_seg_head.pixel_decoder.input_proj.0.0.weight"] = torch.zeros(32, 2048, 1, 1)
    with pytest.raises(CheckpointError, match="FC-CLIP RN50 or RN101 checkpoint"):
        convert_official_state(state)
    state[CLIP_PREFIX + "visual.attnpool.positional_embedding"] = torch.zeros(50, 2048)
    state["sem_seg_head.pixel_decoder.input_proj.0.0.weight"] = torch.zeros(32, 4096, 1, 1)
    with pytest.raises(CheckpointError, match="FC-CLIP RN50x64 checkpoint .*ConvNeXt-L model only"):
        convert_official_state(state)


def test_keys_that_do_not_fit_are_named(official_tiny_state):
    state = dict(official_tiny_state)
    del state["sem_seg_head.predictor.decoder_norm.bias"]
    state["sem_seg_head.predictor.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match="missing: sem_seg_head.predictor.decoder_norm.bias; unexpected: sem_seg_head.predictor.extra.weight"):
        convert_official_state(state)
    state = dict(official_tiny_state)
    state["sem_seg_head.predictor.query_feat.weight"] = torch.zeros(250, 32)
    with pytest.raises(CheckpointError, match=r"not an FC-CLIP ConvNeXt-L checkpoint: sem_seg_head.pixel_decoder.input_proj.0.0.weight is \[32, 320, 1, 1\], expected \[256, 1536, 1, 1\]"):
        convert_official_state(state)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"model": {"sem_seg_head.predictor.clip_model.visual.conv1.weight": torch.zeros(1), "upsample1.weight": torch.zeros(1)}},
         "is not an FC-CLIP checkpoint: it lacks sem_seg_head.pixel_decoder.input_proj.0.0.weight"),
        ({"state_dict": {"encoder.weight": torch.zeros(1)}}, "not a state dict of named tensors"),
    ],
)
def test_other_frameworks_are_refused_naming_keys(data, fragment, official_file, run_cli, tmp_path):
    source = official_file(data, name="model_final.pth")
    out = tmp_path / "x.safetensors"
    code, stdout, stderr = run_cli("convert", "fcclip", source, "-o", out)
    assert code == 1 and stdout == "" and "Traceback" not in stderr
    assert fragment in stderr
    if "clip_model" in str(data):
        assert "sem_seg_head.predictor.clip_model.visual.conv1.weight" in stderr
    assert not out.exists()


def test_cli_convert_then_segment_gives_the_official_scores(official_file, run_cli, tmp_path, golden):
    from infoclip.weights import load_model

    tensors, meta = golden
    source = official_file()
    weights = tmp_path / "fcclip.safetensors"
    code, stdout, stderr = run_cli("convert", "fcclip", source, "-o", weights)
    assert code == 0, stderr
    assert stdout.strip() == str(weights) and "infoclip-tiny-convnext:random" in stderr
    model, info = load_model(weights)
    assert info.adapter == "fcclip" and info.source == "infoclip convert fcclip fcclip_cocopan.pth"

    # the default protocol of `segment` is FC-CLIP's (short side 800 here); --save-probs writes the score map
    image_path = tmp_path / "img.png"
    Image.fromarray(tensors["image"].numpy()).save(image_path)
    classes = tmp_path / "classes.json"
    import json

    classes.write_text(json.dumps(golden_class_names(meta)))
    out = tmp_path / "seg"
    code, _, stderr = run_cli("segment", image_path, "--weights", weights, "--classes", f"@{classes}", "-o", out, "--save-probs", "--device", "cpu")
    assert code == 0, stderr
    probs = np.load(out / "img_probs.npy")
    expected = model.predict(tensors["image"].permute(2, 0, 1).float(), golden_class_names(meta)).numpy()
    assert probs.shape == (6, 45, 60)
    assert np.abs(probs - expected).max() < 1e-5


def test_cli_eval_and_template_with_fcclip_weights(official_file, run_cli, tmp_path):
    from infoclip.data.synthetic import write_custom_dataset

    weights = tmp_path / "fcclip.safetensors"
    assert run_cli("convert", "fcclip", official_file(), "-o", weights)[0] == 0
    dataset = write_custom_dataset(tmp_path / "toy", ["cat", "sofa, couch", "sky"], num_images=2, base_size=(40, 56))
    code, stdout, stderr = run_cli("eval", "--weights", weights, "--dataset", dataset, "--device", "cpu", "-o", tmp_path / "eval")
    assert code == 0, stderr
    assert "mIoU" in stdout + stderr
    image = tmp_path / "img.png"
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(image)
    code, _, stderr = run_cli("segment", image, "--weights", weights, "--classes", "cat,sky", "-o", tmp_path / "seg", "--template", "a photo of {}", "--device", "cpu")
    assert code == 0, stderr
