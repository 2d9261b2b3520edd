"""Boundary checks shared by the ``infoclip.core`` modules.

Only shapes, dtypes and option values are checked: a value check (symmetry, unit trace) would cost a device
synchronisation on every training step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from infoclip.errors import ConfigError, InputError


def shape_of(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def require_tensor(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise InputError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def require_ndim(x: object, name: str, ndims: Iterable[int], layout: str) -> torch.Tensor:
    x = require_tensor(x, name)
    if x.ndim not in tuple(ndims):
        raise InputError(f"{name} must have shape {layout}, got shape {shape_of(x)}")
    if x.numel() == 0:
        raise InputError(f"{name} must not be empty, got shape {shape_of(x)}")
    return x


def require_gram(a: object, name: str = "A") -> torch.Tensor:
    a = require_ndim(a, name, (2,), "(n, n)")
    if a.shape[0] != a.shape[1]:
        raise InputError(f"{name} must be a square (n, n) Gram matrix, got shape {shape_of(a)}")
    return a


def check_alpha(alpha: object) -> float:
    """Return alpha as a float, or raise ``ConfigError`` unless it is a finite number > 0."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise ConfigError(f"alpha must be a number > 0, got {alpha!r}")
    value = float(alpha)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"alpha must be a finite number > 0, got {alpha!r}")
    return value


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else (float16, bfloat16, float32) is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32
