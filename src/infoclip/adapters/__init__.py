"""Adapters: pluggy plugins that attach the InfoCLIP objective to OVSS frameworks."""

from infoclip.adapters.contract import Adapter, DenseEmbeddings, OVSSModel, TrainOutput
from infoclip.adapters.hookspecs import hookimpl, hookspec
from infoclip.adapters.manager import adapters, get_adapter, get_plugin_manager, plugin_info, reset_plugin_manager

__all__ = [
    "Adapter",
    "DenseEmbeddings",
    "OVSSModel",
    "TrainOutput",
    "adapters",
    "get_adapter",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "plugin_info",
    "reset_plugin_manager",
]
