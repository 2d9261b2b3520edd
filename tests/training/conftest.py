"""Shared fixtures of the training tests: a synthetic custom dataset and tiny-run overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

CLASSES = ["cat", "dog", "sofa", "sky", "grass"]


def tiny_overrides(dataset: Path, iterations: int = 6) -> list[str]:
    """``--set`` strings for a tiny run on ``dataset``: 48 px crops, batch 2, no workers, fast validation.

    Append more ``key=value`` strings to change them: later overrides win.
    """
    values: dict[str, object] = {
        "data.train": str(dataset),
        "data.num_workers": 0,
        "data.min_size": 48,
        "data.crop_size": 48,
        "data.size_divisibility": 16,
        "data.val_protocol": "whole",
        "data.val_limit": 2,
        "solver.iterations": iterations,
        "solver.batch_size": 2,
        "train.checkpoint_period": 3,
        "train.eval_period": 0,
        "train.log_period": 1,
        "train.tensorboard": False,
    }
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A custom dataset (the data helper's on-disk layout) with its own 5-class vocabulary, 4 images."""
    from infoclip.data.synthetic import write_custom_dataset

    return write_custom_dataset(tmp_path_factory.mktemp("data") / "toyroom", CLASSES, num_images=4, base_size=(40, 56))
