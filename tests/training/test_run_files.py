"""Checkpoint files, the last_checkpoint pointer, RNG capture, CSV logs and the curves plot."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from infoclip.errors import CheckpointError
from infoclip.training.checkpoint import (
    POINTER,
    capture_rng_state,
    last_checkpoint,
    list_checkpoints,
    prune_checkpoints,
    read_checkpoint,
    resolve_checkpoint,
    restore_rng_state,
    write_checkpoint,
)
from infoclip.training.run_log import CsvLog, plot_curves, read_csv


def test_checkpoint_round_trip_pointer_and_pruning(tmp_path):
    for it in (2, 4, 6):
        write_checkpoint(tmp_path, it, {"model": {"w": torch.full((2,), float(it))}, "config": {"a": [1, 2]}})
    assert (tmp_path / POINTER).read_text().strip() == "checkpoints/checkpoint_0000006.pt"
    assert last_checkpoint(tmp_path).name == "checkpoint_0000006.pt"
    data = read_checkpoint(tmp_path)
    assert data["iteration"] == 6 and torch.equal(data["model"]["w"], torch.full((2,), 6.0))
    deleted = prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in deleted] == ["checkpoint_0000002.pt"]
    assert [it for it, _ in list_checkpoints(tmp_path)] == [4, 6]
    assert not list((tmp_path / "checkpoints").glob(".*.tmp")), "no temporary file is left behind"


def test_non_checkpoints_are_refused_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="no training checkpoint"):
        resolve_checkpoint(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="not an infoclip training checkpoint"):
        read_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="no 'infoclip-train-checkpoint' marker"):
        read_checkpoint(other)
    (tmp_path / POINTER).write_text("checkpoints/gone.pt\n")
    with pytest.raises(CheckpointError, match="does not exist"):
        last_checkpoint(tmp_path)


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1), random.seed(2), np.random.seed(3)
    write_checkpoint(tmp_path, 1, {"rng": [capture_rng_state()]})
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(9), random.seed(9), np.random.seed(9)
    restore_rng_state(read_checkpoint(tmp_path)["rng"][0])
    assert torch.equal(torch.rand(3), expected[0])
    assert random.random() == expected[1] and np.random.rand() == expected[2]


def test_csv_log_reads_back_exactly_and_truncates_on_resume(tmp_path):
    log = CsvLog(tmp_path / "log.csv")
    values = [0.1 + 1e-17 * i + 1 / 3 for i in range(5)]
    for it, v in enumerate(values, start=1):
        log.append({"iteration": it, "loss_total": v, "lr": 2e-4})
    rows = read_csv(tmp_path / "log.csv")
    assert [float(r["loss_total"]) for r in rows] == values
    CsvLog(tmp_path / "log.csv").truncate_after(3)
    again = CsvLog(tmp_path / "log.csv")
    again.append({"iteration": 4, "loss_total": 9.0, "lr": 1e-4})
    assert [r["iteration"] for r in read_csv(tmp_path / "log.csv")] == ["1", "2", "3", "4"]
    with pytest.raises(ValueError, match="new columns"):
        again.append({"iteration": 5, "other": 1})


def test_plot_is_a_png_with_and_without_validation(tmp_path):
    log = CsvLog(tmp_path / "log.csv")
    for it in range(1, 6):
        log.append({"iteration": it, "loss_total": 1 / it, "loss_task": 0.5 / it, "loss_compression": -0.1,
                    "loss_distillation": 0.05})  # fmt: skip
    path = plot_curves(tmp_path, title="run")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    CsvLog(tmp_path / "val.csv").append({"iteration": 5, "mIoU": 12.5})
    before = path.stat().st_size
    plot_curves(tmp_path)
    assert path.stat().st_size != before
