"""The training engine on the tiny CAT-Seg and a synthetic custom dataset: learning, run folder, exact resume,
NaN handling, the baseline, export -> eval round trip."""

from __future__ import annotations

import json

import pytest
import torch

from infoclip.errors import CheckpointError, ConfigError, InputError, TrainingError
from infoclip.training import export_checkpoint, prepare_run_config, train
from infoclip.training.checkpoint import last_checkpoint, list_checkpoints, read_checkpoint
from infoclip.training.run_log import read_csv

from .conftest import CLASSES, tiny_overrides


def _losses(run_dir):
    return {int(r["iteration"]): {k: float(v) for k, v in r.items() if k.startswith("loss_")} for r in read_csv(run_dir / "log.csv")}


class _StopAt:
    """A progress reporter that interrupts the run after iteration ``stop`` (a killed job)."""

    def __init__(self, stop: int) -> None:
        self.stop = stop

    def start(self, total, done):
        pass

    def update(self, done, info):
        if done == self.stop:
            raise KeyboardInterrupt

    def note(self, text):
        pass

    def close(self):
        pass


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_dataset):
    """An uninterrupted InfoCLIP run of 6 iterations, validated at the end."""
    run = tmp_path_factory.mktemp("runs") / "reference"
    config, _ = prepare_run_config(run, "catseg-tiny", "catseg", tiny_overrides(tiny_dataset) + ["train.eval_period=6"])
    summary = train(config, run)
    return run, summary


def test_run_folder_layout_and_learning(reference_run):
    run, summary = reference_run
    assert summary.iterations == 6
    for name in ("config.yaml", "log.csv", "val.csv", "curves.png", "last_checkpoint", "metrics.json", "summary.json"):
        assert (run / name).is_file(), name
    assert [it for it, _ in list_checkpoints(run)] == [3, 6]
    assert (run / "val" / "iter_0000006" / "metrics.json").is_file()
    losses = _losses(run)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert all(set(v) == {"loss_total", "loss_task", "loss_compression", "loss_distillation"} for v in losses.values())
    assert losses[6]["loss_task"] < losses[1]["loss_task"], "a few steps lower the task loss"
    assert any(v["loss_compression"] != 0 for v in losses.values()), "the InfoCLIP terms are on by default"
    first = losses[1]
    assert first["loss_total"] == pytest.approx(first["loss_task"] + first["loss_compression"] + first["loss_distillation"])
    val = read_csv(run / "val.csv")
    assert [r["iteration"] for r in val] == ["6"] and 0 <= float(val[0]["mIoU"]) <= 100
    saved = json.loads((run / "summary.json").read_text())
    assert saved["iterations"] == 6 and saved["parameters"]["lpam"] > 0
    data = read_checkpoint(run)
    assert data["classes"] == CLASSES and data["iteration"] == 6 and "lpam" in data


def test_resume_continues_exactly(reference_run, tmp_path, tiny_dataset):
    reference, _ = reference_run
    run = tmp_path / "interrupted"
    overrides = tiny_overrides(tiny_dataset) + ["train.eval_period=6"]
    config, _ = prepare_run_config(run, "catseg-tiny", None, overrides)
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=_StopAt(4))
    assert last_checkpoint(run).name == "checkpoint_0000003.pt"
    with pytest.raises(ConfigError, match="already holds a training run"):
        prepare_run_config(run, "catseg-tiny", None, overrides)
    config, changed = prepare_run_config(run, None, None, [], resume=True)
    assert changed == []
    train(config, run, resume=True)
    expected, got = _losses(reference), _losses(run)
    assert sorted(got) == [1, 2, 3, 4, 5, 6], "rows of redone iterations are not duplicated"
    for it in (4, 5, 6):
        assert got[it] == expected[it], f"iteration {it} after resume"
    a, b = read_checkpoint(reference)["model"], read_checkpoint(run)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a), "final weights equal the uninterrupted run's"


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_dataset, monkeypatch):
    from infoclip.core import InfoCLIPObjective

    original = InfoCLIPObjective.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            out = dict(out, distillation=out["distillation"] * float("nan"))
        return out

    monkeypatch.setattr(InfoCLIPObjective, "forward", poisoned)
    run = tmp_path / "nan"
    config, _ = prepare_run_config(run, "catseg-tiny", None, tiny_overrides(tiny_dataset))
    with pytest.raises(TrainingError, match=r"iteration 5: distillation = nan.*checkpoint_0000003\.pt is kept"):
        train(config, run)
    assert [it for it, _ in list_checkpoints(run)] == [3]
    assert last_checkpoint(run).name == "checkpoint_0000003.pt"
    assert (run / "curves.png").is_file(), "the plot is drawn when the run stops"


def test_baseline_export_and_eval_round_trip(reference_run, tmp_path, tiny_dataset):
    from infoclip.data import get_dataset
    from infoclip.evaluation import evaluate
    from infoclip.models import load_model
    from infoclip.weights import read_weights

    # the plain CAT-Seg baseline trains with one override
    run = tmp_path / "baseline"
    config, _ = prepare_run_config(run, "catseg-tiny", None, tiny_overrides(tiny_dataset, 2) + ["infoclip.enabled=false"])
    summary = train(config, run)
    assert summary.last_losses["compression"] == 0 and summary.last_losses["distillation"] == 0
    assert "lpam" not in read_checkpoint(run)

    reference, _ = reference_run
    out = tmp_path / "model.safetensors"
    path, info = export_checkpoint(reference, out)
    assert info["iteration"] == 6 and info["classes"] == len(CLASSES)
    state, meta = read_weights(path)
    assert meta.adapter == "catseg" and meta.classes == CLASSES and meta.clip_tag.startswith("infoclip-tiny-clip:")
    assert meta.source == "infoclip export reference@6"
    assert not any("lpam" in k for k in state), "the training-only LPAM is not exported"
    model, _ = load_model(path)  # strict
    checkpoint_state = read_checkpoint(reference)["model"]
    assert all(torch.equal(v, checkpoint_state[k]) for k, v in model.state_dict().items())
    result = evaluate(model, get_dataset(tiny_dataset, "val"), protocol="whole", limit=2)
    validated = json.loads((reference / "metrics.json").read_text())
    assert result.miou == pytest.approx(validated["mIoU"], abs=1e-9), "validation used the eval code and protocol"

    with pytest.raises(InputError, match="exists"):
        export_checkpoint(reference, out)
    export_checkpoint(reference / "checkpoints" / "checkpoint_0000003.pt", out, force=True)
    assert read_weights(out)[1].source == "infoclip export reference@3"
    with pytest.raises(CheckpointError, match="already a weights file"):
        export_checkpoint(out, tmp_path / "again.safetensors")
    with pytest.raises(CheckpointError, match="not an infoclip training checkpoint"):
        export_checkpoint(reference / "config.yaml", tmp_path / "again.safetensors")
