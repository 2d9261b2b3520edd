"""Checks shared by the adapters' ``model:`` config validation: unknown keys, and typed values named by key.

Every message names the key as ``model.<path>`` and says what was expected, so a bad preset, user YAML or
``--set`` override fails with one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infoclip.errors import ConfigError


def unknown_keys(schema: Mapping[str, Any], given: Mapping[str, Any], prefix: str = "model.") -> list[str]:
    """Dotted names of the keys of ``given`` that ``schema`` (a nested mapping of defaults) does not have.

    Raises:
        ConfigError: a key whose schema value is a mapping is given something else.
    """
    unknown = []
    for key, value in given.items():
        if key not in schema:
            unknown.append(prefix + str(key))
        elif isinstance(schema[key], Mapping):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{prefix}{key} must be a mapping, got {value!r}")
            unknown.extend(unknown_keys(schema[key], value, f"{prefix}{key}."))
    return unknown


def fail(key: str, expected: str, value: Any) -> None:
    """Raise ``ConfigError("model.<key> must be <expected>, got <value>")``."""
    raise ConfigError(f"model.{key} must be {expected}, got {value!r}")


def check_int(value: Any, key: str, minimum: int = 0) -> int:
    """``value`` if it is an integer (not a bool) >= ``minimum``, else ``ConfigError`` naming ``model.<key>``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(key, f"an integer >= {minimum}", value)
    return value
