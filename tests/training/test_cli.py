"""`infoclip train` and `infoclip export` from the command line (the console entry point, in process)."""

from __future__ import annotations

import json

import pytest
import yaml

from infoclip.training.run_log import read_csv

from .conftest import cli, tiny_overrides  # noqa: F401 (cli is a fixture)


def _sets(overrides):
    return [arg for o in overrides for arg in ("--set", o)]


def test_train_resume_export_from_the_command_line(cli, tmp_path, tiny_dataset):
    run = tmp_path / "run"
    args = ["train", "--adapter", "catseg", "--config", "catseg-tiny", "--output-dir", str(run), "--json",
            *_sets(tiny_overrides(tiny_dataset, 2))]  # fmt: skip
    result = cli(args)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["iterations"] == 2 and summary["last_checkpoint"].endswith("checkpoint_0000002.pt")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["adapter"] == "catseg" and saved["solver"]["iterations"] == 2
    assert saved["data"]["train"] == str(tiny_dataset), "a custom dataset is one config key"
    assert "trainable parameters" in result.stderr
    assert "[2/2]" in result.stderr and "it/s" in result.stderr and "L_c" in result.stderr, "progress lines"

    again = cli(args)
    assert again.exit_code == 1 and "already holds a training run" in again.stderr

    # resume with a longer schedule: the saved config plus one override, reported on stderr
    longer = cli(["train", "--output-dir", str(run), "--resume", "--set", "solver.iterations=3", "--json"])
    assert longer.exit_code == 0, longer.stderr
    assert json.loads(longer.stdout)["iterations"] == 3
    rows = read_csv(run / "log.csv")
    assert [r["iteration"] for r in rows] == ["1", "2", "3"]
    assert float(rows[2]["lr_decoder"]) == pytest.approx(2e-4 * 0.25), "the cosine follows the new length"
    assert "solver.iterations" in longer.stderr and "resuming from" in longer.stderr

    out = tmp_path / "model.safetensors"
    exported = cli(["export", str(run), "-o", str(out)])
    assert exported.exit_code == 0, exported.stderr
    assert out.is_file() and "iteration 3" in exported.stdout
    scored = cli(["eval", "-w", str(out), "-d", str(tiny_dataset), "--protocol", "whole", "--limit", "2",
                  "-o", str(tmp_path / "eval")])  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    assert json.loads((tmp_path / "eval" / "toyroom" / "metrics.json").read_text())["num_images"] == 2
    refused = cli(["export", str(run / "config.yaml"), "-o", str(tmp_path / "x.safetensors")])
    assert refused.exit_code == 1 and "not an infoclip training checkpoint" in refused.stderr


def test_config_errors_are_one_line(cli, tmp_path):
    base = ["train", "--config", "catseg-tiny", "--output-dir", str(tmp_path / "r")]
    typo = cli([*base, "--set", "solver.lrr=1"])
    assert typo.exit_code == 1 and "unknown key 'lrr'" in typo.stderr
    preset = cli(["train", "--config", "catseg-vit-b61", "--output-dir", str(tmp_path / "r")])
    assert preset.exit_code == 1 and "did you mean 'catseg-vit-b16'" in preset.stderr
    nothing = cli(["train", "--output-dir", str(tmp_path / "r")])
    assert nothing.exit_code == 1 and "error: --config: a new run needs a config" in nothing.stderr
    assert not (tmp_path / "r").exists(), "nothing is written when the config is refused"


def test_progress_bar_shows_losses_speed_and_eta(monkeypatch):
    import io

    from rich.console import Console

    from infoclip_cli import train_cmd

    buffer = io.StringIO()
    monkeypatch.setattr(train_cmd, "err_console", Console(file=buffer, force_terminal=True, width=200))
    bar = train_cmd.BarProgress()
    bar.start(total=10, done=2)
    bar.update(3, {"loss_total": 0.5, "loss_task": 0.6, "loss_compression": -0.1, "loss_distillation": -0.01, "lr": 2e-4})
    bar.note("checkpoint checkpoints/checkpoint_0000003.pt")
    bar.close()
    text = buffer.getvalue()
    for part in ("3/10", "it/s", "ETA", "loss 0.5000", "L_c -0.1000", "L_d -0.0100", "lr 2.00e-04", "checkpoint_0000003"):
        assert part in text, part
