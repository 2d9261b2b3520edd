"""Weights files: safetensors with infoclip metadata, and strict loading into an adapter's model.

An infoclip weights file is a safetensors file whose metadata (all strings, as safetensors requires) holds:

* ``format``: ``"infoclip"``;
* ``infoclip_version``: the version that wrote it;
* ``adapter``: the adapter that builds the model (``"catseg"``);
* ``config``: JSON of the architecture config (the ``model`` section of a run config);
* ``clip_tag``: the CLIP architecture and pretrained tag it started from, e.g. ``"ViT-B-16-quickgelu:openai"``;
* ``classes``: JSON list of the training vocabulary (may be empty);
* ``source``: where the weights came from (``"infoclip export"``, ``"infoclip convert catseg"``, ...);
* ``extra``: JSON of free-form metadata given to ``infoclip.models.save_model`` (may be absent).

This module is the file format; ``infoclip.models`` (``save_model``, ``load_model``) is the one place that
writes and reads weights files for a model. Checkpoints from elsewhere are read with
``torch.load(..., weights_only=True)`` only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from infoclip.errors import CheckpointError
from infoclip.io_utils import atomic_write

FORMAT = "infoclip"


@dataclass
class WeightsMeta:
    """The metadata of an infoclip weights file (see the module docstring)."""

    adapter: str
    config: dict[str, Any]
    clip_tag: str = ""
    classes: list[str] = field(default_factory=list)
    source: str = ""
    infoclip_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_strings(self) -> dict[str, str]:
        from infoclip._version import __version__

        strings = {
            "format": FORMAT,
            "infoclip_version": self.infoclip_version or __version__,
            "adapter": self.adapter,
            "config": json.dumps(self.config, sort_keys=True),
            "clip_tag": self.clip_tag,
            "classes": json.dumps(list(self.classes)),
            "source": self.source,
        }
        if self.extra:
            strings["extra"] = json.dumps(self.extra, sort_keys=True)
        return strings

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
                extra=json.loads(meta.get("extra", "{}")),
            )
        except (KeyError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} has damaged infoclip metadata ({exc}); export or convert it again") from exc


def save_weights(path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], meta: WeightsMeta) -> Path:
    """Write ``state_dict`` and ``meta`` to ``path`` as safetensors, atomically.

    Tensors are made contiguous and de-aliased (safetensors refuses shared storage).
    """
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta.to_strings()))


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Read an infoclip weights file.

    Raises:
        CheckpointError: the file is missing, not safetensors, or has no infoclip metadata.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = WeightsMeta.from_strings(f.metadata() or {}, path)
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({str(exc).splitlines()[0]}); "
            "infoclip reads .safetensors written by `infoclip export` or `infoclip convert`"
        ) from exc
    return state, meta


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming the keys that do not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{label}: {', '.join(keys[:3])}{more}")
        raise CheckpointError(f"{path} does not fit this model: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)


def torch_load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` a foreign pickled checkpoint safely (``weights_only=True``), with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # the weights-only unpickler fails on garbage in many ways (KeyError, IndexError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} cannot be read as a PyTorch checkpoint with weights_only=True ({first}); "
            "is it truncated, or not a checkpoint?"
        ) from exc
