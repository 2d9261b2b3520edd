"""Importing official CAT-Seg checkpoints: ``infoclip.adapters.catseg.convert`` and ``infoclip convert``.

Synthetic official checkpoints are written here from infoclip's tiny model with the official key names,
using this file's own table of the official module prefixes (read off the official ``CATSeg`` module
tree), not the converter's mapping, so a wrong mapping in the converter cannot pass by agreeing with itself.
"""

from __future__ import annotations

import math

import pytest
import torch

from infoclip.adapters.catseg import convert
from infoclip.errors import CheckpointError
from tests.segmentation.conftest import run_cli  # noqa: F401  (fixture: infoclip ARGS -> code, stdout, stderr)

TINY = {"catseg-tiny": "tiny CLIP"}
# official module paths of CAT-Seg's meta-architecture (cat_seg_model.py / cat_seg_predictor.py)
OFFICIAL_PREFIX = {
    "clip_model.": "sem_seg_head.predictor.clip_model.",
    "aggregator.": "sem_seg_head.predictor.transformer.",
    "upsample1.": "upsample1.",
    "upsample2.": "upsample2.",
}


def official_names(state: dict[str, torch.Tensor], windows: int, window: int, layers: int) -> dict[str, torch.Tensor]:
    """infoclip tiny state -> the official layout, with the persistent shifted-window masks it also stores."""
    out = {}
    for key, value in state.items():
        prefix = next(p for p in OFFICIAL_PREFIX if key.startswith(p))
        out[OFFICIAL_PREFIX[prefix] + key[len(prefix) :]] = value.clone()
    for i in range(layers):
        mask = torch.zeros(windows, window * window, window * window)
        out[f"sem_seg_head.predictor.transformer.layers.{i}.swin_block.block_2.attn_mask"] = mask
    return out


@pytest.fixture(scope="module")
def tiny_source():
    """A seeded tiny CAT-Seg and its weights in the official layout (tiny: 8x8 grid, window 4 -> 4 windows)."""
    from infoclip.adapters.catseg import build_model, preset_model_config

    config = preset_model_config("catseg-tiny")
    model = build_model(config).eval()
    with torch.no_grad():  # move every tensor away from its init value (norms at 1, biases at 0, pads at 0)
        generator = torch.Generator().manual_seed(3)
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    official = official_names(model.state_dict(), windows=4, window=4, layers=config["aggregator"]["num_layers"])
    return model, official


@pytest.fixture
def official_file(tiny_source, tmp_path):
    def write(payload, name="model_final.pth"):
        path = tmp_path / name
        torch.save(payload, path)
        return path

    return write


def test_official_layouts_are_the_released_models():
    # counts measured on the official CATSeg (cvlab-kaist/CAT-Seg @ 6d3a188) built with each released config
    b16 = convert.official_layout("catseg-vit-b16")
    l14 = convert.official_layout("catseg-vit-l14-336")
    assert (len(b16), sum(math.prod(s) for s in b16.values())) == (484, 154_455_266)
    assert (len(l14), sum(math.prod(s) for s in l14.values())) == (652, 433_892_834)
    assert b16["sem_seg_head.predictor.clip_model.visual.transformer.resblocks.0.attn.q_proj_weight"] == (768, 768)
    assert b16["sem_seg_head.predictor.clip_model.visual.transformer.resblocks.11.attn.in_proj_bias"] == (2304,)
    assert b16["sem_seg_head.predictor.clip_model.visual.positional_embedding"] == (197, 768)
    assert b16["sem_seg_head.predictor.transformer.layers.1.swin_block.block_2.attn_mask"] == (4, 144, 144)
    assert b16["sem_seg_head.predictor.transformer.layers.0.attention.padding_tokens"] == (1, 1, 128)
    assert b16["upsample2.weight"] == (768, 128, 4, 4)
    assert l14["sem_seg_head.predictor.clip_model.visual.positional_embedding"] == (577, 1024)
    assert l14["sem_seg_head.predictor.clip_model.transformer.resblocks.11.attn.v_proj_weight"] == (768, 768)
    assert l14["upsample1.weight"] == (1024, 256, 2, 2)


@pytest.mark.parametrize("wrap", ["detectron2", "bare", "ddp", "half"])
def test_round_trip_loads_strictly(tiny_source, official_file, wrap):
    from infoclip.adapters.catseg import build_model, preset_model_config
    from infoclip.weights import load_state_strict

    model, official = tiny_source
    payload = {
        "detectron2": {"model": official, "iteration": 79999},
        "bare": official,
        "ddp": {f"module.{k}": v for k, v in official.items()},
        "half": {"model": {k: v.half() if v.is_floating_point() else v for k, v in official.items()}},
    }[wrap]
    state, config = convert.convert_official_state(convert.read_official_state(official_file(payload)), TINY)
    assert config == preset_model_config("catseg-tiny")
    fresh = build_model(config)
    load_state_strict(fresh, state, "converted")  # no missing, unexpected or mis-shaped key
    for key, value in model.state_dict().items():
        expected = value.half().float() if wrap == "half" and value.is_floating_point() else value
        assert torch.equal(fresh.state_dict()[key], expected), key


def test_cli_round_trip_writes_loadable_weights(tiny_source, official_file, tmp_path, run_cli, monkeypatch):
    from infoclip import __version__
    from infoclip.models import load_model

    monkeypatch.setattr(convert, "OFFICIAL_PRESETS", {**convert.OFFICIAL_PRESETS, **TINY})
    model, official = tiny_source
    source = official_file({"model": official, "iteration": 5})
    out = tmp_path / "out" / "tiny.safetensors"
    code, stdout, stderr = run_cli("convert", "catseg", source, "-o", out)
    assert code == 0, stderr
    assert stdout.strip() == str(out)
    assert "infoclip-tiny-clip" in stderr and "tensors" in stderr
    loaded, meta = load_model(out)
    assert (meta.adapter, meta.clip_tag, meta.infoclip_version) == ("catseg", model.clip_tag, __version__)
    assert meta.clip_tag.startswith("infoclip-tiny-clip:")
    assert meta.source == "infoclip convert catseg model_final.pth"
    assert meta.config == model.model_config()
    images = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        assert torch.equal(loaded(images, ["cat", "sky"]), model(images, ["cat", "sky"]))

    code, _, stderr = run_cli("convert", "catseg", source, "-o", out)
    assert code == 1 and "--force: " in stderr and "exists" in stderr
    code, _, stderr = run_cli("convert", "catseg", source, "-o", out, "--force")
    assert code == 0, stderr


def _corrupt(kind, official, tmp_path):
    """(source file, expected message fragments) for one kind of wrong input."""
    path = tmp_path / f"{kind}.pth"
    if kind == "random dict":
        torch.save({"encoder.weight": torch.zeros(3, 3), "head.bias": torch.zeros(3)}, path)
        return path, ["holds no CAT-Seg weights", "encoder.weight"]
    if kind == "truncated":
        torch.save({"model": official}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, ["is a truncated or damaged PyTorch checkpoint"]
    if kind == "other architecture":  # the tiny CLIP is neither ViT-B/16 nor ViT-L/14@336
        torch.save({"model": official}, path)
        return path, [
            "not a ViT-B/16 or ViT-L/14@336px CAT-Seg checkpoint",
            "sem_seg_head.predictor.clip_model.visual.conv1.weight is [64, 3, 16, 16], expected [768, 3, 16, 16] (ViT-B/16)"
            " or [1024, 3, 14, 14] (ViT-L/14@336px)",
        ]
    if kind == "not a checkpoint":
        path = tmp_path / "notes.txt"
        path.write_text("model weights live elsewhere\n")
        return path, ["is not a PyTorch checkpoint"]
    if kind == "not tensors":
        torch.save({"model": {"sem_seg_head.predictor.clip_model.logit_scale": 1.0}}, path)
        return path, ["is not a state dict", "logit_scale"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["random dict", "truncated", "other architecture", "not a checkpoint", "not tensors"])
def test_cli_rejects_wrong_checkpoints(kind, tiny_source, tmp_path, run_cli):
    source, fragments = _corrupt(kind, tiny_source[1], tmp_path)
    out = tmp_path / "out" / "x.safetensors"
    code, stdout, stderr = run_cli("convert", "catseg", source, "-o", out)
    lines = stderr.strip().splitlines()
    assert code == 1 and stdout == ""
    assert lines[-2].startswith("error: ") and "Traceback" not in stderr, stderr
    for fragment in fragments:
        assert fragment in lines[-2], lines[-2]
    assert not out.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))


def test_keys_that_do_not_fit_are_named(tiny_source):
    _, official = tiny_source
    state = dict(official)
    del state["sem_seg_head.predictor.transformer.head.bias"]
    state["sem_seg_head.predictor.transformer.layers.2.attention.norm1.weight"] = torch.ones(32)
    state["upsample1.bias"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as err:
        convert.convert_official_state(state, TINY, source="ckpt.pth")
    message = str(err.value)
    assert message.startswith("ckpt.pth looks like a tiny CLIP CAT-Seg checkpoint but does not fit it")
    assert "missing: sem_seg_head.predictor.transformer.head.bias" in message
    assert "unexpected: sem_seg_head.predictor.transformer.layers.2.attention.norm1.weight" in message
    assert "wrong shape: upsample1.bias [5] (expected [32])" in message


def test_output_must_be_safetensors_and_not_the_source(tiny_source, official_file, run_cli):
    source = official_file({"model": tiny_source[1]})
    code, _, stderr = run_cli("convert", "catseg", source, "-o", source.with_suffix(".pt"))
    assert code == 1 and "name the output *.safetensors" in stderr
    code, _, stderr = run_cli("convert", "nosuchadapter", source, "-o", source.with_suffix(".safetensors"))
    assert code == 1 and "nosuchadapter" in stderr


def test_python_users_convert_without_the_cli(tiny_source, official_file, tmp_path, monkeypatch):
    from infoclip.errors import InputError
    from infoclip.models import convert_checkpoint, load_model

    monkeypatch.setattr(convert, "OFFICIAL_PRESETS", {**convert.OFFICIAL_PRESETS, **TINY})
    model, official = tiny_source
    source = official_file({"model": official})
    out, summary = convert_checkpoint("catseg", source, tmp_path / "tiny.safetensors")
    assert summary["importer"] == "official" and summary["tensors"] == len(model.state_dict())
    loaded, meta = load_model(out)
    assert meta.source == "infoclip convert catseg model_final.pth" and meta.config == model.model_config()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    with pytest.raises(InputError, match="exists"):
        convert_checkpoint("catseg", source, out)
