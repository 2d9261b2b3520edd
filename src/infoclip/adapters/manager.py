"""Adapter lookup: every registered ``Adapter`` by name, filtered by ``INFOCLIP_LOAD_ADAPTERS``.

The plugin manager itself (loading order, entry points, ``INFOCLIP_DISABLE_PLUGIN_AUTOLOAD``,
``INFOCLIP_TRACE_HOOKS``) is ``infoclip.plugins``; its functions are re-exported here for older imports.
``INFOCLIP_LOAD_ADAPTERS=catseg,my_adapter`` keeps only the named adapters (built-in or third-party).
"""

from __future__ import annotations

import os

from infoclip.adapters.contract import Adapter
from infoclip.errors import AdapterError
from infoclip.plugins import (
    DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP,
    PluginInfo,
    collect_hook_results,
    collect_named,
    get_plugin_manager,
    plugin_info,
    reset_plugin_manager,
)

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "adapters",
    "collect_hook_results",
    "collect_named",
    "get_adapter",
    "get_plugin_manager",
    "plugin_info",
    "reset_plugin_manager",
]


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def adapters() -> dict[str, Adapter]:
    """All registered adapters by name, filtered by ``INFOCLIP_LOAD_ADAPTERS`` when it is set."""
    found: dict[str, Adapter] = collect_named("infoclip_register_adapters", Adapter, AdapterError, "adapter")
    only = _env_list("INFOCLIP_LOAD_ADAPTERS")
    if only is not None:
        found = {name: a for name, a in found.items() if name in only}
    return found


def get_adapter(name: str) -> Adapter:
    """The adapter called ``name``; ``AdapterError`` listing the known ones otherwise."""
    known = adapters()
    if name not in known:
        listed = ", ".join(sorted(known)) or "none"
        hint = " (INFOCLIP_LOAD_ADAPTERS is set)" if "INFOCLIP_LOAD_ADAPTERS" in os.environ else ""
        raise AdapterError(f"unknown adapter {name!r}; installed adapters: {listed}{hint}")
    return known[name]
