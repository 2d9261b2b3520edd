"""How a run fails: non-finite settings and weights, a full disk, resuming nothing, folders that hold a run.

The full-disk cases run for real on a small tmpfs where the tests may mount one (root), and through an injected
ENOSPC everywhere else.
"""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from infoclip.errors import CheckpointError, ConfigError, DiskFullError, TrainingError
from infoclip.training import export_checkpoint, prepare_run_config, train
from infoclip.training.checkpoint import last_checkpoint, list_checkpoints, read_checkpoint, write_checkpoint
from infoclip.training.engine import Trainer
from infoclip.training.run_config import resolve_run_config
from infoclip.training.run_log import read_csv

from .conftest import cli, tiny_overrides  # noqa: F401 (cli is a fixture)


def _sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


# ---------------------------------------------------------------- non-finite settings and weights


@pytest.mark.parametrize(
    "setting, shown",
    [("solver.lr=.inf", "solver.lr must be a finite number, got inf"),
     ("solver.lr=.nan", "override 'solver.lr=.nan': solver.lr is NaN (not a number); give a number"),
     ("infoclip.lambda_compression=-.inf", "infoclip.lambda_compression must be a finite number, got -inf"),
     ("solver.betas=[0.9, .inf]", "solver.betas[1] must be a finite number, got inf"),
     ("model.clip.resolution=.inf", "model.clip.resolution must be a finite number, got inf")],
)  # fmt: skip
def test_infinite_and_nan_settings_are_refused_before_anything_runs(tiny_dataset, setting, shown):
    with pytest.raises(ConfigError) as caught:
        resolve_run_config("catseg-tiny", None, tiny_overrides(tiny_dataset) + [setting])
    assert str(caught.value) == shown


def test_the_command_line_refuses_an_infinite_lr_in_one_line(cli, tmp_path, tiny_dataset):
    run = tmp_path / "run"
    result = cli(["train", "-c", "catseg-tiny", "-o", str(run), *_sets(tiny_overrides(tiny_dataset))
                  + ["--set", "solver.lr=.inf"]])  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: solver.lr must be a finite number, got inf"
    assert not run.exists(), "nothing is left behind"


def test_no_checkpoint_is_written_from_non_finite_weights(tmp_path, tiny_dataset, monkeypatch):
    original = Trainer.run_step

    def step_then_poison(self):
        result = original(self)
        if self.iteration == 6:  # the weights go bad in the step before a checkpoint, the loss never saw it
            parameter = next(self.model.parameters())
            with torch.no_grad():
                parameter.view(-1)[:3] = float("inf")
        return result

    monkeypatch.setattr(Trainer, "run_step", step_then_poison)
    run = tmp_path / "run"
    config, _ = prepare_run_config(run, "catseg-tiny", None, tiny_overrides(tiny_dataset))
    with pytest.raises(TrainingError) as caught:
        train(config, run)
    good = run / "checkpoints" / "checkpoint_0000003.pt"
    message = str(caught.value)
    assert message.startswith("iteration 6: parameter ") and " holds 3 non-finite values (NaN or inf)" in message
    assert message.endswith(f"no checkpoint written; the last good checkpoint is {good}")
    assert [it for it, _ in list_checkpoints(run)] == [3] and last_checkpoint(run) == good
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 6 and summary["stopped"] == message


def test_export_refuses_non_finite_weights(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    config, _ = prepare_run_config(run, "catseg-tiny", None, tiny_overrides(tiny_dataset, 3))
    train(config, run)
    data = read_checkpoint(run)
    name = next(k for k, v in data["model"].items() if v.is_floating_point())
    data["model"][name] = data["model"][name].clone().fill_(float("nan"))
    bad_run = tmp_path / "bad"
    write_checkpoint(bad_run, 3, {k: v for k, v in data.items() if k not in ("format", "version", "iteration")})
    out = tmp_path / "model.safetensors"
    with pytest.raises(CheckpointError, match=rf"\(iteration 3\) holds non-finite weights: {name} has \d+ NaN/inf"):
        export_checkpoint(bad_run, out)
    assert not out.exists()


# ---------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs (a tiny-run checkpoint is ~10 MB: the first fits, the second does not); skipped where
    mounting is not allowed."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:80]})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_training_in_one_line_and_keeps_the_finished_iterations(cli, small_disk, tiny_dataset):
    run = small_disk / "run"
    result = cli(["train", "-c", "catseg-tiny", "-o", str(run),
                  *_sets(tiny_overrides(tiny_dataset) + ["train.checkpoint_period=2"])])  # fmt: skip
    assert result.exit_code == 1
    good = run / "checkpoints" / "checkpoint_0000002.pt"
    assert result.stderr.splitlines()[-2] == (
        f"error: no space left on the device holding {run / 'checkpoints'} (writing checkpoint_0000004.pt); "
        f"free some space; the last good checkpoint is {good}"
    )
    assert "Traceback" not in result.stderr
    assert last_checkpoint(run) == good and read_checkpoint(good)["iteration"] == 2
    assert [r["iteration"] for r in read_csv(run / "log.csv")] == ["1", "2", "3", "4"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == 4 and summary["stopped"].startswith("no space left")
    assert not [p for p in run.rglob("*.tmp")]

    # export onto the same (now filled) disk: one line, no SafetensorError, no partial file
    filler = small_disk / "filler"
    with filler.open("wb") as f, pytest.raises(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    out = small_disk / "model.safetensors"
    exported = cli(["export", str(run), "-o", str(out)])
    assert exported.exit_code == 1
    assert exported.stderr.splitlines()[0] == (
        f"error: no space left on the device holding {small_disk} (writing model.safetensors); free some space"
    )
    assert not out.exists() and not list(small_disk.glob(".model.safetensors*"))


def test_injected_enospc_in_checkpoint_log_and_export_writes(tmp_path, tiny_dataset, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def save_until_full(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    run = tmp_path / "run"
    config, _ = prepare_run_config(run, "catseg-tiny", None, tiny_overrides(tiny_dataset))
    with pytest.raises(TrainingError, match=r"^no space left on the device holding .*checkpoint_0000006\.pt.*"
                                            r"the last good checkpoint is .*checkpoint_0000003\.pt$"):  # fmt: skip
        train(config, run)
    assert [r["iteration"] for r in read_csv(run / "log.csv")] == [str(i) for i in range(1, 7)]
    assert json.loads((run / "summary.json").read_text())["iterations"] == 6

    from safetensors import SafetensorError

    def full_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr("safetensors.torch.save_file", full_save_file)
    out = tmp_path / "model.safetensors"
    with pytest.raises(DiskFullError, match="^no space left on the device holding .* \\(writing model.safetensors\\)"):
        export_checkpoint(run, out)
    assert not out.exists() and not list(tmp_path.glob(".model.safetensors*"))


def test_a_log_row_that_does_not_fit_is_cut_off_whole(tmp_path, monkeypatch):
    import infoclip.training.run_log as run_log

    log = run_log.CsvLog(tmp_path / "log.csv")
    log.append({"iteration": 1, "loss": 0.5})
    real_open = Path.open

    class FullFile:
        def __init__(self, raw):
            self.raw = raw

        def __getattr__(self, name):
            return getattr(self.raw, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.raw.close()

        def write(self, data):
            self.raw.write(bytes(data[:3]))  # a partial row reaches the disk, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_full_for_appends(self, mode="r", *args, **kwargs):
        raw = real_open(self, mode, *args, **kwargs)
        return FullFile(raw) if "a" in mode else raw

    monkeypatch.setattr(Path, "open", open_full_for_appends)
    with pytest.raises(DiskFullError, match="writing log.csv"):
        log.append({"iteration": 2, "loss": 0.25})
    monkeypatch.undo()
    assert read_csv(tmp_path / "log.csv") == [{"iteration": "1", "loss": "0.5"}]


# ---------------------------------------------------------------- resume, overwrite


def test_resume_needs_a_checkpoint_and_a_fresh_start_needs_an_empty_folder(cli, tmp_path, tiny_dataset):
    missing = tmp_path / "missing"
    result = cli(["train", "-o", str(missing), "--resume"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"error: nothing to resume: {missing} holds no training checkpoint; start the run without --resume"
    )
    assert not missing.exists(), "a refused resume creates no folder"

    run = tmp_path / "run"
    args = ["train", "-c", "catseg-tiny", "-o", str(run), *_sets(tiny_overrides(tiny_dataset, 2))]
    run.mkdir()
    (run / "config.yaml").write_text("adapter: catseg\n")  # a run that died before its first checkpoint
    (run / "notes.txt").write_text("mine")
    result = cli(["train", "-o", str(run), "--resume"])
    assert result.exit_code == 1 and "stopped before its first checkpoint; start it again with --overwrite" in result.stderr
    result = cli(args)
    assert result.exit_code == 1 and "pass --resume to continue it, --overwrite to start it again" in result.stderr
    assert cli(args + ["--overwrite", "--resume"]).exit_code == 1
    result = cli(args + ["--overwrite"])
    assert result.exit_code == 0, result.stderr
    assert (run / "notes.txt").read_text() == "mine", "only the run's own files are cleared"
    assert json.loads((run / "summary.json").read_text())["iterations"] == 2


def test_clear_run_removes_everything_a_run_writes(tmp_path, tiny_dataset):
    from infoclip.training.run_folder import clear_run, holds_run

    run = tmp_path / "run"
    config, _ = prepare_run_config(run, "catseg-tiny", None, tiny_overrides(tiny_dataset, 2) + ["train.eval_period=2",
                                                                                                "train.tensorboard=true"])  # fmt: skip
    train(config, run)
    assert holds_run(run)
    clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == [".lock"], "a file the list of run files misses would stay"
    assert not holds_run(run)


# ---------------------------------------------------------------- the pieces


def test_stop_signals_raise_a_flag_then_stop_at_once(tmp_path):
    import os

    from infoclip.io_utils import atomic_write_text
    from infoclip.training.interrupt import GracefulStop, ImmediateStop

    heard = []
    before = signal.getsignal(signal.SIGTERM)
    target = atomic_write_text(tmp_path / "state.txt", "complete\n")
    with GracefulStop(on_first=heard.append) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM and heard == ["SIGTERM"]

        def write_interrupted(tmp):
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGINT)  # the second signal, in the middle of a write

        from infoclip.io_utils import atomic_write

        with pytest.raises(ImmediateStop):
            atomic_write(target, write_interrupted)
    assert signal.getsignal(signal.SIGTERM) is before, "handlers are restored"
    assert target.read_text() == "complete\n" and [p.name for p in tmp_path.iterdir()] == ["state.txt"]


def test_run_lock_is_reentrant_here_and_exclusive_across_processes(tmp_path):
    import sys

    from infoclip.errors import RunFolderBusyError
    from infoclip.training import run_lock

    run = tmp_path / "new"
    probe = [sys.executable, "-c", "import sys; from infoclip.training import run_lock; run_lock.acquire(sys.argv[1])",
             str(run)]  # fmt: skip
    with run_lock.hold(run):
        with run_lock.hold(run):  # the command line holds it, then train() again
            assert run_lock.is_held_here(run)
        other = subprocess.run(probe, capture_output=True, text=True)
        assert other.returncode == 1 and "RunFolderBusyError" in other.stderr and "is in use by process" in other.stderr
    assert not run.exists(), "a folder made only for the lock goes with it"
    assert subprocess.run(probe, capture_output=True).returncode == 0
    with pytest.raises(RunFolderBusyError, match="is in use"), run_lock.hold(tmp_path):
        fd_holder = subprocess.Popen([sys.executable, "-c", "import sys,time; from infoclip.training import run_lock; "
                                      "run_lock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(60)",
                                      str(tmp_path / "busy")], stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert fd_holder.stdout.readline().strip() == "held"
            run_lock.acquire(tmp_path / "busy")
        finally:
            fd_holder.kill()
            fd_holder.wait()


def test_loader_workers_are_capped_by_the_cpus_this_process_may_use(monkeypatch):
    import os

    from infoclip.training import data_stream

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    assert data_stream.available_cpus() == 2
    assert [data_stream.worker_count(n) for n in (0, 1, 2, 8)] == [0, 1, 2, 2]


def test_the_data_stream_gives_writable_arrays_and_no_warning(tiny_dataset):
    from infoclip.data import get_dataset
    from infoclip.training.augment import TrainAugmentation, resize_shortest_edge
    from infoclip.training.data_stream import AugmentedDataset

    image = np.zeros((40, 56, 3), np.uint8)
    resized, label = resize_shortest_edge(image, np.zeros((40, 56), np.int64), 48, 1333)
    assert resized.shape[:2] == (48, 67) and resized.flags.writeable
    # no colour jitter, no flip and a crop that needs no padding: the resized array itself reaches torch
    plain = TrainAugmentation(min_size=48, crop_size=48, size_divisibility=16, color_jitter=False, flip=False)
    stream = AugmentedDataset(get_dataset(str(tiny_dataset), split="train"), plain, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for position in range(4):
            stream[(position, position)]
