"""Import checkpoints of the official CAT-Seg code (cvlab-kaist/CAT-Seg, CVPR'24 version) into infoclip.

The official meta-architecture ``CATSeg`` names its weights ``sem_seg_head.predictor.clip_model.*`` (OpenAI
CLIP with split ``q/k/v_proj_weight``), ``sem_seg_head.predictor.transformer.*`` (the ``Aggregator``) and
``upsample1.*`` / ``upsample2.*``. infoclip's ``CATSeg`` mirrors those modules, so the import is a prefix
change per tensor (``KEY_PREFIXES``), plus one drop: the official second Swin block of every aggregator
layer stores its shifted-window mask as a persistent buffer (``...swin_block.block_2.attn_mask``); infoclip
derives it from the grid, so those entries are checked for shape and left out.

The architecture is detected from tensor shapes (patch embedding, position table, CLIP widths, image-tower
depth, guidance widths), never from file names: ViT-B/16 at 384 (preset ``catseg-vit-b16``) or ViT-L/14 at
336 (``catseg-vit-l14-336``), the two released configurations. Anything else is refused with a one-line
message naming the keys that do not fit.

Usage: ``infoclip convert catseg model_final.pth -o catseg-b16.safetensors``, or in Python
``state, config = import_official_checkpoint("model_final.pth")``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from infoclip.adapters.official_checkpoint import SHOWN_KEYS, name_some, read_detectron2_state
from infoclip.errors import CheckpointError

#: presets an official checkpoint may be, with the official ``CLIP_PRETRAINED`` name of each
OFFICIAL_PRESETS: dict[str, str] = {"catseg-vit-b16": "ViT-B/16", "catseg-vit-l14-336": "ViT-L/14@336px"}

#: (official prefix, infoclip prefix); every official weight lives under exactly one of them
KEY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("sem_seg_head.predictor.clip_model.", "clip_model."),
    ("sem_seg_head.predictor.transformer.", "aggregator."),
    ("upsample1.", "upsample1."),
    ("upsample2.", "upsample2."),
)

#: official buffers that infoclip recomputes instead of storing
_DERIVED_BUFFER = re.compile(r"^sem_seg_head\.predictor\.transformer\.layers\.\d+\.swin_block\.block_\d+\.attn_mask$")

#: infoclip keys whose shapes identify the architecture (with the image-tower depth)
_SIGNATURE_KEYS: tuple[str, ...] = (
    "clip_model.visual.conv1.weight",
    "clip_model.visual.positional_embedding",
    "clip_model.visual.proj",
    "clip_model.positional_embedding",
    "clip_model.text_projection",
    "upsample1.weight",
    "upsample2.weight",
    "aggregator.guidance_projection.0.weight",
)
_DEPTH = "image-tower blocks"
_VISUAL_BLOCK = re.compile(r"^clip_model\.visual\.transformer\.resblocks\.(\d+)\.")


def infoclip_key(official_key: str) -> str | None:
    """The infoclip name of an official weight, or ``None`` if it is not under a CAT-Seg prefix."""
    for official, ours in KEY_PREFIXES:
        if official_key.startswith(official):
            return ours + official_key[len(official) :]
    return None


def official_key(key: str) -> str:
    """The official name of an infoclip ``CATSeg`` weight (inverse of ``infoclip_key``)."""
    for official, ours in KEY_PREFIXES:
        if key.startswith(ours):
            return official + key[len(ours) :]
    raise KeyError(f"{key} has no counterpart in official CAT-Seg checkpoints")


@lru_cache(maxsize=8)
def _layout(preset: str) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
    """(key, shape, dtype) of every tensor of the preset's infoclip model, built on the meta device."""
    from infoclip.adapters.catseg.config import preset_model_config
    from infoclip.adapters.catseg.model import CATSeg

    with torch.device("meta"):
        model = CATSeg(preset_model_config(preset))
    return tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items())


def infoclip_layout(preset: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the infoclip ``CATSeg`` state dict of a preset (what an import must produce)."""
    return {k: shape for k, shape, _ in _layout(preset)}


def official_layout(preset: str) -> dict[str, tuple[int, ...]]:
    """Shapes of an official checkpoint's ``model`` state dict for a preset, including the derived
    shifted-window masks (``(windows, window^2, window^2)`` per aggregator layer)."""
    from infoclip.adapters.catseg.config import preset_model_config

    shapes = {official_key(k): shape for k, shape in infoclip_layout(preset).items()}
    cfg = preset_model_config(preset)
    agg = cfg["aggregator"]
    layout = infoclip_layout(preset)
    side = cfg["clip"]["resolution"] // layout["clip_model.visual.conv1.weight"][-1]
    window = agg["window_size"]
    if side > window and window // 2 > 0:  # official block_2 shifts (and stores a mask) only then
        windows = (side // window) ** 2
        for i in range(agg["num_layers"]):
            key = f"sem_seg_head.predictor.transformer.layers.{i}.swin_block.block_2.attn_mask"
            shapes[key] = (windows, window * window, window * window)
    return shapes


def read_official_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The weights of an official checkpoint file: detectron2's ``{"model": state_dict, ...}`` or a bare state
    dict (a ``module.`` prefix from DistributedDataParallel is removed). Read with ``weights_only=True``.

    Raises:
        CheckpointError: unreadable, not a state dict, or holding no CAT-Seg weights.
    """
    data = read_detectron2_state(path, "CAT-Seg")
    if not any(infoclip_key(k) is not None for k in data):
        raise CheckpointError(
            f"{path} holds no CAT-Seg weights: none of its {len(data)} keys ({name_some(sorted(data))}) start with "
            f"{', '.join(p for p, _ in KEY_PREFIXES)}; is it an official CAT-Seg checkpoint?"
        )
    return data


def _signature(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    sig: dict[str, Any] = {k: tuple(shapes[k]) for k in _SIGNATURE_KEYS if k in shapes}
    blocks = {int(m.group(1)) for k in shapes if (m := _VISUAL_BLOCK.match(k))}
    sig[_DEPTH] = max(blocks) + 1 if blocks else 0
    return sig


def _fmt(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def detect_preset(state: Mapping[str, torch.Tensor], presets: Mapping[str, str] | None = None) -> str:
    """The preset whose architecture the official ``state`` (official key names) has.

    Args:
        state: official state dict (``read_official_state``).
        presets: candidate presets, name -> display name; default ``OFFICIAL_PRESETS``.

    Raises:
        CheckpointError: no candidate fits; the message names the identifying keys that do not fit, with
            their shapes and what each candidate expects.
    """
    presets = OFFICIAL_PRESETS if presets is None else presets
    ours = {infoclip_key(k): tuple(v.shape) for k, v in state.items() if infoclip_key(k) is not None}
    found = _signature(ours)
    expected = {name: _signature(infoclip_layout(name)) for name in presets}
    fitting = [name for name, sig in expected.items() if sig == found]
    if fitting:
        return fitting[0]
    problems = []
    for key in (*_SIGNATURE_KEYS, _DEPTH):
        wanted = {presets[name]: sig.get(key) for name, sig in expected.items()}
        got = found.get(key)
        if got in wanted.values():
            continue
        label = official_key(key) if key != _DEPTH else _DEPTH
        have = "missing" if got is None else _fmt(got)
        wants = " or ".join(f"{_fmt(v)} ({arch})" for arch, v in wanted.items())
        problems.append(f"{label} is {have}, expected {wants}")
    if not problems:  # each key fits some candidate, but no candidate fits all of them
        problems.append("the identifying shapes mix different architectures")
    archs = " or ".join(presets.values())
    raise CheckpointError(
        f"not a {archs} CAT-Seg checkpoint: {'; '.join(problems[:SHOWN_KEYS])}"
        + (f" (+{len(problems) - SHOWN_KEYS} more)" if len(problems) > SHOWN_KEYS else "")
    )


def convert_official_state(
    state: Mapping[str, torch.Tensor], presets: Mapping[str, str] | None = None, source: str = "checkpoint"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Official state dict -> (infoclip ``CATSeg`` state dict, resolved model config).

    Every tensor of the detected preset's model must be present with its shape, and nothing else may be
    (apart from the derived shifted-window masks), so the result loads with ``strict=True``. Floating tensors
    are cast to the model's dtype (float32), e.g. from a half-precision checkpoint.

    Args:
        state: official key names -> tensors.
        presets: candidate presets (name -> display name); default ``OFFICIAL_PRESETS``.
        source: the checkpoint's name for messages.

    Raises:
        CheckpointError: unknown architecture, or keys missing, unexpected or of the wrong shape or kind
            (the message names them).
    """
    from infoclip.adapters.catseg.config import preset_model_config

    preset = detect_preset(state, presets)
    arch = (OFFICIAL_PRESETS if presets is None else presets)[preset]
    official = official_layout(preset)
    dtypes = {k: dtype for k, _, dtype in _layout(preset)}
    missing = [k for k in official if k not in state]
    unexpected = [k for k in state if k not in official]
    wrong = [
        f"{k} {list(state[k].shape)} (expected {list(official[k])})"
        for k in official
        if k in state and tuple(state[k].shape) != official[k]
    ]
    kind = [k for k in official if k in state and not _DERIVED_BUFFER.match(k)
            and state[k].is_floating_point() != dtypes[infoclip_key(k)].is_floating_point]  # fmt: skip
    problems = [
        f"{label}: {name_some(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong), ("wrong dtype", kind))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{source} looks like a {arch} CAT-Seg checkpoint but does not fit it: {'; '.join(problems)}")
    converted = {}
    for key, value in state.items():
        if _DERIVED_BUFFER.match(key):
            continue
        ours = infoclip_key(key)
        dtype = dtypes[ours]
        converted[ours] = value.to(dtype) if value.is_floating_point() and value.dtype != dtype else value
    return converted, preset_model_config(preset)


def import_official_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``Adapter.importers["official"]``: an official CAT-Seg checkpoint file -> (state dict, model config).

    Raises:
        CheckpointError: see ``read_official_state`` and ``convert_official_state``.
    """
    return convert_official_state(read_official_state(path), OFFICIAL_PRESETS, source=str(path))

