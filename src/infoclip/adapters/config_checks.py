"""Checks shared by the adapters' ``model:`` config validation: unknown keys, and typed values named by key.

Every message names the key as ``model.<path>`` and says what was expected, so a bad preset, user YAML or
``--set`` override fails with one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infoclip.config import deep_merge, load_config
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


def check_open_clip_section(
    settings: Mapping[str, Any], section: str, architecture: str = "an open_clip architecture name"
) -> None:
    """Check what every open_clip-based adapter's CLIP settings hold: ``name`` (``architecture``), ``pretrained``
    (tag, file or null), ``init_seed`` (integer or null) and ``pixel_mean`` / ``pixel_std`` (three numbers each on
    the 0-255 scale, std positive).

    Args:
        settings: the adapter's CLIP settings.
        section: where the adapter keeps them in its ``model:`` config (named in messages); the adapter owns
            its schema, so it says.

    Raises:
        ConfigError: the first value of the wrong kind (the message names ``model.<section>.<key>``).
    """
    if not isinstance(settings["name"], str) or not settings["name"]:
        fail(f"{section}.name", architecture, settings["name"])
    pretrained = settings["pretrained"]
    if pretrained is not None and (not isinstance(pretrained, str) or not pretrained):
        fail(f"{section}.pretrained", "an open_clip tag, a weights file path, or null", pretrained)
    if settings["init_seed"] is not None:
        check_int(settings["init_seed"], f"{section}.init_seed")
    for key in ("pixel_mean", "pixel_std"):
        values = settings[key]
        numbers = isinstance(values, (list, tuple)) and len(values) == 3
        if not (numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            fail(f"{section}.{key}", "three numbers (R, G, B on the 0-255 scale)", values)
    if any(v <= 0 for v in settings["pixel_std"]):
        fail(f"{section}.pixel_std", "positive numbers", settings["pixel_std"])


def check_prompt_templates(templates: Any) -> None:
    """``model.prompt_templates`` must be a non-empty list of strings with exactly one ``{}`` each (``ConfigError``)."""
    if not (isinstance(templates, (list, tuple)) and templates and all(isinstance(t, str) and t.count("{}") == 1 for t in templates)):
        fail("prompt_templates", "a non-empty list of strings with exactly one '{}' each", templates)


class ModelSchema:
    """The ``model:`` section of an adapter's configs: its documented preset is the schema and the defaults.

    Every model config of the adapter is merged onto the schema preset's ``model:`` section, and keys it does
    not have are refused (a typo never passes silently; weights files always store complete configs).

    Args:
        config_dir: the adapter's folder of preset YAML files (``<name>.yaml``).
        schema_preset: the preset whose ``model:`` section is the schema (e.g. ``catseg-vit-b16``).
        framework: the framework's display name for messages (``CAT-Seg``).
    """

    def __init__(self, config_dir: Path, schema_preset: str, framework: str) -> None:
        self.presets: dict[str, Path] = {p.stem: p for p in sorted(Path(config_dir).glob("*.yaml"))}
        self.schema_preset = schema_preset
        self.framework = framework
        self._schema: dict[str, Any] | None = None

    def schema(self) -> dict[str, Any]:
        """The schema preset's ``model:`` section (read once; do not modify, use ``defaults``)."""
        if self._schema is None:
            self._schema = load_config(self.presets[self.schema_preset])["model"]
        return self._schema

    def defaults(self) -> dict[str, Any]:
        """A fresh copy of the complete default ``model:`` section."""
        return deep_merge(self.schema(), {})

    def preset(self, name: str) -> dict[str, Any]:
        """The raw ``model:`` section of a shipped preset (resolve it with the adapter's resolver)."""
        if name not in self.presets:
            raise ConfigError(f"no {self.framework} preset {name!r}; presets: {', '.join(sorted(self.presets))}")
        return load_config(self.presets[name])["model"]

    def merge(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """``config`` merged onto the defaults; ``ConfigError`` naming every unknown key."""
        config = dict(config or {})
        unknown = unknown_keys(self.schema(), config)
        if unknown:
            raise ConfigError(
                f"unknown {self.framework} model keys: {', '.join(unknown)} (see the {self.schema_preset} preset for the schema)"
            )
        return deep_merge(self.schema(), config)
