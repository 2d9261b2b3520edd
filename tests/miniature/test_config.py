"""The miniature config: one section per adapter, modes choosing methods, clear errors for a bad section."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infoclip.config import load_config
from infoclip.errors import ConfigError
from infoclip.miniature.config import MiniatureConfig, default_config_path
from infoclip.miniature.pipeline import Miniature


def _write(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(default_config_path().read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_modes_choose_methods_and_adapters():
    fast = Miniature("unused", mode="fast")
    assert [m.name for m in fast.methods] == ["catseg", "infoclip-batch"] and fast.adapters == ["catseg"]
    full = Miniature("unused", mode="full")
    names = [m.name for m in full.methods]
    assert {"san", "san-finetuned", "san-infoclip", "catseg"} <= set(names) and full.adapters == ["catseg", "san"]
    ablation = [m for m in full.methods if m.ablation]
    assert [m.name for m in ablation] == ["lambda1-only", "lambda2-only"]
    assert ablation[0].overrides[:2] == ("infoclip.enabled=true", "infoclip.gram_axis=batch")  # the base's first
    chosen = Miniature("unused", mode="full", methods=["san-infoclip"])
    assert [m.name for m in chosen.methods] == ["san-infoclip"] and chosen.adapters == ["san"]
    with pytest.raises(ConfigError, match="unknown method.*nope.*methods: catseg"):
        Miniature("unused", mode="fast", methods=["nope"])


def test_each_adapter_gets_its_run_config(tmp_path):
    run = Miniature(tmp_path, mode="full")
    catseg = load_config(run.write_run_config(Path("clip.safetensors"), "catseg"))
    san = load_config(run.write_run_config(Path("clip.safetensors"), "san"))
    assert catseg["adapter"] == "catseg" and san["adapter"] == "san"
    assert san["model"]["clip"]["pretrained"] == str(Path("clip.safetensors").resolve())
    assert san["solver"]["iterations"] == catseg["solver"]["iterations"] == 400
    assert san["solver"]["batch_size"] == catseg["solver"]["batch_size"]


def test_catseg_run_config_is_the_one_of_the_measured_tables(tmp_path):
    """The structure change must not change CAT-Seg's numbers: the same run config as before it."""
    saved = load_config(Miniature(tmp_path, mode="fast").write_run_config(Path("clip.safetensors"), "catseg"))
    assert saved["solver"] == {"lr": 3.0e-3, "clip_lr_multiplier": 0.3, "iterations": 300, "batch_size": 4}
    assert saved["model"]["clip"]["guidance_layers"] == [1, 2] and saved["model"]["aggregator"]["hidden_dim"] == 32


def test_the_one_adapter_layout_still_loads(tmp_path):
    def legacy(data):
        section = data.pop("adapters")["catseg"]
        data.update(run=section["run"], clip_weights_setting=section["clip_weights_setting"],
                    methods=section["methods"], ablation=section["ablation"])  # fmt: skip
        for mode in data["modes"].values():
            mode["methods"] = [m for m in mode.get("methods", []) if not m.startswith("san")] or None

    config = MiniatureConfig.load(_write(tmp_path, legacy))
    assert list(config.adapters) == ["catseg"] and config.methods["lambda2-only"].ablation
    assert config.methods["lambda2-only"].overrides[0] == "infoclip.enabled=true"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["adapters"].update(nosuch=d["adapters"]["san"]), "adapters.nosuch: no adapter 'nosuch' is installed"),
        (lambda d: d["adapters"]["san"].pop("methods"), "adapters.san lacks methods"),
        (lambda d: d["adapters"]["san"].update(method={}), "adapters.san has unknown key.*method"),
        (lambda d: d["adapters"]["san"]["run"].update(adapter="catseg"), "adapters.san.run.adapter is 'catseg'"),
        (lambda d: d["adapters"]["san"]["methods"].update(catseg=[]), "method 'catseg' is in adapters.catseg and adapters.san"),
        (lambda d: d["adapters"]["san"]["methods"].update(bad=["no-equals-sign"]), "adapters.san.methods.bad must be a list of key=value"),
        (lambda d: d["adapters"]["catseg"].update(ablation_base="san"), "ablation_base 'san' is not one of its methods"),
        (lambda d: d["modes"]["fast"].update(methods=["catseg", "sam"]), "modes.fast.methods has unknown method"),
        (lambda d: d["modes"]["fast"].update(run_overrides={"fcclip": ["a=1"]}), "run_overrides.fcclip names no adapter section"),
    ],
)
def test_bad_adapter_sections_are_refused_with_the_reason(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        MiniatureConfig.load(_write(tmp_path, edit))


def test_per_adapter_run_overrides(tmp_path):
    def per_adapter(data):
        data["modes"]["forgetting"]["run_overrides"] = {"san": ["solver.clip_lr_multiplier=1.0"]}
        data["modes"]["forgetting"]["methods"] = ["catseg", "san-finetuned"]

    run = Miniature(tmp_path, mode="forgetting", config=MiniatureConfig.load(_write(tmp_path, per_adapter)))
    assert load_config(run.write_run_config(Path("c"), "san"))["solver"]["clip_lr_multiplier"] == 1.0
    assert load_config(run.write_run_config(Path("c"), "catseg"))["solver"]["clip_lr_multiplier"] == 0.3
