"""Validation logs the teacher-student alignment agreement, also for a plain fine-tuning run."""

from __future__ import annotations

import json

import pytest

from .conftest import tiny_overrides


def test_validation_logs_the_agreement_of_a_plain_run(tmp_path, tiny_dataset):
    from infoclip.training import prepare_run_config, train
    from infoclip.training.run_log import read_csv

    run = tmp_path / "plain"
    sets = tiny_overrides(tiny_dataset, 2) + ["infoclip.enabled=false", "train.eval_period=2"]
    config, _ = prepare_run_config(run, "catseg-tiny", "catseg", sets)
    train(config, run)
    row = read_csv(run / "val.csv")[-1]
    assert 0.0 < float(row["alignment_cka"]) <= 1.0 and float(row["alignment_mi"]) > 0.0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["extra"]["alignment_cka"] == pytest.approx(float(row["alignment_cka"]))
