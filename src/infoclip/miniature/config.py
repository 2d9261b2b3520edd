"""The miniature YAML, parsed and checked: the world, the tiny CLIP's pretraining, one section per adapter (its
run config and its methods) and the modes (which methods run, on how much data).

An adapter section (``adapters.<registered adapter name>``) holds everything adapter-specific, so a new adapter
is a new section and a new mode is a new entry of ``modes``; no code changes::

    adapters:
      catseg:
        label: CAT-Seg                          # "untrained CAT-Seg" in the tables
        clip_weights_setting: model.clip.pretrained
        run: {adapter: catseg, model: ..., solver: ...}
        methods: {catseg: ["infoclip.enabled=false"], ...}
        ablation_base: infoclip-batch           # optional: methods run at the first seed on top of this one
        ablation: {lambda1-only: ["infoclip.lambda_distillation=0.0"]}
    modes:
      fast: {n_train: 300, n_test: 60, iterations: 300, seeds: [0], methods: [catseg, infoclip-batch]}

The one-adapter layout of earlier releases (top-level ``run``, ``clip_weights_setting``, ``methods``,
``ablation``) is still read, as a single adapter section with ``infoclip-batch`` as the ablation base.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from infoclip.config import load_config
from infoclip.errors import ConfigError
from infoclip.miniature.pretrain import PretrainSettings
from infoclip.miniature.world import WorldSpec

MODES = ("fast", "full", "forgetting")
#: the modes every miniature config must define (``forgetting`` is optional)
REQUIRED_MODES = ("fast", "full")
#: keys of an adapter section: required, then optional
ADAPTER_KEYS = ("label", "clip_weights_setting", "run", "methods")
OPTIONAL_ADAPTER_KEYS = ("ablation_base", "ablation")
#: the ablation base of the one-adapter layout
LEGACY_ABLATION_BASE = "infoclip-batch"


def default_config_path() -> Path:
    """The shipped miniature config (``infoclip/miniature/miniature.yaml``)."""
    return Path(str(resources.files("infoclip.miniature") / "miniature.yaml"))


def untrained_row(label: str) -> str:
    """The table name of an adapter's untrained reference: ``untrained CAT-Seg``."""
    return f"untrained {label}"


@dataclass(frozen=True)
class Method:
    """One trained row of the tables: an adapter, the ``--set`` overrides of its run config, and whether it is
    an ablation (run at the first seed only; ``overrides`` then already start with the base method's)."""

    name: str
    adapter: str
    overrides: tuple[str, ...]
    ablation: bool = False


@dataclass
class AdapterRuns:
    """An adapter section: the run config its methods override, and where the tiny CLIP's weights go."""

    adapter: str
    label: str
    clip_weights_setting: str
    run: dict[str, Any]
    methods: dict[str, Method]

    @property
    def untrained(self) -> str:
        return untrained_row(self.label)


def _overrides(value: Any, where: str) -> tuple[str, ...]:
    if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) and "=" in v for v in value)):
        raise ConfigError(f"miniature config: {where} must be a list of key=value overrides, got {value!r}")
    return tuple(value)


def _adapter_section(name: str, section: Any, installed: Sequence[str]) -> AdapterRuns:
    where = f"adapters.{name}"
    if name not in installed:
        raise ConfigError(f"miniature config: {where}: no adapter {name!r} is installed (installed: "
                          f"{', '.join(sorted(installed)) or 'none'}); name each section after an adapter")  # fmt: skip
    if not isinstance(section, Mapping):
        raise ConfigError(f"miniature config: {where} must be a mapping with {', '.join(ADAPTER_KEYS)}")
    missing = [k for k in ADAPTER_KEYS if k not in section]
    unknown = sorted(set(section) - set(ADAPTER_KEYS) - set(OPTIONAL_ADAPTER_KEYS))
    if missing or unknown:
        what = [f"lacks {', '.join(missing)}"] * bool(missing) + [f"has unknown key(s) {', '.join(unknown)}"] * bool(unknown)
        raise ConfigError(f"miniature config: {where} {' and '.join(what)} (keys: {', '.join(ADAPTER_KEYS + OPTIONAL_ADAPTER_KEYS)})")
    run = section["run"]
    if not isinstance(run, Mapping):
        raise ConfigError(f"miniature config: {where}.run must be a run config (a mapping with adapter:, model:, ...)")
    if run.get("adapter", name) != name:
        raise ConfigError(f"miniature config: {where}.run.adapter is {run['adapter']!r}; it must be {name!r} (the section's name)")
    setting = section["clip_weights_setting"]
    if not (isinstance(setting, str) and setting):
        raise ConfigError(f"miniature config: {where}.clip_weights_setting must be a dotted run-config key such as model.clip.pretrained")
    methods_section = section["methods"]
    if not (isinstance(methods_section, Mapping) and methods_section):
        raise ConfigError(f"miniature config: {where}.methods must map method names to lists of overrides")
    methods = {str(m): Method(str(m), name, _overrides(o, f"{where}.methods.{m}")) for m, o in methods_section.items()}
    ablation = section.get("ablation") or {}
    if ablation:
        base = section.get("ablation_base")
        if base is not None and base not in methods:
            raise ConfigError(f"miniature config: {where}.ablation_base {base!r} is not one of its methods ({', '.join(methods)})")
        prefix = methods[base].overrides if base is not None else ()
        for m, o in ablation.items():
            if m in methods:
                raise ConfigError(f"miniature config: {where}.ablation.{m} has the name of a method; give it its own")
            methods[str(m)] = Method(str(m), name, (*prefix, *_overrides(o, f"{where}.ablation.{m}")), ablation=True)
    return AdapterRuns(name, str(section["label"]), setting, {**run, "adapter": name}, methods)


def _legacy_adapters(data: Mapping[str, Any]) -> dict[str, Any]:
    """The one-adapter layout (top-level run / clip_weights_setting / methods / ablation) as an adapters section."""
    missing = [k for k in ("run", "clip_weights_setting", "methods") if k not in data]
    if missing:
        raise ConfigError(f"miniature config lacks section(s) {', '.join(['adapters'] if len(missing) == 3 else missing)}")
    name = str((data["run"] or {}).get("adapter", "catseg"))
    section = {"label": "CAT-Seg" if name == "catseg" else name, "clip_weights_setting": data["clip_weights_setting"],
               "run": data["run"], "methods": data["methods"]}  # fmt: skip
    if data.get("ablation"):
        section.update(ablation=data["ablation"], ablation_base=LEGACY_ABLATION_BASE if LEGACY_ABLATION_BASE in data["methods"] else None)
    return {name: section}


@dataclass
class MiniatureConfig:
    """The parsed miniature YAML (see ``miniature.yaml`` for the meaning of each section)."""

    world: WorldSpec
    pretrain: PretrainSettings
    adapters: dict[str, AdapterRuns]
    modes: dict[str, dict[str, Any]]
    protocol: str = "whole"
    #: the ``selection:`` section (``infoclip miniature --select-lambda``; parsed by ``selection.SelectionSpec``)
    selection: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> MiniatureConfig:
        """Read and check a miniature YAML (default: the shipped one).

        Raises:
            ConfigError: a missing section, an adapter section naming no installed adapter or lacking keys,
                a method name used twice, a mode naming an unknown method (each message says which).
        """
        from infoclip.adapters.manager import adapters as installed_adapters

        data = load_config(path or default_config_path())
        missing = [k for k in ("world", "pretrain", "modes") if k not in data]
        if missing:
            raise ConfigError(f"miniature config {path} lacks section(s) {', '.join(missing)}")
        sections = data["adapters"] if "adapters" in data else _legacy_adapters(data)
        if not (isinstance(sections, Mapping) and sections):
            raise ConfigError("miniature config: adapters must map adapter names to their sections")
        installed = list(installed_adapters())
        adapters = {str(n): _adapter_section(str(n), s, installed) for n, s in sections.items()}
        seen: dict[str, str] = {}
        for runs in adapters.values():
            for m in runs.methods:
                if m in seen:
                    raise ConfigError(f"miniature config: method {m!r} is in adapters.{seen[m]} and adapters.{runs.adapter}; names must be unique")
                seen[m] = runs.adapter
        config = cls(
            world=WorldSpec.from_dict(data["world"]),
            pretrain=PretrainSettings.from_dict(data["pretrain"]),
            adapters=adapters,
            modes=dict(data["modes"]),
            protocol=str(data.get("protocol", "whole")),
            selection=data.get("selection"),
        )
        config.check_modes()
        return config

    @property
    def methods(self) -> dict[str, Method]:
        """Every method of every adapter (ablations included), by name."""
        return {name: m for runs in self.adapters.values() for name, m in runs.methods.items()}

    def check_modes(self) -> None:
        unknown_modes = set(self.modes) - set(MODES)
        if unknown_modes or not set(REQUIRED_MODES) <= set(self.modes):
            raise ConfigError(f"miniature config must define the modes {REQUIRED_MODES} (and may define forgetting), no others")
        for mode, settings in self.modes.items():
            self.select(settings.get("methods"), f"modes.{mode}.methods")
            overrides = settings.get("run_overrides", [])
            if isinstance(overrides, Mapping):
                for name, o in overrides.items():
                    if name not in self.adapters:
                        raise ConfigError(f"miniature config: modes.{mode}.run_overrides.{name} names no adapter section ({', '.join(self.adapters)})")
                    _overrides(o, f"modes.{mode}.run_overrides.{name}")
            else:
                _overrides(overrides, f"modes.{mode}.run_overrides")

    def select(self, names: Sequence[str] | None, where: str = "--methods") -> list[Method]:
        """The methods called ``names`` in that order (``None``: every non-ablation method).

        Raises:
            ConfigError: an unknown or repeated name (the message lists the known ones).
        """
        known = self.methods
        if names is None:
            return [m for m in known.values() if not m.ablation]
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise ConfigError(f"miniature config: {where} must be a non-empty list of method names")
        unknown = [n for n in names if n not in known]
        if unknown or len(set(names)) != len(names):
            what = f"unknown method(s) {', '.join(map(str, unknown))}" if unknown else "a method named twice"
            raise ConfigError(f"miniature config: {where} has {what}; methods: {', '.join(known)}")
        return [known[n] for n in names]

    def run_overrides(self, mode: str, adapter: str) -> list[str]:
        """The mode's overrides of ``adapter``'s run config (a list applies to every adapter)."""
        overrides = self.modes[mode].get("run_overrides", [])
        return list(overrides.get(adapter, []) if isinstance(overrides, Mapping) else overrides)
