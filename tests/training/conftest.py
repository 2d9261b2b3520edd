"""Shared fixtures of the training tests: a synthetic custom dataset and tiny-run overrides."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from infoclip_cli.main import main

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


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(args) -> Ran``: run ``infoclip ARGS`` as the console script does, errors mapped to exit codes."""
    monkeypatch.delenv("INFOCLIP_DEBUG", raising=False)

    def run(args: list[str]) -> Ran:
        monkeypatch.setattr(sys, "argv", ["infoclip", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


