"""Weights files: safetensors with infoclip metadata, and strict loading into an adapter's model.

An infoclip weights file is a safetensors file whose metadata (all strings, as safetensors requires) holds:

* ``format``: ``"infoclip"``;
* ``infoclip_version``: the version that wrote it;
* ``adapter``: the adapter that builds the model (``"catseg"``);
* ``config``: JSON of the architecture config (the ``model`` section of a run config);
* ``clip_tag``: the CLIP architecture and pretrained tag it started from, e.g. ``"ViT-B-16-quickgelu:openai"``;
* ``classes``: JSON list of the training vocabulary (may be empty);
* ``source``: where the weights came from (``"infoclip export"``, ``"infoclip convert catseg"``, ...).

Checkpoints from elsewhere are read with ``torch.load(..., weights_only=True)`` only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infoclip.errors import CheckpointError, InfoclipError
from infoclip.io_utils import atomic_write

FORMAT = "infoclip"
#: torch's weights-only refusal names the object it will not build ("Unsupported global: GLOBAL mod.Cls ...")
_WEIGHTS_ONLY_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


@dataclass
class WeightsMeta:
    """The metadata of an infoclip weights file (see the module docstring)."""

    adapter: str
    config: dict[str, Any]
    clip_tag: str = ""
    classes: list[str] = field(default_factory=list)
    source: str = ""
    infoclip_version: str = ""

    def to_strings(self) -> dict[str, str]:
        from infoclip import __version__

        return {
            "format": FORMAT,
            "infoclip_version": self.infoclip_version or __version__,
            "adapter": self.adapter,
            "config": json.dumps(self.config, sort_keys=True),
            "clip_tag": self.clip_tag,
            "classes": json.dumps(list(self.classes)),
            "source": self.source,
        }

    @classmethod
    def from_strings(cls, meta: Mapping[str, str], path: Path) -> WeightsMeta:
        if meta.get("format") != FORMAT:
            raise CheckpointError(
                f"{path} is a safetensors file but not an infoclip weights file (no infoclip metadata); "
                "convert official checkpoints with `infoclip convert` or export runs with `infoclip export`"
            )
        try:
            return cls(
                adapter=meta["adapter"],
                config=json.loads(meta["config"]),
                clip_tag=meta.get("clip_tag", ""),
                classes=json.loads(meta.get("classes", "[]")),
                source=meta.get("source", ""),
                infoclip_version=meta.get("infoclip_version", ""),
            )
        except (KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} has damaged infoclip metadata ({exc}); export or convert it again") from exc


def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> tuple[str, int] | None:
    """``(name, count)`` of the first floating-point tensor (in order) holding NaN or inf values, else ``None``."""
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            finite = torch.isfinite(tensor.detach())
            if not bool(finite.all()):
                return name, int(finite.numel() - finite.sum())
    return None


def save_weights(path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], meta: WeightsMeta) -> Path:
    """Write ``state_dict`` and ``meta`` to ``path`` as safetensors, atomically.

    Tensors are made contiguous and de-aliased (safetensors refuses shared storage).
    """
    from safetensors.torch import save_file

    bad = first_non_finite(state_dict)
    if bad is not None:
        raise CheckpointError(f"{path} not written: tensor {bad[0]} holds {bad[1]} non-finite values (NaN or inf)")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta.to_strings()))


@contextlib.contextmanager
def _open_weights(path: str | os.PathLike[str]) -> Iterator[tuple[Any, WeightsMeta]]:
    """``safe_open`` an infoclip weights file; yields (the open file, its metadata). Errors are one line."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f, WeightsMeta.from_strings(f.metadata() or {}, path)
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({str(exc).splitlines()[0]}); "
            "infoclip reads .safetensors written by `infoclip export` or `infoclip convert`"
        ) from exc


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Read an infoclip weights file.

    Raises:
        CheckpointError: the file is missing, not safetensors, or has no infoclip metadata.
    """
    with _open_weights(path) as (f, meta):
        return {key: f.get_tensor(key) for key in f.keys()}, meta


def read_weights_header(path: str | os.PathLike[str]) -> tuple[dict[str, tuple[int, ...]], WeightsMeta]:
    """The tensor shapes and metadata of an infoclip weights file, from its header only (no tensor is read).

    Raises:
        CheckpointError: as ``read_weights``.
    """
    with _open_weights(path) as (f, meta):
        return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}, meta


def _shape_problems(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]) -> list[str]:
    """``["missing: a, b", "unexpected: c", "wrong shape: d [2] (expected [3])"]``, three keys named per kind."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(f"{k} {list(found[k])} (expected {list(expected[k])})" for k in set(expected) & set(found)
                   if tuple(expected[k]) != tuple(found[k]))  # fmt: skip
    return [
        f"{label}: {', '.join(keys[:3])}{f' (+{len(keys) - 3} more)' if len(keys) > 3 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
        if keys
    ]


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming the keys that do not fit."""
    parts = _shape_problems(
        {k: tuple(v.shape) for k, v in model.state_dict().items()}, {k: tuple(v.shape) for k, v in state.items()}
    )
    if parts:
        raise CheckpointError(f"{path} does not fit this model: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def load_model(
    weights: str | os.PathLike[str], device: str | torch.device = "cpu", notify: Any = None
) -> tuple[torch.nn.Module, WeightsMeta]:
    """Build the adapter's model described by weights and load them strictly (eval mode).

    ``weights`` is anything ``infoclip.weights_resolver.resolve_weights`` takes: a registered name
    (``catseg-b16``), ``hf:ORG/REPO/FILE[@REV]``, an infoclip ``.safetensors`` file or an official checkpoint
    (converted on first use, cached). ``notify(line)`` is told when a conversion starts. The file's tensor
    shapes are checked against its stored config (on the meta device) before anything is allocated.
    """
    from infoclip.adapters import get_adapter
    from infoclip.weights_resolver import resolve_weights

    path = resolve_weights(weights, notify=notify).path
    shapes, meta = read_weights_header(path)
    adapter = get_adapter(meta.adapter)
    check_header_fits(path, shapes, adapter.build_model, meta.config)
    state, _ = read_weights(path)
    model = adapter.build_model(meta.config)
    load_state_strict(model, state, path)
    return model.to(device).eval(), meta


def check_header_fits(
    path: str | os.PathLike[str],
    shapes: Mapping[str, tuple[int, ...]],
    build: Any,
    config: Mapping[str, Any],
) -> None:
    """Refuse a weights file whose config describes another architecture than its tensors, before the model
    is built for real.

    The model is built on the meta device (shapes only, no memory), so a small file whose metadata asks for a
    huge model (``hidden_dim: 100000``) fails here in milliseconds instead of allocating gigabytes.
    ``build(config)`` is the adapter's model constructor; one that cannot run on the meta device (it reads
    tensor values) skips this check.

    Raises:
        CheckpointError: keys missing, unexpected or of another shape (named), or a config the adapter refuses.
    """
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in build(config).state_dict().items()}
    except CheckpointError:
        raise
    except InfoclipError as exc:
        raise CheckpointError(f"{path} has a model config this adapter refuses: {exc}") from exc
    except (RuntimeError, NotImplementedError):
        # a third-party constructor that reads tensor values (meta tensors have none) cannot be checked here;
        # it is built as before, and strict loading still compares every shape
        return
    parts = _shape_problems(expected, shapes)
    if parts:
        raise CheckpointError(
            f"{path}: its tensors do not fit the model config stored in it ({'; '.join(parts)}); "
            "the file is damaged or was edited: export or convert it again"
        )


def torch_load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` a foreign pickled checkpoint safely (``weights_only=True``), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # the weights-only unpickler fails on garbage in many ways (KeyError, IndexError, ...)
        text = str(exc)
        found = _WEIGHTS_ONLY_GLOBAL.search(text)
        if found:  # torch's message advises weights_only=False, which would run the file's code: never repeat it
            raise CheckpointError(
                f"{path} holds Python objects besides tensors ({found.group(1)}); infoclip loads checkpoints "
                "only as plain tensors and never runs code from them; re-save the state dict "
                "(torch.save(model.state_dict(), ...)) with code you trust"
            ) from None
        if "Weights only load failed" in text:
            unpickler = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
            reason = unpickler.group(1).strip() if unpickler else "the weights-only loader refused its contents"
            raise CheckpointError(
                f"{path} cannot be read as a PyTorch checkpoint of plain tensors ({reason}); "
                "is it truncated, or not a checkpoint?"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint with weights_only=True ({first}); "
            "is it truncated, or not a checkpoint?"
        ) from exc
