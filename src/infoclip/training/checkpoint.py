"""Training checkpoints: written atomically, found through a ``last_checkpoint`` pointer, read safely.

A checkpoint is a ``torch.save`` dict holding only plain containers, numbers, strings and tensors, so it
loads with ``torch.load(weights_only=True)``:

* ``format`` (``"infoclip-train-checkpoint"``), ``version``, ``iteration`` (iterations completed);
* ``config``: the resolved run config; ``classes``: the training vocabulary;
* ``model``: the student's full state dict; ``lpam``: the shared LPAM's (absent for the baseline);
* ``optimizer``, ``scheduler``, ``scaler`` state dicts;
* ``rng``: one dict of RNG states per rank (torch CPU, CUDA, Python ``random``, NumPy);
* ``teacher_fingerprint``: a checksum of the frozen teacher, rebuilt deterministically on resume and checked.

The data position needs no state of its own: the stream is addressed by iteration (``data_stream``).
Files: ``RUN/checkpoints/checkpoint_<iteration:07d>.pt`` and ``RUN/last_checkpoint`` holding the relative
path of the newest one. The pointer is rewritten only after the checkpoint file is complete.
"""

from __future__ import annotations

import copy
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from infoclip.errors import CheckpointError
from infoclip.io_utils import atomic_write, atomic_write_text

FORMAT = "infoclip-train-checkpoint"
POINTER = "last_checkpoint"
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^checkpoint_(\d+)\.pt$")


def checkpoint_name(iteration: int) -> str:
    """File name of the checkpoint written after ``iteration`` iterations."""
    return f"checkpoint_{iteration:07d}.pt"


def capture_rng_state() -> dict[str, Any]:
    """This process's RNG states as weights-only-loadable values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state``."""
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(run_dir: str | os.PathLike[str], iteration: int, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as the checkpoint of ``iteration`` (atomically), then move the pointer to it."""
    from infoclip._version import __version__

    run_dir = Path(run_dir)
    relative = Path(CHECKPOINT_DIR) / checkpoint_name(iteration)
    data = {"format": FORMAT, "version": __version__, "iteration": int(iteration), **payload}
    path = atomic_write(run_dir / relative, lambda tmp: _torch_save(data, tmp))
    atomic_write_text(run_dir / POINTER, relative.as_posix() + "\n")
    return path


def _torch_save(data: Mapping[str, Any], path: Path) -> None:
    # Through a file object this function owns: given a path, torch's writer keeps its file open when a write
    # fails (a full disk), and the removed temporary file would go on taking the space the run needs next.
    with path.open("wb") as f:
        torch.save(data, f)


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(iteration, path)`` of every checkpoint file of a run, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_checkpoints(run_dir: str | os.PathLike[str], keep: int | None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (never the one the pointer names); return the deleted."""
    if keep is None:
        return []
    current = last_checkpoint(run_dir)
    deleted = []
    for _, path in list_checkpoints(run_dir)[:-keep]:
        if current is not None and path.resolve() == current.resolve():
            continue
        path.unlink(missing_ok=True)
        deleted.append(path)
    return deleted


def last_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint ``RUN/last_checkpoint`` points at, or ``None`` if the run has none yet."""
    pointer = Path(run_dir) / POINTER
    if not pointer.is_file():
        return None
    target = Path(run_dir) / pointer.read_text(encoding="utf-8").strip()
    if not target.is_file():
        raise CheckpointError(
            f"{pointer} names {target.name}, which does not exist; point it at one of "
            f"{[p.name for _, p in list_checkpoints(run_dir)] or 'the checkpoints'} or start a new run"
        )
    return target


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A run folder (its last checkpoint) or a checkpoint file -> the checkpoint file; ``CheckpointError`` else."""
    path = Path(path)
    if path.is_dir():
        found = last_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path} holds no training checkpoint (no {POINTER} file); is it a run folder?")
        return found
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint (weights-only unpickling); ``CheckpointError`` if it is not one."""
    from infoclip.weights import torch_load_checkpoint

    path = resolve_checkpoint(path)
    try:
        data = torch_load_checkpoint(path, map_location)
    except CheckpointError as exc:
        raise CheckpointError(
            f"{path} is not an infoclip training checkpoint (it cannot be unpickled with weights_only=True); "
            "pass a run folder or its checkpoints/*.pt"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an infoclip training checkpoint (no {FORMAT!r} marker); "
            "pass a run folder written by `infoclip train` or one of its checkpoints/*.pt"
        )
    return data


def tensor_fingerprint(module: torch.nn.Module) -> list[float]:
    """A cheap checksum of a module's parameters and buffers: [sum, sum of squares, count] in float64."""
    total = torch.zeros((), dtype=torch.float64)
    squares = torch.zeros((), dtype=torch.float64)
    count = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            value = tensor.detach().to("cpu", torch.float64)
            total += value.sum()
            squares += (value * value).sum()
            count += value.numel()
    return [float(total), float(squares), float(count)]


def restore_optimizer_state(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    data: Mapping[str, Any],
    source: str | os.PathLike[str],
) -> None:
    """Load a checkpoint's ``optimizer`` and ``scheduler`` state into the ones this run built from its config.

    Moments and step counts come from the checkpoint; hyperparameters (lr, weight decay, schedule length)
    from this run's config, so that a resume with e.g. ``--set solver.iterations=...`` follows the new schedule.
    With an unchanged config both are the same numbers. ``TrainingError`` when the groups do not fit.
    """
    from infoclip.errors import TrainingError

    hyper = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    lambdas = copy.deepcopy(scheduler.lr_lambdas)  # load_state_dict overwrites them in place
    try:
        optimizer.load_state_dict(data["optimizer"])
    except (ValueError, KeyError) as exc:
        raise TrainingError(f"{source}: the optimizer state does not fit this run's parameter groups ({exc})") from exc
    scheduler.load_state_dict(data["scheduler"])
    scheduler.lr_lambdas = lambdas
    scheduler.base_lrs = [h["initial_lr"] for h in hyper]
    for group, fresh, factor in zip(optimizer.param_groups, hyper, lambdas):
        group.update(fresh)
        group["lr"] = fresh["initial_lr"] * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
