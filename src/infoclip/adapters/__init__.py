"""Adapters: pluggy plugins that attach the InfoCLIP objective to OVSS frameworks.

Names load on first use so that ``import infoclip`` (and ``infoclip --version``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from infoclip.hookspecs import hookimpl, hookspec

_LAZY = {
    "Adapter": "infoclip.adapters.contract",
    "DenseEmbeddings": "infoclip.adapters.contract",
    "OVSSModel": "infoclip.adapters.contract",
    "TrainOutput": "infoclip.adapters.contract",
    "adapters": "infoclip.adapters.manager",
    "get_adapter": "infoclip.adapters.manager",
    "get_plugin_manager": "infoclip.plugins",
    "plugin_info": "infoclip.plugins",
    "reset_plugin_manager": "infoclip.plugins",
}

__all__ = [*_LAZY, "hookimpl", "hookspec"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'infoclip.adapters' has no attribute {name!r}")
