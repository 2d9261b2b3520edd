"""Regression tests of issue #18 (hostile input): weights metadata asking for huge models, exported file modes,
NaN and mapping overrides. Memory attacks run in a child process under an address-space limit."""

from __future__ import annotations

import json
import stat

import pytest
import torch

from infoclip.config import apply_overrides, load_config, parse_override
from infoclip.errors import CheckpointError, ConfigError
from infoclip.io_utils import default_file_mode
from infoclip.weights import WeightsMeta, load_model, read_weights_header, save_weights
from tests.memory_limit import refusal_under_limit, run_cli_limited


@pytest.fixture(scope="module")
def tiny_state_and_config():
    from infoclip.adapters import get_adapter

    adapter = get_adapter("catseg")
    config = load_config(adapter.config_path("catseg-tiny"))["model"]
    model = adapter.build_model(config)
    return model.inference_state_dict(), model.model_config()


def _bomb(tmp_path, state, config, hidden=100_000):
    """A small, valid weights file whose stored config asks for an aggregator of ``hidden`` channels."""
    big = json.loads(json.dumps(config))
    big["aggregator"]["hidden_dim"] = hidden
    path = tmp_path / "bomb.safetensors"
    save_weights(path, state, WeightsMeta(adapter="catseg", config=big, source="attack"))
    return path


def test_weights_whose_config_asks_for_a_huge_model_are_refused_before_building(tmp_path, tiny_state_and_config):
    state, config = tiny_state_and_config
    path = _bomb(tmp_path, state, config)
    assert path.stat().st_size < 50_000_000
    # in a child limited to 4 GB: building the 100000-channel aggregator first would need tens of gigabytes
    message = refusal_under_limit("infoclip.weights.load_model", "infoclip.errors.CheckpointError", str(path))
    assert "do not fit the model config stored in it" in message
    assert "aggregator." in message and "wrong shape" in message


def test_segment_refuses_the_huge_config_file_in_one_line(tmp_path, tiny_state_and_config):
    from PIL import Image

    state, config = tiny_state_and_config
    path = _bomb(tmp_path, state, config)
    Image.new("RGB", (32, 24), (120, 30, 200)).save(tmp_path / "p.png")
    child = run_cli_limited("segment", str(tmp_path / "p.png"), "--classes", "cat,sky", "-w", str(path),
                            "-o", str(tmp_path / "out"), "--device", "cpu")  # fmt: skip
    assert child.returncode == 1, child.stderr[-2000:]
    errors = [line for line in child.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "do not fit the model config" in errors[0]
    assert "Traceback" not in child.stderr


def test_the_header_is_read_without_the_tensors(tmp_path, tiny_state_and_config):
    state, config = tiny_state_and_config
    path = tmp_path / "ok.safetensors"
    save_weights(path, state, WeightsMeta(adapter="catseg", config=config))
    shapes, meta = read_weights_header(path)
    assert shapes == {k: tuple(v.shape) for k, v in state.items()} and meta.config == config
    model, _ = load_model(path)  # an honest file still loads
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_a_config_the_adapter_refuses_is_a_checkpoint_error(tmp_path, tiny_state_and_config):
    state, config = tiny_state_and_config
    broken = json.loads(json.dumps(config))
    broken["clip"]["resolution"] = 37  # not a multiple of the patch size: the adapter's ConfigError
    path = tmp_path / "odd.safetensors"
    save_weights(path, state, WeightsMeta(adapter="catseg", config=broken))
    with pytest.raises(CheckpointError, match="model config this adapter refuses"):
        load_model(path)


def test_saved_weights_get_the_ordinary_file_mode(tmp_path):
    # safetensors re-creates the temporary file, which used to leave exports at 0600
    path = save_weights(tmp_path / "w.safetensors", {"x": torch.zeros(2)}, WeightsMeta(adapter="toy", config={}))
    assert stat.S_IMODE(path.stat().st_mode) == default_file_mode()


@pytest.mark.parametrize("raw", [".nan", ".NaN", "[1, .nan]", "{a: .nan}"])
def test_nan_overrides_are_refused_in_one_line(raw):
    with pytest.raises(ConfigError, match="is NaN") as refused:
        parse_override(f"solver.lr={raw}")
    assert "\n" not in str(refused.value) and "solver.lr" in str(refused.value)


def test_nan_in_a_config_file_is_refused(tmp_path):
    (tmp_path / "c.yaml").write_text("solver:\n  lr: .nan\n")
    with pytest.raises(ConfigError, match="solver.lr is NaN"):
        load_config(tmp_path / "c.yaml")


def test_train_with_a_nan_learning_rate_gives_one_line(tmp_path):
    child = run_cli_limited("train", "--adapter", "catseg", "--config", "catseg-tiny", "--set", "solver.lr=.nan",
                            "--output-dir", str(tmp_path / "run"))
    assert child.returncode != 0
    assert "Traceback" not in child.stderr, child.stderr[-2000:]
    errors = [line for line in child.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "NaN" in errors[0], child.stderr[-2000:]


def test_a_mapping_override_merges_key_by_key_and_refuses_unknown_keys():
    config = {"solver": {"lr": 1e-4, "betas": [0.9, 0.999], "clip": {"max_norm": 0.01}}}
    with pytest.raises(ConfigError, match=r"unknown key 'a' in 'solver'; keys here: betas, clip, lr"):
        apply_overrides(config, ["solver={a: 1}"])
    with pytest.raises(ConfigError, match=r"unknown key 'norm' in 'solver.clip'"):
        apply_overrides(config, ["solver={clip: {norm: 1}}"])
    merged = apply_overrides(config, ["solver={lr: 0.5, clip: {max_norm: 2}}"])
    assert merged == {"solver": {"lr": 0.5, "betas": [0.9, 0.999], "clip": {"max_norm": 2}}}  # nothing else lost
    assert config["solver"]["lr"] == 1e-4  # the input is not modified
