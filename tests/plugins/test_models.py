"""The model factory (``infoclip.models``): presets, create from preset / YAML / mapping, save and load."""

from __future__ import annotations

import pytest
import torch
import yaml

from infoclip.config import load_config
from infoclip.errors import AdapterError, ConfigError, InputError
from infoclip.models import create_model, find_preset, list_presets, load_model, save_model
from infoclip.weights import read_weights


def test_list_presets_names_the_adapter_and_file():
    presets = {p.name: p for p in list_presets()}
    assert {"catseg-tiny", "catseg-vit-b16", "catseg-vit-l14-336"} <= set(presets)
    assert presets["catseg-tiny"].adapter == "catseg" and presets["catseg-tiny"].path.is_file()
    assert [p.name for p in list_presets("catseg")] == sorted(p.name for p in list_presets("catseg"))
    with pytest.raises(ConfigError, match="no preset 'nope'; presets: catseg-tiny"):
        find_preset("nope")


def test_create_model_from_preset_yaml_and_mapping_agree(tmp_path):
    torch.manual_seed(0)
    from_preset = create_model("catseg-tiny")
    run = load_config(find_preset("catseg-tiny").path)  # _base_ resolved
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    from_yaml = create_model(path)
    bare = create_model(run["model"], adapter="catseg")
    assert from_preset.model_config() == from_yaml.model_config() == bare.model_config()
    # the CLIP init is seeded by the config: the same weights whatever the global RNG did in between
    assert torch.equal(from_preset.clip_model.visual.conv1.weight, bare.clip_model.visual.conv1.weight)
    with pytest.raises(ConfigError, match="needs its adapter"):
        create_model(run["model"])
    with pytest.raises(AdapterError, match="unknown adapter 'nope'"):
        create_model(run["model"], adapter="nope")


def test_save_model_is_the_weights_writer(tmp_path):
    torch.manual_seed(0)
    model = create_model("catseg-tiny")
    path = save_model(model, tmp_path / "m.safetensors", {"run": "r1", "miou": 12.5}, classes=["cat", "sky"], source="test")
    _, meta = read_weights(path)
    assert (meta.adapter, meta.clip_tag, meta.classes, meta.source) == ("catseg", model.clip_tag, ["cat", "sky"], "test")
    assert meta.extra == {"run": "r1", "miou": 12.5} and meta.config == model.model_config()
    loaded, again = load_model(path)
    assert again == meta and not loaded.training
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    with pytest.raises(InputError, match="safetensors"):
        save_model(model, tmp_path / "m.pt")
