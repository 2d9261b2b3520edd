"""The evaluation tests use the synthetic datasets of the data tests and the tiny CAT-Seg weights and
CLI runner of the segmentation tests."""

from tests.data.conftest import benchmark_tree_master, datasets_root, writable_root  # noqa: F401
from tests.segmentation.conftest import run_cli, tiny_weights  # noqa: F401
