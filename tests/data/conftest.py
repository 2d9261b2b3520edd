"""Synthetic datasets in the real on-disk layouts, shared by the data and evaluation tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infoclip.data.synthetic import write_benchmark_tree


@pytest.fixture(scope="session")
def benchmark_tree_master(tmp_path_factory) -> Path:
    """All seven built-in datasets, 3 labelled images per split; written once, never modified."""
    root = tmp_path_factory.mktemp("datasets")
    write_benchmark_tree(root, num_images=3, seed=1)
    return root


@pytest.fixture
def datasets_root(benchmark_tree_master, monkeypatch) -> Path:
    """The pristine tree as the datasets root (read-only use)."""
    monkeypatch.setenv("INFOCLIP_DATASETS", str(benchmark_tree_master))
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    return benchmark_tree_master


@pytest.fixture
def writable_root(benchmark_tree_master, tmp_path, monkeypatch) -> Path:
    """A private copy of the tree as the datasets root, for tests that break it."""
    root = tmp_path / "datasets"
    shutil.copytree(benchmark_tree_master, root)
    monkeypatch.setenv("INFOCLIP_DATASETS", str(root))
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    return root
