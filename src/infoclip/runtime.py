"""Runtime words defined once: devices, precisions and protocol names (values, defaults, parsing, autocast).

``segment``, ``eval`` and ``train`` (and ``Segmenter``, ``evaluate``, the trainer) all read these, so they
accept the same values: ``--device auto|cpu|cuda|cuda:N|mps``, ``--precision fp32|bf16|fp16``. Messages speak
the library's language (no command-line flag names); the CLI adds the flag.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

from infoclip.errors import InputError

if TYPE_CHECKING:  # torch loads on first use, so the command line can answer usage errors without it
    import torch

#: accepted device words (``cuda:N`` with any index); ``auto`` = CUDA when available, else CPU
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")
DEFAULT_DEVICE = "auto"
#: inference precisions: fp32; bf16 (autocast on CPU or a GPU with bf16); fp16 (GPU only)
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
DEFAULT_PRECISION = "fp32"
#: protocol names of the built-in frameworks; each model declares its own (``OVSSModel.protocols``)
PROTOCOLS: tuple[str, ...] = ("sliding", "whole")
DEFAULT_PROTOCOL = "sliding"


_DEVICE_WORD = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_word(device: str) -> str:
    """Refuse a device string that names no device, without importing torch (availability: ``resolve_device``).

    Raises:
        InputError: not one of ``DEVICE_CHOICES``.
    """
    if not _DEVICE_WORD.match(str(device)):
        raise InputError(f"unknown device {device!r}; use {', '.join(DEVICE_CHOICES)}", parameter="device")
    return str(device)


def resolve_device(device: str | torch.device | None = DEFAULT_DEVICE) -> torch.device:
    """``"auto"`` / ``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` -> torch.device.

    Raises:
        InputError: an unknown device word, or a device this machine does not have.
    """
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}; use {', '.join(DEVICE_CHOICES)}", parameter="device") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {device!r} asked for, but CUDA is not available here; use cpu", parameter="device")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InputError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)", parameter="device")
    if resolved.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise InputError(f"device {device!r} asked for, but MPS is not available here; use cpu", parameter="device")
    return resolved


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse precisions the device cannot run.

    fp32 runs everywhere; bf16 autocasts on CPU and on CUDA GPUs that support it; fp16 needs a GPU (CPU fp16
    autocast is slow and loses accuracy for no gain, so it is refused rather than silently run in fp32).

    Raises:
        InputError: an unknown precision, or one the device cannot use (the message says what to use instead).
    """
    import torch

    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}", parameter="precision")
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 precision needs a GPU; on CPU use bf16 (or fp32)", parameter="precision")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 support; use fp16", parameter="precision")


def precision_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype of a precision word; ``"auto"`` is bf16 on a CUDA device with bf16, else fp32.

    The training config's ``train.amp: none`` is fp32.
    """
    import torch

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    if precision == "none":
        return torch.float32
    if precision not in dtypes:
        raise InputError(f"unknown precision {precision!r}; choose one of auto, {', '.join(PRECISIONS)}", parameter="precision")
    return dtypes[precision]


def autocast(device: torch.device, precision: str | torch.dtype) -> contextlib.AbstractContextManager[Any]:
    """The autocast context for ``precision`` (a word or a dtype) on ``device``; a no-op for fp32."""
    import torch

    dtype = precision if isinstance(precision, torch.dtype) else precision_dtype(precision, device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
