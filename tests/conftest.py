"""Test-wide settings: CPU only, one thread, no network, no third-party plugins."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ["INFOCLIP_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.pop("INFOCLIP_LOAD_ADAPTERS", None)

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_plugin_manager():
    """Each test sees a plugin manager built from the current environment."""
    from infoclip.adapters import reset_plugin_manager

    reset_plugin_manager()
    yield
    reset_plugin_manager()
