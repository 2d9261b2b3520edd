from __future__ import annotations

import pytest
import yaml

from infoclip.config import apply_overrides, get, load_config, parse_override, save_config
from infoclip.errors import ConfigError


def test_overrides_parse_yaml_values():
    cfg = {"solver": {"lr": 2e-4, "iterations": 80000}, "infoclip": {"enabled": True, "gram_axis": "batch"}}
    out = apply_overrides(cfg, ["solver.lr=1e-3", "infoclip.enabled=false", "infoclip.gram_axis=pairs"])
    assert out["solver"]["lr"] == 1e-3 and out["infoclip"]["enabled"] is False
    assert out["infoclip"]["gram_axis"] == "pairs"
    assert cfg["solver"]["lr"] == 2e-4, "the input config is not modified"
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])


def test_strict_overrides_name_the_typo():
    cfg = {"solver": {"lr": 1.0, "iterations": 3}}
    with pytest.raises(ConfigError, match="unknown key 'lrr'; keys here: iterations, lr"):
        apply_overrides(cfg, ["solver.lrr=1"])
    with pytest.raises(ConfigError, match="no config section 'solvr'"):
        apply_overrides(cfg, ["solvr.lr=1"])
    with pytest.raises(ConfigError, match="must look like"):
        apply_overrides(cfg, ["solver.lr"])
    assert apply_overrides(cfg, ["new.key=3"], strict=False)["new"] == {"key": 3}


def test_base_inheritance_and_round_trip(tmp_path):
    (tmp_path / "base.yaml").write_text("a: 1\nnested: {x: 1, y: 2}\n")
    (tmp_path / "child.yaml").write_text("_base_: base.yaml\nnested: {y: 3}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg == {"a": 1, "nested": {"x": 1, "y": 3}}
    assert get(cfg, "nested.y") == 3 and get(cfg, "nested.z", "d") == "d"
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert yaml.safe_load(path.read_text()) == cfg


def test_bad_config_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("_base_: loop.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "loop.yaml")


def test_exponent_floats_without_a_dot_are_numbers_in_files_too(tmp_path):
    (tmp_path / "c.yaml").write_text("solver: {lr: 1e-4, clip: -3E+2, name: '1e-4', tag: 1e3x, n: 12}\n")
    solver = load_config(tmp_path / "c.yaml")["solver"]
    assert solver == {"lr": 1e-4, "clip": -300.0, "name": "1e-4", "tag": "1e3x", "n": 12}
    assert parse_override("a.b=nan") == (["a", "b"], "nan"), "only numerals become numbers"
