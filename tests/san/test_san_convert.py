"""Importing official SAN checkpoints: ``infoclip.adapters.san.convert`` and ``infoclip convert san``.

Synthetic official checkpoints are written from infoclip's tiny SAN with ``tests/san/conftest.official_state``
(this suite's own reading of the official module tree), so a wrong mapping in the converter cannot pass by
agreeing with itself.
"""

from __future__ import annotations

import pytest
import torch

from infoclip.adapters.san import convert
from infoclip.errors import CheckpointError
from tests.san.conftest import CLASSES, official_state
from tests.segmentation.conftest import run_cli  # noqa: F401  (fixture: infoclip ARGS -> code, stdout, stderr)

TINY = {"san-tiny": "tiny CLIP"}


@pytest.fixture(scope="module")
def tiny_source():
    from infoclip.adapters.san import build_model, preset_model_config

    config = preset_model_config("san-tiny")
    model = build_model(config).eval()
    with torch.no_grad():
        generator = torch.Generator().manual_seed(3)
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    context = model.clip_model.positional_embedding.shape[0]
    return model, official_state(model.state_dict(), config["clip"]["feature_layers"], context)


def test_official_layouts_are_the_released_models():
    b16, l14 = convert.official_layout("san-vit-b16"), convert.official_layout("san-vit-l14-336")
    # 440 / 584 tensors + ov_classifier.attn_mask (+ criterion.empty_weight): san-reference.md §4
    assert (len(b16), len(l14)) == (440, 584)
    assert b16["clip_visual_extractor.positional_embedding"] == (197, 768)
    assert l14["clip_visual_extractor.positional_embedding"] == (577, 1024)
    assert b16["clip_rec_head.resblocks.2.attn.in_proj_weight"] == (2304, 768)
    assert "clip_rec_head.resblocks.3.ln_1.weight" not in b16 and "clip_rec_head.resblocks.5.ln_1.weight" in l14
    assert b16["side_adapter_network.vit_model.pos_embed"] == (1, 1600, 240)
    assert b16["side_adapter_network.mask_decoder.attn_mlp.layers.2.weight"] == (3072, 256, 1, 1)
    assert l14["side_adapter_network.fusion_layers.layer_3.input_proj.1.weight"] == (240, 1024, 1, 1)
    assert b16["ov_classifier.bg_embed"] == (1, 512) and l14["ov_classifier.bg_embed"] == (1, 768)


@pytest.mark.parametrize("wrap", ["detectron2", "bare", "ddp"])
def test_round_trip_loads_strictly(tiny_source, tmp_path, monkeypatch, wrap):
    from infoclip.adapters.san import build_model

    monkeypatch.setattr(convert, "OFFICIAL_PRESETS", TINY)
    model, official = tiny_source
    payload = {"model": official, "iteration": 9} if wrap == "detectron2" else official
    if wrap == "ddp":
        payload = {"module." + k: v for k, v in official.items()}
    path = tmp_path / "san.pth"
    torch.save(payload, path)
    state, config = convert.import_official_checkpoint(path)
    fresh = build_model(config)
    fresh.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key
    images = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        assert torch.equal(fresh.eval()(images, CLASSES)["pred_logits"], model(images, CLASSES)["pred_logits"])


def test_cli_round_trip_writes_loadable_weights(tiny_source, tmp_path, run_cli, monkeypatch):
    from infoclip.models import load_model

    monkeypatch.setattr(convert, "OFFICIAL_PRESETS", TINY)
    model, official = tiny_source
    source = tmp_path / "san_tiny.pth"
    torch.save({"model": official}, source)
    out = tmp_path / "san-tiny.safetensors"
    code, stdout, stderr = run_cli("convert", "san", source, "-o", out)
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    loaded, meta = load_model(out)
    assert meta.adapter == "san" and meta.clip_tag == "infoclip-tiny-clip:random"
    assert meta.source == "infoclip convert san san_tiny.pth"
    image = torch.rand(3, 40, 50, generator=torch.Generator().manual_seed(1)) * 255
    assert torch.equal(loaded.predict(image, CLASSES), model.predict(image, CLASSES))


def test_catseg_checkpoint_is_refused_naming_keys(tmp_path, run_cli):
    path = tmp_path / "model_final.pth"
    torch.save({"model": {"sem_seg_head.predictor.clip_model.visual.conv1.weight": torch.zeros(2, 3, 1, 1),
                          "upsample1.weight": torch.zeros(1)}}, path)  # fmt: skip
    code, stdout, stderr = run_cli("convert", "san", path, "-o", tmp_path / "x.safetensors")
    line = stderr.strip().splitlines()[-2]
    assert code == 1 and stdout == "" and "Traceback" not in stderr
    assert "holds no SAN weights" in line and "sem_seg_head.predictor.clip_model.visual.conv1.weight" in line
    assert "CAT-Seg checkpoint" in line and not (tmp_path / "x.safetensors").exists()


def test_other_architecture_and_misfits_are_named(tiny_source):
    _, official = tiny_source
    with pytest.raises(CheckpointError) as err:
        convert.convert_official_state(official, source="tiny.pth")
    assert "clip_visual_extractor.conv1.weight is [64, 3, 16, 16], expected [768, 3, 16, 16] (ViT-B/16) or [1024, 3, 14, 14]" in str(err.value)
    state = dict(official)
    del state["side_adapter_network.query_embed"]
    state["side_adapter_network.extra.weight"] = torch.ones(2)
    state["ov_classifier.bg_embed"] = torch.zeros(1, 7)
    with pytest.raises(CheckpointError) as err:
        convert.convert_official_state(state, source="ckpt.pth", config=convert._config("san-tiny"))
    message = str(err.value)
    assert message.startswith("ckpt.pth looks like a SAN checkpoint of the given config but does not fit it")
    assert "missing: side_adapter_network.query_embed" in message
    assert "unexpected: side_adapter_network.extra.weight" in message
    assert "wrong shape: ov_classifier.bg_embed [1, 7] (expected [1, 32])" in message
