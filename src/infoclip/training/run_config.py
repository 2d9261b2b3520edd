"""The resolved config of a training run: defaults <- preset or user YAML <- ``--set`` overrides.

``resolve_run_config`` is what ``infoclip train`` calls. It is strict: a section or key that the training
defaults (``defaults.yaml``) do not know is an error naming the keys that exist, and values are checked for
type and range here, before any model is built, so that a typo costs a second rather than a crashed job.
The ``model`` section belongs to the adapter and is checked by the adapter when it builds the model.

``prepare_run_config`` is the config of a fresh or resumed run in a run folder; ``effective_model_config`` and
``load_initial_weights`` turn the run config into the model section the adapter builds and the weights it
starts from.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infoclip.config import apply_overrides, deep_merge, find_leaf, load_config, yaml_load
from infoclip.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from torch import nn

#: the sections the training engine owns (their keys are fixed by defaults.yaml)
ENGINE_SECTIONS = ("infoclip", "data", "solver", "train")
#: every top-level key a run config may hold
TOP_LEVEL_KEYS = ("adapter", "model", *ENGINE_SECTIONS)

@dataclass(frozen=True)
class Rule:
    """What one engine-section key accepts: ``accepts(value)``, and ``what`` for the error ("must be <what>")."""

    what: str
    accepts: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float: no setting of a run takes infinity or NaN (YAML reads ``.inf`` and ``.nan``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _one_of(*choices: Any) -> Rule:
    return Rule("one of " + ", ".join(map(str, choices)), lambda v: v in choices)


def _optional(rule: Rule) -> Rule:
    return Rule(f"{rule.what} or null", lambda v: v is None or rule.accepts(v))


def _sizes(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


_POSITIVE_INT = Rule("a positive integer", lambda v: _is_int(v) and v >= 1)
_NON_NEGATIVE_INT = Rule("an integer >= 0", lambda v: _is_int(v) and v >= 0)
_NON_NEGATIVE = Rule("a finite number >= 0", lambda v: _is_number(v) and v >= 0)
_BOOL = Rule("true or false", lambda v: isinstance(v, bool))
_NAME = Rule("a dataset name, folder or split name", lambda v: isinstance(v, str) and bool(v))

#: The value rules of every engine-section key, the one statement of them (their defaults and meanings are in
#: defaults.yaml). Rules that tie two keys together (infoclip.sigma with infoclip.kernel, data.max_size with
#: data.min_size, solver.warmup_iterations with solver.iterations) follow in ``validate_run_config``.
SCHEMA: dict[str, Rule] = {
    "infoclip.enabled": _BOOL,
    "infoclip.lambda_compression": _NON_NEGATIVE,
    "infoclip.lambda_distillation": _NON_NEGATIVE,
    "infoclip.alpha": Rule("a finite number > 0 other than 1 (Rényi order)", lambda v: _is_number(v) and v > 0 and v != 1),
    "infoclip.gram_axis": _one_of("batch", "pairs"),
    "infoclip.kernel": _one_of("cosine", "gaussian"),
    "infoclip.residual": _one_of("ln_dot", "cosine"),
    "infoclip.lpam_feeds_decoder": _BOOL,
    "infoclip.detach_teacher_in_distillation": _BOOL,
    "infoclip.teacher_precision": _one_of("auto", "fp32", "bf16", "fp16"),
    "infoclip.lpam_lr": _NON_NEGATIVE,
    "data.train": _NAME,
    "data.train_split": _NAME,
    "data.train_classes": Rule("null, a vocabulary name or a class file", lambda v: v is None or (isinstance(v, str) and bool(v))),
    "data.val": Rule("a dataset name or folder, or null", lambda v: v is None or isinstance(v, str)),
    "data.val_split": _NAME,
    "data.val_protocol": _one_of("sliding", "whole"),
    "data.val_limit": _optional(_POSITIVE_INT),
    "data.augmentation": _one_of("standard", "lsj"),
    "data.scale_range": Rule(
        "two numbers 0 < low <= high",
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(x) and x > 0 for x in v) and v[0] <= v[1],
    ),
    "data.min_size": Rule(
        "a positive integer or a non-empty list of them (one drawn per image)",
        lambda v: bool(_sizes(v)) and all(_is_int(x) and x > 0 for x in _sizes(v)),
    ),
    "data.max_size": _POSITIVE_INT,
    "data.crop_size": _POSITIVE_INT,
    "data.crop_max_category_area": Rule("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1),
    "data.color_jitter": _BOOL,
    "data.flip": _BOOL,
    "data.size_divisibility": _POSITIVE_INT,
    "data.num_workers": _NON_NEGATIVE_INT,
    "solver.lr": _NON_NEGATIVE,
    "solver.clip_lr_multiplier": _NON_NEGATIVE,
    "solver.weight_decay": _NON_NEGATIVE,
    "solver.weight_decay_norm": _NON_NEGATIVE,
    "solver.weight_decay_bias": _optional(_NON_NEGATIVE),
    "solver.weight_decay_embed": _NON_NEGATIVE,
    "solver.betas": Rule(
        "two numbers in [0, 1)",
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_number(b) and 0 <= b < 1 for b in v),
    ),
    "solver.eps": _NON_NEGATIVE,
    "solver.iterations": _POSITIVE_INT,
    "solver.batch_size": _POSITIVE_INT,
    "solver.schedule": _one_of("cosine", "poly", "constant", "multistep"),
    "solver.steps": Rule(
        "a list of ascending positive integers (iterations)",
        lambda v: isinstance(v, (list, tuple)) and all(_is_int(x) and x >= 1 for x in v) and list(v) == sorted(set(v)),
    ),
    "solver.gamma": Rule("a number in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1),
    "solver.warmup_iterations": _NON_NEGATIVE_INT,
    "solver.warmup_factor": _NON_NEGATIVE,
    "solver.lr_end": _NON_NEGATIVE,
    "solver.grad_clip": _optional(_NON_NEGATIVE),
    "train.init_weights": Rule(
        "null or weights (a name such as catseg-b16, hf:ORG/REPO/FILE, or a file path)",
        lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
    ),
    "train.seed": _NON_NEGATIVE_INT,
    "train.device": _one_of("auto", "cpu", "cuda"),
    "train.amp": _one_of("none", "bf16", "fp16"),
    "train.grad_accumulation": _POSITIVE_INT,
    "train.grad_checkpointing": _BOOL,
    "train.checkpoint_period": _POSITIVE_INT,
    "train.keep_checkpoints": _optional(_POSITIVE_INT),
    "train.eval_period": _NON_NEGATIVE_INT,
    "train.log_period": _POSITIVE_INT,
    "train.alignment_agreement": _BOOL,
    "train.log_term_gradients": _BOOL,
    "train.tensorboard": _BOOL,
    "train.find_unused_parameters": _BOOL,
}
#: keys whose only rule ties them to another key (see ``validate_run_config``)
CROSS_CHECKED = ("infoclip.sigma",)


def training_defaults() -> dict[str, Any]:
    """The shipped training defaults (``infoclip/training/defaults.yaml``) as a fresh dict."""
    text = resources.files("infoclip.training").joinpath("defaults.yaml").read_text(encoding="utf-8")
    return yaml_load(text)


def _preset_path(name: str, adapter: str | None) -> Path:
    """Find the shipped preset ``name`` in ``adapter`` (or in any adapter when ``adapter`` is None)."""
    from infoclip.adapters import adapters, get_adapter

    if adapter is not None:
        return get_adapter(adapter).config_path(name)
    known = adapters()
    for candidate in known.values():
        if name in candidate.configs:
            return Path(candidate.configs[name])
    presets = sorted(p for a in known.values() for p in a.configs)
    close = difflib.get_close_matches(name, presets, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        f"config {name!r} is neither a file nor a shipped preset{hint}; presets: {', '.join(presets) or '(none)'}"
    )


def _check_keys(section: str, given: Mapping[str, Any], known: Mapping[str, Any], origin: str) -> None:
    for key in given:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{origin}: unknown key {section}.{key}{hint}; keys of {section}: {', '.join(known)}"
            )


def check_structure(config: Mapping[str, Any], origin: str) -> None:
    """Raise ``ConfigError`` if ``config`` has a top-level key or an engine-section key the defaults lack."""
    defaults = training_defaults()
    for key, value in config.items():
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{origin}: unknown section {key!r}; a run config has: {', '.join(TOP_LEVEL_KEYS)}")
        if key in ENGINE_SECTIONS or key == "model":
            if not isinstance(value, Mapping):
                raise ConfigError(f"{origin}: section {key!r} must be a mapping, not {type(value).__name__}")
        if key in ENGINE_SECTIONS:
            _check_keys(key, value, defaults[key], origin)


def validate_run_config(config: Mapping[str, Any]) -> None:
    """Check types, ranges and choices of the engine sections; ``ConfigError`` naming the key otherwise."""
    from infoclip.config import get

    def fail(key: str, what: str) -> None:
        raise ConfigError(f"{key} must be {what}, got {get(config, key)!r}")

    # No setting of a run (the adapter's `model` section included) means anything with infinity or NaN.
    bad: list[float] = []

    def non_finite(leaf: Any) -> bool:
        if isinstance(leaf, float) and not math.isfinite(leaf):
            bad.append(leaf)
            return True
        return False

    where = find_leaf(config, non_finite)
    if where is not None:
        raise ConfigError(f"{where.lstrip('.')} must be a finite number, got {bad[0]!r}")

    for key, rule in SCHEMA.items():
        if not rule.accepts(get(config, key)):
            fail(key, rule.what)
    sigma = get(config, "infoclip.sigma")
    gaussian = get(config, "infoclip.kernel") == "gaussian"
    if (sigma is not None) != gaussian or (gaussian and not (_is_number(sigma) and sigma > 0)):
        fail("infoclip.sigma", "null for the cosine kernel and a finite number > 0 for the gaussian kernel")
    sizes = _sizes(get(config, "data.min_size"))
    if get(config, "data.max_size") < max(sizes):
        fail("data.max_size", f"at least data.min_size ({get(config, 'data.min_size')})")
    if get(config, "solver.warmup_iterations") > get(config, "solver.iterations"):
        fail("solver.warmup_iterations", "at most solver.iterations")
    if not isinstance(config.get("model"), Mapping) or not config["model"]:
        raise ConfigError("the run config has no `model` section; start from a preset such as catseg-vit-b16")
    if not isinstance(config.get("adapter"), str):
        raise ConfigError("the run config names no adapter; set `adapter:` in the YAML or name it", parameter="adapter")


def resolve_run_config(
    config: str | os.PathLike[str],
    adapter: str | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Build a run config: training defaults <- ``config`` (a YAML path or a preset name) <- ``overrides``.

    Args:
        config: path of a YAML file, or the name of a shipped preset (``catseg-vit-b16``).
        adapter: the adapter name (``infoclip train --adapter``); must agree with the config's ``adapter`` key if both exist.
        overrides: ``a.b=value`` strings, applied strictly (an unknown key is an error).

    Returns:
        The resolved config (plain nested dict, YAML-serialisable), checked by ``validate_run_config``.
    """
    path = Path(config)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        user = load_config(path)
        origin = str(path)
    else:
        preset = _preset_path(str(config), adapter)
        user = load_config(preset)
        origin = f"preset {config}"
    check_structure(user, origin)
    named = user.get("adapter")
    if adapter is not None and named is not None and adapter != named:
        raise ConfigError(f"adapter {adapter} does not match adapter: {named} in {origin}", parameter="adapter")
    merged = deep_merge(training_defaults(), user)
    merged["adapter"] = adapter or named
    ordered = {key: merged[key] for key in TOP_LEVEL_KEYS if key in merged}
    resolved = apply_overrides(ordered, overrides, strict=True)
    validate_run_config(resolved)
    return resolved


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs (added, removed or changed)."""
    keys: list[str] = []
    for key in list(old) + [k for k in new if k not in old]:
        dotted = f"{prefix}{key}"
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys.extend(changed_keys(a, b, dotted + "."))
        elif a != b:
            keys.append(dotted)
    return keys


_MISSING = object()


def prepare_run_config(
    run_dir: str | os.PathLike[str],
    config: str | os.PathLike[str] | None,
    adapter: str | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    overwrite: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The config a run will use, and the dotted keys a resume changes relative to the saved one.

    * fresh run: ``resolve_run_config(config, adapter, overrides)``; refused if ``run_dir`` already holds a run,
      unless ``overwrite`` (the caller then clears the folder: ``run_folder.clear_run``);
    * ``resume``: the run's saved ``config.yaml`` with ``overrides`` applied; ``config``, if given, must resolve
      to the same thing. Refused if the folder holds no checkpoint to resume from.
    """
    # Imported here: the checkpoint module pulls in torch, which checking a config does not need.
    from infoclip.training import checkpoint as ckpt
    from infoclip.training.run_folder import CONFIG_FILE, holds_run

    run_dir = Path(run_dir)
    saved_path = run_dir / CONFIG_FILE
    if resume and overwrite:
        raise ConfigError(
            "`resume` continues a run and `overwrite` starts it again from scratch; pass one of them",
            parameter="resume",
            mentions=("overwrite",),
        )
    if not resume:
        if holds_run(run_dir) and not overwrite:
            raise ConfigError(
                f"{run_dir} already holds a training run; pass `resume=True` to continue it, `overwrite=True` to "
                "start it again from scratch, or choose another `run_dir`",
                parameter="run_dir",
                mentions=("resume", "overwrite"),
            )
        if config is None:
            raise ConfigError(
                "a new run needs a config (a YAML file or a preset such as catseg-vit-b16)", parameter="config"
            )
        return resolve_run_config(config, adapter, overrides), []
    if ckpt.last_checkpoint(run_dir) is None:
        if holds_run(run_dir):
            raise CheckpointError(
                f"nothing to resume: {run_dir} holds a run that stopped before its first checkpoint; "
                "start it again with `overwrite=True`",
                parameter="resume",
                mentions=("overwrite",),
            )
        raise CheckpointError(
            f"nothing to resume: {run_dir} holds no training checkpoint; start the run without `resume`",
            parameter="resume",
        )
    if not saved_path.is_file():
        raise CheckpointError(f"{run_dir} has a checkpoint but no {CONFIG_FILE}; restore it or start a new run")
    saved = load_config(saved_path)
    if adapter is not None and saved.get("adapter") != adapter:
        raise ConfigError(
            f"adapter {adapter} does not match the resumed run's adapter {saved.get('adapter')}", parameter="adapter"
        )
    updated = apply_overrides(saved, overrides, strict=True)
    validate_run_config(updated)
    if config is not None:
        fresh = resolve_run_config(config, adapter, overrides)
        differ = changed_keys(updated, fresh)
        if differ:
            raise ConfigError(
                f"the config differs from {saved_path} in {', '.join(differ[:5])}; resume without `config` "
                "to use the saved config, or change keys with `overrides`",
                parameter="config",
                mentions=("overrides",),
            )
    return updated, changed_keys(saved, updated)


def effective_model_config(adapter: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """The adapter's ``model`` section with the InfoCLIP options the model itself needs (LPAM in the decoder)."""
    model_cfg = json.loads(json.dumps(config["model"]))
    info = config["infoclip"]
    feeds = bool(info["enabled"] and info["lpam_feeds_decoder"])
    if adapter.configure_lpam is not None:
        return adapter.configure_lpam(model_cfg, feeds, info["residual"])
    if feeds:
        raise ConfigError(f"adapter {adapter.name} cannot feed the LPAM map to its decoder (infoclip.lpam_feeds_decoder)")
    return model_cfg


def load_initial_weights(model: nn.Module, spec: str, adapter: str) -> None:
    """Load ``train.init_weights`` (any weights ``resolve_weights`` takes) into the freshly built student, strictly.

    On resume the checkpoint's weights replace these anyway, so they are loaded for new runs and resumed
    runs alike (the run config stays the record of where the run started).
    """
    from infoclip.weights import load_state_strict, read_weights
    from infoclip.weights_resolver import resolve_weights

    resolved = resolve_weights(spec)
    state, meta = read_weights(resolved.path)
    if meta.adapter != adapter:
        raise ConfigError(
            f"train.init_weights {spec} are {meta.adapter} weights, but this run trains the {adapter} adapter"
        )
    try:
        load_state_strict(model, state, spec)
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc}; train.init_weights must have the architecture of the run's model section (use the matching preset)"
        ) from exc
