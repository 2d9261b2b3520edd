"""Import checkpoints of the official SAN code (MendelXu/SAN, CVPR'23) into infoclip.

The official meta-architecture stores CLIP in three pieces (san-reference.md §4):
``clip_visual_extractor.*`` (conv1, class/position embeddings, ln_pre, blocks 0..N_f-1),
``clip_rec_head.*`` (blocks N_f.. renumbered from 0, ln_post, proj) and ``ov_classifier.*`` (the text tower,
``logit_scale``, the learnt ``bg_embed`` and a persistent copy of the causal ``attn_mask``), plus
``side_adapter_network.*`` and ``criterion.empty_weight``. infoclip keeps one open_clip CLIP
(``clip_model.*``, Q/K/V split from the packed ``in_proj_weight``), ``bg_embed`` and the side adapter under
its official names. ``attn_mask`` and ``empty_weight`` are derived values: checked and left out.

The architecture is detected from tensor shapes, never from file names: ViT-B/16 (preset
``san-vit-b16``) or ViT-L/14@336 (``san-vit-l14-336``), the two released models. Anything else is refused
with one line naming the keys that do not fit.

Usage: ``infoclip convert san san_vit_b_16.pth -o san-b16.safetensors``, or in Python
``state, config = import_official_checkpoint("san_vit_b_16.pth")``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from infoclip.adapters.official_checkpoint import name_some, read_detectron2_state
from infoclip.errors import CheckpointError

#: presets an official checkpoint may be, with a display name
OFFICIAL_PRESETS: dict[str, str] = {"san-vit-b16": "ViT-B/16", "san-vit-l14-336": "ViT-L/14@336px"}
#: official top-level prefixes; every SAN weight lives under one of them
OFFICIAL_PREFIXES = ("clip_visual_extractor.", "clip_rec_head.", "ov_classifier.", "side_adapter_network.", "criterion.")
#: official tensors infoclip derives instead of storing
DERIVED = ("ov_classifier.attn_mask", "criterion.empty_weight")
_SIGNATURE = "clip_visual_extractor.conv1.weight"
_BLOCK = re.compile(r"^clip_model\.visual\.transformer\.resblocks\.(\d+)\.(.*)$")
_SPLIT = ("q_proj_weight", "k_proj_weight", "v_proj_weight")
_REC_HEAD_KEYS = ("ln_post.", "proj")


def official_key(key: str, feature_layers: int) -> str:
    """The official name of an infoclip ``SAN`` weight (Q/K/V weights map to the packed ``in_proj_weight``)."""
    for part in _SPLIT:
        if key.endswith("attn." + part):
            key = key[: -len(part)] + "in_proj_weight"
    match = _BLOCK.match(key)
    if match:
        block, rest = int(match.group(1)), match.group(2)
        if block < feature_layers:
            return f"clip_visual_extractor.resblocks.{block}.{rest}"
        return f"clip_rec_head.resblocks.{block - feature_layers}.{rest}"
    if key.startswith("clip_model.visual."):
        rest = key[len("clip_model.visual.") :]
        return ("clip_rec_head." if rest.startswith(_REC_HEAD_KEYS) else "clip_visual_extractor.") + rest
    if key.startswith("clip_model."):
        return "ov_classifier." + key[len("clip_model.") :]
    if key == "bg_embed":
        return "ov_classifier.bg_embed"
    if key.startswith("side_adapter_network."):
        return key
    raise KeyError(f"{key} has no counterpart in official SAN checkpoints")


_CONFIGS: dict[str, dict[str, Any]] = {}  # configs given to convert_official_state, by their JSON


def _register_config(config: Mapping[str, Any]) -> str:
    import json

    key = "config:" + json.dumps(config, sort_keys=True)
    _CONFIGS[key] = dict(config)
    return key


def _config(preset: str) -> dict[str, Any]:
    from infoclip.adapters.san.config import preset_model_config

    return _CONFIGS[preset] if preset in _CONFIGS else preset_model_config(preset)


@lru_cache(maxsize=8)
def _layout(preset: str) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
    """(key, shape, dtype) of every tensor of the preset's infoclip model, built on the meta device."""
    from infoclip.adapters.san.model import SAN

    with torch.device("meta"):
        model = SAN(_config(preset))
    return tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items())


def official_layout(preset: str) -> dict[str, tuple[int, ...]]:
    """Shapes of an official checkpoint's ``model`` state dict for a preset (derived tensors excluded)."""
    layers = _config(preset)["clip"]["feature_layers"]
    shapes: dict[str, tuple[int, ...]] = {}
    for key, shape, _ in _layout(preset):
        name = official_key(key, layers)
        if name.endswith("in_proj_weight"):
            shape = (shapes.get(name, (0, shape[1]))[0] + shape[0], shape[1])
        shapes[name] = shape
    return shapes


def read_official_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The weights of an official SAN checkpoint: detectron2's ``{"model": state_dict, ...}`` or a bare state
    dict (a ``module.`` prefix from DistributedDataParallel is removed). Read with ``weights_only=True``.

    Raises:
        CheckpointError: unreadable, not a state dict, or holding no SAN weights (the message names keys).
    """
    data = read_detectron2_state(path, "SAN")
    if not any(k.startswith(OFFICIAL_PREFIXES[:4]) for k in data):
        hint = " (it looks like a CAT-Seg checkpoint: convert it with the catseg adapter)" if any(k.startswith("sem_seg_head.") for k in data) else ""
        raise CheckpointError(
            f"{path} holds no SAN weights: none of its {len(data)} keys ({name_some(sorted(data))}) start with "
            f"{', '.join(OFFICIAL_PREFIXES[:4])}{hint}"
        )
    return data


def detect_preset(state: Mapping[str, torch.Tensor]) -> str:
    """The preset whose architecture the official ``state`` has, from the patch embedding's shape.

    Raises:
        CheckpointError: the shape fits neither released model (the message gives both).
    """
    got = tuple(state[_SIGNATURE].shape) if _SIGNATURE in state else None
    expected = {name: official_layout(name)[_SIGNATURE] for name in OFFICIAL_PRESETS}
    for name, shape in expected.items():
        if got == shape:
            return name
    wants = " or ".join(f"{list(s)} ({OFFICIAL_PRESETS[n]})" for n, s in expected.items())
    raise CheckpointError(f"not a {' or '.join(OFFICIAL_PRESETS.values())} SAN checkpoint: {_SIGNATURE} is {'missing' if got is None else list(got)}, expected {wants}")


def convert_official_state(
    state: Mapping[str, torch.Tensor], source: str = "checkpoint", config: Mapping[str, Any] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Official state dict -> (infoclip ``SAN`` state dict, resolved model config).

    Every tensor of the architecture must be present with its shape and nothing else may be (apart from
    ``DERIVED``), so the result loads with ``strict=True``. Floating tensors are cast to float32.

    Args:
        state: official key names -> tensors.
        source: the checkpoint's name for messages.
        config: the SAN model config the checkpoint was trained with; default: the released preset detected
            from the shapes (ViT-B/16 or ViT-L/14@336).

    Raises:
        CheckpointError: unknown architecture, or keys missing, unexpected or of the wrong shape (named).
    """
    from infoclip.adapters.san.config import preset_model_config, resolve_model_config

    if config is None:
        preset = detect_preset(state)
        config, arch = preset_model_config(preset), f"a {OFFICIAL_PRESETS[preset]} SAN checkpoint"
    else:
        config, arch = resolve_model_config(config), "a SAN checkpoint of the given config"
        preset = _register_config(config)
    layers = config["clip"]["feature_layers"]
    official = official_layout(preset)
    missing = [k for k in official if k not in state]
    unexpected = [k for k in state if k not in official and k not in DERIVED]
    wrong = [f"{k} {list(state[k].shape)} (expected {list(official[k])})" for k in official if k in state and tuple(state[k].shape) != official[k]]
    context = official.get("ov_classifier.positional_embedding", (0,))[0]
    if "ov_classifier.attn_mask" in state and tuple(state["ov_classifier.attn_mask"].shape) != (context, context):
        wrong.append(f"ov_classifier.attn_mask {list(state['ov_classifier.attn_mask'].shape)} (expected {[context, context]})")
    not_float = [k for k in official if k in state and not state[k].is_floating_point()]
    problems = [f"{label}: {name_some(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong), ("not floating point", not_float)) if keys]
    if problems:
        raise CheckpointError(f"{source} looks like {arch} but does not fit it: {'; '.join(problems)}")
    converted: dict[str, torch.Tensor] = {}
    for key, shape, dtype in _layout(preset):
        name = official_key(key, layers)
        value = state[name]
        if name.endswith("in_proj_weight"):
            value = value.chunk(3, dim=0)[_SPLIT.index(key.rsplit(".", 1)[-1])]
        converted[key] = value.to(dtype).contiguous() if value.dtype != dtype else value.contiguous()
    return converted, config


def import_official_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``Adapter.importers["official"]``: an official SAN checkpoint file -> (state dict, model config).

    Raises:
        CheckpointError: see ``read_official_state`` and ``convert_official_state``.
    """
    return convert_official_state(read_official_state(path), source=str(path))
