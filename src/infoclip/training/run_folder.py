"""What a run folder holds, and starting a run again from scratch in one (``overwrite``).

Only the files a training run writes are removed; anything else a user put in the folder stays.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from infoclip.training.checkpoint import CHECKPOINT_DIR, POINTER
from infoclip.training.run_log import PLOT, TRAIN_LOG, VAL_LOG

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.json"
VAL_DIR = "val"

#: every file and folder ``infoclip train`` writes into a run folder (the lock file excepted)
RUN_FILES = (
    CONFIG_FILE, POINTER, CHECKPOINT_DIR, SUMMARY_FILE, METRICS_FILE, VAL_DIR,
    TRAIN_LOG, VAL_LOG, PLOT, "tensorboard",
)  # fmt: skip


def holds_run(run_dir: str | os.PathLike[str]) -> bool:
    """Does ``run_dir`` hold (the start of) a training run: a saved config or a checkpoint pointer?"""
    run_dir = Path(run_dir)
    return (run_dir / CONFIG_FILE).exists() or (run_dir / POINTER).exists()


def clear_run(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Delete what a training run wrote into ``run_dir``; returns the removed paths."""
    removed = []
    for name in RUN_FILES:
        path = Path(run_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed
