"""Real `infoclip train` processes: SIGINT/SIGTERM stop gracefully and resume exactly; one process per run folder.

The runs that get signals or hold the lock are console-script subprocesses (signal handling, the lock and the
exit codes are process-level behaviour); resumes and reference runs run in process to keep the tests short.
The learning rate is constant, so a run stopped at any iteration and resumed with a shorter
``solver.iterations`` follows the same schedule as an uninterrupted run of that length.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from infoclip.training.run_log import read_csv

from .conftest import cli, tiny_overrides  # noqa: F401 (cli is a fixture)

LOSSES = ("loss_total", "loss_task", "loss_compression", "loss_distillation")


def _sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def _train_args(run: Path, dataset: Path, iterations: int, *extra: str) -> list[str]:
    overrides = tiny_overrides(dataset, iterations) + ["solver.schedule=constant", "train.checkpoint_period=100000",
                                                       *extra]  # fmt: skip
    return ["train", "--config", "catseg-tiny", "--output-dir", str(run), *_sets(overrides)]


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    environment = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **(env or {}))
    environment.pop("INFOCLIP_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "infoclip_cli", *args], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for_line(proc: subprocess.Popen, marker: str, timeout: float = 240.0) -> list[str]:
    """Read the process's stderr until a line containing ``marker``; returns the lines read."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    proc.kill()
    raise AssertionError(f"no line with {marker!r} on stderr; got:\n{''.join(lines)[-3000:]}")


def _finish(proc: subprocess.Popen, timeout: float = 240.0) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _losses(run: Path) -> list[tuple[float, ...]]:
    return [tuple(float(row[k]) for k in LOSSES) for row in read_csv(run / "log.csv")]


def _no_temporary_files(run: Path) -> None:
    leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, leftovers


TOTAL = 24  # the length of the uninterrupted reference run; the signals arrive well before it


@pytest.fixture(scope="module")
def reference_losses(tmp_path_factory, tiny_dataset):
    run = tmp_path_factory.mktemp("reference") / "run"
    code, _, err = _finish(_start(_train_args(run, tiny_dataset, TOTAL)))
    assert code == 0, err[-3000:]
    return _losses(run)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_checkpoints_and_resume_matches_an_uninterrupted_run(
    tmp_path, tiny_dataset, signum, cli, reference_losses
):
    run = tmp_path / "run"
    proc = _start(_train_args(run, tiny_dataset, 100000))
    _wait_for_line(proc, "[3/100000]")
    proc.send_signal(signum)
    code, _, err = _finish(proc)
    name = signal.Signals(signum).name
    assert code == 128 + signum, err[-3000:]
    assert f"{name} received: finishing the current iteration" in err
    stopped = [line for line in err.splitlines() if line.startswith("stopped after iteration")]
    assert len(stopped) == 1, err[-3000:]
    done = int(stopped[0].split()[3])
    checkpoint = run / "checkpoints" / f"checkpoint_{done:07d}.pt"
    assert f"checkpoint: {checkpoint}" in stopped[0]
    assert err.rstrip().splitlines()[-1] == f"resume with: infoclip train --output-dir {run} --resume"
    assert (run / "last_checkpoint").read_text().strip() == f"checkpoints/{checkpoint.name}"
    assert torch.load(checkpoint, weights_only=True)["iteration"] == done
    summary = json.loads((run / "summary.json").read_text())
    assert summary["iterations"] == done and name in summary["stopped"]
    assert len(read_csv(run / "log.csv")) == done, "every finished iteration is logged"
    _no_temporary_files(run)

    # `--resume` (the printed command, with the reference's schedule length) continues exactly
    assert done < TOTAL
    resumed = cli(["train", "--output-dir", str(run), "--resume", "--set", f"solver.iterations={TOTAL}"])
    assert resumed.exit_code == 0, resumed.stderr[-3000:]
    assert resumed.stdout.rstrip().splitlines()[-1] == f"wrote the run to {run}", "the last line says where"
    assert _losses(run) == reference_losses, "identical losses, iteration by iteration"


def test_a_second_signal_stops_at_once_without_damage(tmp_path, tiny_dataset, cli):
    run = tmp_path / "run"
    proc = _start(_train_args(run, tiny_dataset, 100000, "train.checkpoint_period=2"))
    _wait_for_line(proc, "checkpoint checkpoints/checkpoint_0000002.pt")
    proc.send_signal(signal.SIGINT)
    _wait_for_line(proc, "SIGINT received")
    proc.send_signal(signal.SIGINT)
    code, _, err = _finish(proc)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err
    _no_temporary_files(run)
    pointer = run / "last_checkpoint"
    named = run / pointer.read_text().strip()
    assert torch.load(named, weights_only=True)["iteration"] >= 2, "the pointer names a complete checkpoint"
    # and the run goes on from it
    iteration = torch.load(named, weights_only=True)["iteration"]
    resumed = cli(["train", "--output-dir", str(run), "--resume", "--set", f"solver.iterations={iteration + 1}"])
    assert resumed.exit_code == 0, resumed.stderr[-3000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_ranks_stop_together_when_only_one_gets_the_signal(tmp_path, tiny_dataset):
    run = tmp_path / "run"
    port = str(_free_port())
    args = _train_args(run, tiny_dataset, 100000, "solver.batch_size=4")
    ranks = [
        _start(args, {"RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                      "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port})  # fmt: skip
        for r in (0, 1)
    ]
    try:
        _wait_for_line(ranks[0], "[2/100000]")
        ranks[1].send_signal(signal.SIGTERM)  # a scheduler pre-empting one process first
        results = [_finish(proc) for proc in ranks]
    finally:
        for proc in ranks:
            proc.kill()
    assert [code for code, _, _ in results] == [143, 143], results[0][2][-2000:] + results[1][2][-2000:]
    stopped = [line for line in results[0][2].splitlines() if line.startswith("stopped after iteration")]
    done = int(stopped[0].split()[3])
    assert torch.load(run / "checkpoints" / f"checkpoint_{done:07d}.pt", weights_only=True)["world_size"] == 2
    assert "resume with: torchrun --nproc_per_node 2 -m infoclip_cli train" in results[0][2]
    assert "stopped after" not in results[1][2], "rank 0 speaks for the run"


def test_one_training_process_per_run_folder_and_a_killed_one_leaves_no_lock(tmp_path, tiny_dataset, cli):
    run = tmp_path / "run"
    first = _start(_train_args(run, tiny_dataset, 100000, "train.checkpoint_period=1"))
    try:
        _wait_for_line(first, "checkpoint checkpoints/checkpoint_0000001.pt")
        second = _start(["train", "--output-dir", str(run), "--resume"])
        code, out, err = _finish(second)
        assert code == 1
        assert err.splitlines()[0] == f"error: {run} is in use by process {first.pid} on {socket.gethostname()} " \
            "training into it; wait for that run to end or choose another run folder"  # fmt: skip
        assert out == ""
        fresh = cli(_train_args(run, tiny_dataset, 3, "data.train=/nowhere"))
        assert fresh.exit_code == 1 and "is in use by process" in fresh.stderr, "refused before the folder is read"
    finally:
        first.kill()  # SIGKILL: no handler runs, the kernel drops the lock
        first.wait()
    done = torch.load(run / (run / "last_checkpoint").read_text().strip(), weights_only=True)["iteration"]
    resumed = cli(["train", "--output-dir", str(run), "--resume", "--set", f"solver.iterations={done + 1}"])
    assert resumed.exit_code == 0, resumed.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["iterations"] == done + 1
