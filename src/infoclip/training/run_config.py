"""The resolved config of a training run: defaults <- preset or user YAML <- ``--set`` overrides.

``resolve_run_config`` is what ``infoclip train`` calls. It is strict: a section or key that the training
defaults (``defaults.yaml``) do not know is an error naming the keys that exist, and values are checked for
type and range here, before any model is built, so that a typo costs a second rather than a crashed job.
The ``model`` section belongs to the adapter and is checked by the adapter when it builds the model.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from infoclip.config import apply_overrides, deep_merge, find_leaf, load_config, yaml_load
from infoclip.errors import ConfigError

#: the sections the training engine owns (their keys are fixed by defaults.yaml)
ENGINE_SECTIONS = ("infoclip", "data", "solver", "train")
#: every top-level key a run config may hold
TOP_LEVEL_KEYS = ("adapter", "model", *ENGINE_SECTIONS)

_CHOICES: dict[str, tuple[Any, ...]] = {
    "infoclip.gram_axis": ("batch", "pairs"),
    "infoclip.kernel": ("cosine", "gaussian"),
    "infoclip.residual": ("ln_dot", "cosine"),
    "infoclip.teacher_precision": ("auto", "fp32", "bf16", "fp16"),
    "data.val_protocol": ("sliding", "whole"),
    "solver.schedule": ("cosine", "constant"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.amp": ("none", "bf16", "fp16"),
}
_POSITIVE_INTS = (
    "data.min_size", "data.max_size", "data.crop_size", "data.size_divisibility", "solver.iterations",
    "solver.batch_size", "train.grad_accumulation", "train.checkpoint_period", "train.log_period",
)  # fmt: skip
_NON_NEGATIVE_INTS = ("data.num_workers", "solver.warmup_iterations", "train.eval_period", "train.seed")
_NON_NEGATIVE_FLOATS = (
    "infoclip.lambda_compression", "infoclip.lambda_distillation", "infoclip.lpam_lr", "solver.lr",
    "solver.clip_lr_multiplier", "solver.weight_decay", "solver.weight_decay_norm", "solver.weight_decay_embed",
    "solver.eps", "solver.lr_end", "solver.warmup_factor",
)  # fmt: skip
_BOOLS = (
    "infoclip.enabled", "infoclip.lpam_feeds_decoder", "infoclip.detach_teacher_in_distillation",
    "data.color_jitter", "data.flip", "train.grad_checkpointing", "train.tensorboard",
    "train.find_unused_parameters",
)  # fmt: skip


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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A finite int or float: no setting of a run takes infinity or NaN (YAML reads ``.inf`` and ``.nan``)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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

    for key, choices in _CHOICES.items():
        if get(config, key) not in choices:
            fail(key, "one of " + ", ".join(map(str, choices)))
    for key in _POSITIVE_INTS:
        value = get(config, key)
        if not _is_int(value) or value < 1:
            fail(key, "a positive integer")
    for key in _NON_NEGATIVE_INTS:
        value = get(config, key)
        if not _is_int(value) or value < 0:
            fail(key, "an integer >= 0")
    for key in _NON_NEGATIVE_FLOATS:
        value = get(config, key)
        if not _is_number(value) or value < 0:
            fail(key, "a finite number >= 0")
    for key in _BOOLS:
        if not isinstance(get(config, key), bool):
            fail(key, "true or false")
    init = get(config, "train.init_weights")
    if init is not None and (not isinstance(init, str) or not init.strip()):
        fail("train.init_weights", "null or weights (a name such as catseg-b16, hf:ORG/REPO/FILE, or a file path)")
    alpha = get(config, "infoclip.alpha")
    if not _is_number(alpha) or alpha <= 0 or alpha == 1:
        fail("infoclip.alpha", "a finite number > 0 other than 1 (Rényi order)")
    area = get(config, "data.crop_max_category_area")
    if not _is_number(area) or not 0 < area <= 1:
        fail("data.crop_max_category_area", "a number in (0, 1]")
    sigma = get(config, "infoclip.sigma")
    gaussian = get(config, "infoclip.kernel") == "gaussian"
    if (sigma is not None) != gaussian or (gaussian and not (_is_number(sigma) and sigma > 0)):
        fail("infoclip.sigma", "null for the cosine kernel and a finite number > 0 for the gaussian kernel")
    for key in ("solver.grad_clip", "solver.weight_decay_bias"):
        value = get(config, key)
        if value is not None and (not _is_number(value) or value < 0):
            fail(key, "a finite number >= 0 or null")
    for key in ("data.val_limit", "train.keep_checkpoints"):
        value = get(config, key)
        if value is not None and (not _is_int(value) or value < 1):
            fail(key, "a positive integer or null")
    betas = get(config, "solver.betas")
    if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(_is_number(b) and 0 <= b < 1 for b in betas)):
        fail("solver.betas", "two numbers in [0, 1)")
    for key in ("data.train", "data.train_split", "data.val_split"):
        if not isinstance(get(config, key), str) or not get(config, key):
            fail(key, "a dataset name, folder or split name")
    if get(config, "data.val") is not None and not isinstance(get(config, "data.val"), str):
        fail("data.val", "a dataset name or folder, or null")
    if get(config, "data.max_size") < get(config, "data.min_size"):
        fail("data.max_size", f"at least data.min_size ({get(config, 'data.min_size')})")
    if get(config, "solver.warmup_iterations") > get(config, "solver.iterations"):
        fail("solver.warmup_iterations", "at most solver.iterations")
    if not isinstance(config.get("model"), Mapping) or not config["model"]:
        raise ConfigError("the run config has no `model` section; start from a preset such as catseg-vit-b16")
    if not isinstance(config.get("adapter"), str):
        raise ConfigError("the run config names no adapter; pass --adapter or set `adapter:` in the YAML")


def resolve_run_config(
    config: str | os.PathLike[str],
    adapter: str | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Build a run config: training defaults <- ``config`` (a YAML path or a preset name) <- ``overrides``.

    Args:
        config: path of a YAML file, or the name of a shipped preset (``catseg-vit-b16``).
        adapter: the adapter name from ``--adapter``; must agree with the config's ``adapter`` key if both exist.
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
        raise ConfigError(f"--adapter {adapter} does not match adapter: {named} in {origin}")
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
