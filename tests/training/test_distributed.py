"""DDP on CPU: two gloo processes give the losses and gradients of one process holding the same global batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import tiny_overrides
from .ddp_worker import two_steps

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(world_size: int, run_dir: Path, out: Path, overrides: list[str], port: int) -> list[subprocess.Popen]:
    procs = []
    for rank in range(world_size):
        env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(run_dir), str(out), *overrides], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))  # fmt: skip
    return procs


def _wait(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output[-3000:]


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def test_two_gloo_processes_match_one_process_with_the_global_batch(tmp_path, tiny_dataset):
    # Batch 4 over 2 ranks (2 images each) against 1 process with all 4; validation sharded over the ranks.
    overrides = tiny_overrides(tiny_dataset) + ["solver.batch_size=4", "train.eval_period=2"]
    ddp = _launch(2, tmp_path / "ddp", tmp_path / "ddp.pt", overrides, _free_port())
    try:
        one = two_steps(str(tmp_path / "single"), overrides)  # in this process, while the ranks start
    finally:
        _wait(ddp)
    ranks = [torch.load(tmp_path / f"ddp.pt.rank{r}", weights_only=True) for r in (0, 1)]
    for step in range(2):
        for term, value in one["losses"][step].items():
            assert ranks[0]["losses"][step][term] == pytest.approx(value, rel=1e-5, abs=1e-6), (step, term)
            assert ranks[1]["losses"][step][term] == ranks[0]["losses"][step][term], "every rank logs the global mean"
    assert one["losses"][0]["distillation"] != 0, "the batch-axis Gram sees the 4 images of both ranks"
    assert ranks[0]["grad_norms"][0] == pytest.approx(one["grad_norms"][0], rel=1e-4)
    assert set(ranks[0]["grads"]) == set(one["grads"])
    for name, grad in one["grads"].items():
        assert _relative_difference(ranks[0]["grads"][name], grad) < 1e-3, name
        assert torch.equal(ranks[0]["grads"][name], ranks[1]["grads"][name]), "DDP averaged the gradients"
    for name, param in one["params"].items():
        assert torch.allclose(ranks[0]["params"][name], param, rtol=1e-4, atol=1e-6), name
    assert ranks[0]["val_images"] == one["val_images"] == 2
    assert ranks[0]["miou"] == pytest.approx(one["miou"], abs=1e-6), "sharded validation sums the confusion matrices"
    assert ranks[1]["miou"] is None, "only rank 0 reports validation"


@pytest.mark.slow
def test_torchrun_end_to_end(tmp_path, tiny_dataset):
    """`torchrun --nproc_per_node 2 -m infoclip_cli train ...` runs the same command as a single process."""
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    overrides = [arg for o in tiny_overrides(tiny_dataset, 3) for arg in ("--set", o)]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(_free_port()), "-m", "infoclip_cli", "train", "--config", "catseg-tiny", "--output-dir", str(run),
               "--no-progress", *overrides, "--set", "solver.batch_size=4"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert (run / "checkpoints" / "checkpoint_0000003.pt").is_file()
    from infoclip.training.checkpoint import read_checkpoint

    data = read_checkpoint(run)
    assert data["world_size"] == 2 and len(data["rng"]) == 2
    assert done.stdout.count("wrote the run to") == 1, "only rank 0 prints the summary"
