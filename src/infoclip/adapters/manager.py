"""The plugin manager: built-in adapters, third-party adapters from entry points, environment switches.

Loading order:

1. the built-in plugin modules in ``DEFAULT_PLUGINS``, registered by module name;
2. third-party plugins from the entry-point group ``infoclip`` (skipped when
   ``INFOCLIP_DISABLE_PLUGIN_AUTOLOAD=1``).

``INFOCLIP_LOAD_ADAPTERS=catseg,my_adapter`` keeps only the named adapters (built-in or third-party);
``INFOCLIP_TRACE_HOOKS=1`` prints every hook call to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from infoclip.adapters import hookspecs
from infoclip.adapters.contract import Adapter
from infoclip.errors import AdapterError

PROJECT = "infoclip"
ENTRY_POINT_GROUP = "infoclip"
DEFAULT_PLUGINS: tuple[str, ...] = (
    "infoclip.adapters.catseg",
    "infoclip.adapters.fcclip",
    "infoclip.data.builtin",
    "infoclip.named_weights",
)

_pm: pluggy.PluginManager | None = None
_entry_point_dists: dict[str, tuple[str, str]] = {}


def _env_list(name: str) -> list[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


def _tracing() -> bool:
    return os.environ.get("INFOCLIP_TRACE_HOOKS", "") not in ("", "0")


def _new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise AdapterError(f"built-in plugin {module_name} failed to import: {exc}; reinstall infoclip") from exc
        pm.register(module, name=module_name)
    if os.environ.get("INFOCLIP_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0"):
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not hide which one it is
                raise AdapterError(
                    f"plugin {ep.name!r} (entry point {ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                    "uninstall it or set INFOCLIP_DISABLE_PLUGIN_AUTOLOAD=1"
                ) from exc
            pm.register(plugin, name=ep.name)
            dist = getattr(ep, "dist", None)
            if dist is not None:
                _entry_point_dists[ep.name] = (dist.metadata["Name"], dist.version)
    pm.check_pending()
    if _tracing():

        def before(hook_name, hook_impls, kwargs):  # noqa: ANN001
            print(f"[infoclip] hook {hook_name} -> {[impl.plugin_name for impl in hook_impls]}", file=sys.stderr)

        def after(outcome, hook_name, hook_impls, kwargs):  # noqa: ANN001
            pass

        pm.add_hookcall_monitoring(before, after)
    return pm


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _pm
    if _pm is None:
        _pm = _new_plugin_manager()
    return _pm


def reset_plugin_manager() -> None:
    """Forget the plugin manager so that the next use reloads plugins (tests, env changes)."""
    global _pm
    _pm = None


def collect_hook_results(hook_name: str) -> list[tuple[str, object]]:
    """Call the argument-less hook ``hook_name`` on every plugin separately and flatten the returned lists.

    Returns ``(plugin_name, item)`` pairs. Calling each implementation on its own (rather than through
    ``pm.hook``) lets an exception name the plugin that raised it.
    """
    pm = get_plugin_manager()
    caller = getattr(pm.hook, hook_name)
    results: list[tuple[str, object]] = []
    for impl in caller.get_hookimpls():
        if _tracing():  # these calls bypass pm.hook, so its call monitoring does not see them
            print(f"[infoclip] hook {hook_name} -> {impl.plugin_name}", file=sys.stderr)
        try:
            value = impl.function()
        except Exception as exc:
            raise AdapterError(
                f"plugin {impl.plugin_name!r} raised in {hook_name}: {type(exc).__name__}: {exc}"
            ) from exc
        for item in value or []:
            results.append((impl.plugin_name, item))
    return results


def collect_named(hook_name: str, expected: type, error: type[Exception], kind: str) -> dict[str, Any]:
    """Results of a registration hook by their ``.name``, each checked to be an ``expected`` instance.

    ``kind`` names the thing in messages ("adapter", "dataset"); ``error`` is the exception type raised
    for a wrong return type or a name registered twice, each message naming the plugin.
    """
    found: dict[str, Any] = {}
    for plugin_name, item in collect_hook_results(hook_name):
        if not isinstance(item, expected):
            raise error(
                f"plugin {plugin_name!r} returned {type(item).__name__} from {hook_name}; "
                f"expected {expected.__module__}.{expected.__qualname__}"
            )
        if item.name in found:
            raise error(f"{kind} name {item.name!r} is registered twice (second by plugin {plugin_name!r})")
        found[item.name] = item
    return found


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


@dataclass
class PluginInfo:
    """One row of ``infoclip adapters list``."""

    name: str
    version: str
    source: str
    hooks: list[str]
    adapters: list[str]
    datasets: list[str]
    weights: list[str] = field(default_factory=list)


def plugin_info() -> list[PluginInfo]:
    """Name, version, origin, implemented hooks, and contributed adapters, datasets and weights names of every plugin."""
    from infoclip import __version__

    pm = get_plugin_manager()
    contributed: dict[str, dict[str, list[str]]] = {}
    for hook_name in ("infoclip_register_adapters", "infoclip_register_datasets", "infoclip_register_weights"):
        for plugin_name, item in collect_hook_results(hook_name):
            contributed.setdefault(hook_name, {}).setdefault(plugin_name, []).append(getattr(item, "name", "?"))
    rows = []
    for name, plugin in pm.list_name_plugin():
        if name in _entry_point_dists:
            dist_name, version = _entry_point_dists[name]
            source = f"{dist_name} (entry point)"
        elif name in DEFAULT_PLUGINS:
            version, source = __version__, "built-in"
        else:
            version, source = getattr(plugin, "__version__", ""), "registered at run time"
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        adapter_names = contributed.get("infoclip_register_adapters", {}).get(name, [])
        dataset_names = contributed.get("infoclip_register_datasets", {}).get(name, [])
        weight_names = contributed.get("infoclip_register_weights", {}).get(name, [])
        rows.append(PluginInfo(name, str(version), source, hooks, adapter_names, dataset_names, weight_names))
    return rows
