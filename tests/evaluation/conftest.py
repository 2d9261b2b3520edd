"""The evaluation tests use the synthetic datasets of the data tests."""

from tests.data.conftest import benchmark_tree_master, datasets_root, writable_root  # noqa: F401
