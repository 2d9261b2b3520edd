"""Configuration as data: YAML files, dotted ``--set`` overrides, and the resolved config of a run.

A config is a plain nested ``dict``. ``load_config`` reads YAML (``1e-4`` is a number, as in YAML 1.2)
and follows an optional top-level ``_base_`` key (a path relative to the file, or the name of a shipped
config) so presets can share a common part. ``apply_overrides`` applies ``a.b.c=value`` strings, where the value is parsed as
YAML (``1e-4`` -> float, ``false`` -> bool, ``[1, 2]`` -> list, anything else -> str).
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from infoclip.errors import ConfigError

BASE_KEY = "_base_"


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``1e-4`` as a number.

    PyYAML follows YAML 1.1, whose float pattern needs a dot, so ``lr: 1e-4`` would load as the string
    ``"1e-4"``. YAML 1.2 (and every user) reads it as a float; this loader adds that pattern.
    """


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def yaml_load(text: str) -> Any:
    """Parse YAML text with ``ConfigLoader`` (safe; exponent floats without a dot are numbers)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - ConfigLoader is a SafeLoader


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new dict: ``update`` merged into ``base``, recursing into nested dicts."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | os.PathLike[str], _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config, resolving ``_base_`` inheritance.

    Raises:
        ConfigError: the file is missing, is not YAML mapping, or its bases form a cycle.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.resolve() in _seen:
        raise ConfigError(f"config inheritance cycle through {path}")
    try:
        data = yaml_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a YAML mapping at the top level, not {type(data).__name__}")
    nan = _first_nan(data)
    if nan is not None:
        raise ConfigError(f"{path}: {nan.lstrip('.')} is NaN (not a number); give a number")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
    return deep_merge(load_config(base_path, _seen + (path.resolve(),)), data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b.c=value"`` into ``(["a", "b", "c"], parsed_value)``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} must look like key.subkey=value")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    nan = _first_nan(value)
    if nan is not None:
        where = key + nan
        raise ConfigError(f"override {text!r}: {where} is NaN (not a number); give a number")
    return key.split("."), value


def _first_nan(value: Any) -> str | None:
    """The dotted position of the first NaN in a parsed value (``""`` for the value itself), else ``None``.

    NaN is never a meaningful setting and compares false with every bound, so range checks let it through.
    """
    return find_leaf(value, lambda leaf: isinstance(leaf, float) and math.isnan(leaf))


def find_leaf(value: Any, test: Callable[[Any], bool], where: str = "") -> str | None:
    """The position (``.a.b[2]``; ``""`` for ``value`` itself) of the first leaf of a nested mapping/list for
    which ``test`` is true, else ``None``."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return where if test(value) else None
    for key, item in items:
        found = find_leaf(item, test, f"{where}.{key}" if not isinstance(key, int) else f"{where}[{key}]")
        if found is not None:
            return found
    return None


def _merge_checked(node: dict[str, Any], update: Mapping[str, Any], text: str, where: str) -> None:
    """Strictly merge a mapping override into an existing section: every key must exist there (recursively),
    so ``solver={lrr: 1}`` is refused like ``solver.lrr=1`` instead of replacing the whole section."""
    for key, value in update.items():
        if key not in node:
            known = ", ".join(sorted(map(str, node))) or "(none)"
            raise ConfigError(f"override {text!r}: unknown key {key!r} in {where!r}; keys here: {known}")
        if isinstance(value, Mapping) and isinstance(node[key], dict):
            _merge_checked(node[key], value, text, f"{where}.{key}")
        else:
            node[key] = copy.deepcopy(value)


def apply_overrides(config: Mapping[str, Any], overrides: Iterable[str], strict: bool = True) -> dict[str, Any]:
    """Return a copy of ``config`` with each ``key.path=value`` override applied.

    With ``strict`` (the default) an override may only replace a key that exists, so a typo such as
    ``solver.lrr=1`` is an error naming the closest keys rather than a silently ignored setting.
    """
    out = copy.deepcopy(dict(config))
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = out
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                if strict:
                    where = ".".join(parts[: depth + 1])
                    raise ConfigError(f"override {text!r}: no config section {where!r}")
                node.setdefault(part, {})
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"override {text!r}: {'.'.join(parts[:-1])!r} is not a section")
        if strict and parts[-1] not in node:
            known = ", ".join(sorted(node)) or "(none)"
            raise ConfigError(f"override {text!r}: unknown key {parts[-1]!r}; keys here: {known}")
        if strict and isinstance(value, Mapping) and isinstance(node.get(parts[-1]), dict):
            _merge_checked(node[parts[-1]], value, text, ".".join(parts))
        else:
            node[parts[-1]] = value
    return out


def get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    """Read ``config["a"]["b"]`` as ``get(config, "a.b")``; ``default`` if any part is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def save_config(config: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as YAML (key order kept), atomically."""
    from infoclip.io_utils import atomic_write_text

    return atomic_write_text(Path(path), yaml.safe_dump(dict(config), sort_keys=False))
