"""Import checkpoints of the official FC-CLIP code (bytedance/fc-clip, ``fcclip_cocopan.pth``) into infoclip.

infoclip's ``FCCLIP`` names its modules like the official meta-architecture (``backbone.clip_model.*``,
``sem_seg_head.pixel_decoder.*``, ``sem_seg_head.predictor.*``, ``void_embedding.weight``), so the import is
a copy, with three differences (fcclip-reference.md §4):

* the text tower's packed ``attn.in_proj_weight`` is split into ``q/k/v_proj_weight`` (infoclip's text
  attention);
* ``criterion.empty_weight`` (a training buffer) is dropped;
* CLIP weights the file does not hold are filled from the preset's open_clip tag. The released file holds no
  text tower (``token_embedding``, ``transformer.*``, ``ln_final``; the official code builds the CLIP from the
  tag first and overlays the checkpoint), so converting it needs the tag's weights (downloaded or cached);
  the importer says which keys it filled. With ``pretrained: null`` (tests) they come from the seeded init.

The architecture is detected from tensor shapes: ConvNeXt-L (``fcclip-convnext-l``) or the tiny test preset.
FC-CLIP's ResNet variants (RN50 ... RN50x64) are refused by name, checkpoints of other frameworks naming keys.

Usage: ``infoclip convert fcclip fcclip_cocopan.pth -o fcclip.safetensors``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch

from infoclip.adapters.official_checkpoint import SHOWN_KEYS, name_some, read_detectron2_state
from infoclip.errors import CheckpointError

log = logging.getLogger(__name__)

CLIP_PREFIX = "backbone.clip_model."
#: keys every FC-CLIP checkpoint has (whatever its CLIP)
_FCCLIP_KEYS = (
    "sem_seg_head.pixel_decoder.input_proj.0.0.weight",
    "sem_seg_head.predictor.class_embed.layers.2.weight",
    "void_embedding.weight",
)
#: the shapes that identify a preset (infoclip names)
_SIGNATURE_KEYS = (
    "sem_seg_head.pixel_decoder.input_proj.0.0.weight",
    "sem_seg_head.pixel_decoder.adapter_1.weight",
    "sem_seg_head.predictor.class_embed.layers.2.weight",
    "sem_seg_head.predictor.query_feat.weight",
    "void_embedding.weight",
)
_DROPPED = ("criterion.empty_weight",)
#: res5 channels of FC-CLIP's ResNet CLIP variants (official configs), named in the refusal
_RESNET_RES5 = {2048: "RN50 or RN101", 2560: "RN50x4", 3072: "RN50x16", 4096: "RN50x64"}
_IN_PROJ = re.compile(r"^(backbone\.clip_model\.transformer\.resblocks\.\d+\.attn\.)in_proj_weight$")


@lru_cache(maxsize=4)
def _layout(preset: str) -> tuple[tuple[str, tuple[int, ...], torch.dtype], ...]:
    from infoclip.adapters.fcclip.config import preset_model_config
    from infoclip.adapters.fcclip.model import FCCLIP

    with torch.device("meta"):
        model = FCCLIP(preset_model_config(preset))
    return tuple((k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items())


def read_official_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The weights of an official FC-CLIP checkpoint: detectron2's ``{"model": state_dict, ...}`` or a bare
    state dict (``module.`` prefixes removed), read with ``weights_only=True``.

    Raises:
        CheckpointError: unreadable, not a state dict, or not an FC-CLIP checkpoint (the keys are named).
    """
    data = read_detectron2_state(path, "FC-CLIP")
    missing = [k for k in _FCCLIP_KEYS if k not in data]
    if missing:
        raise CheckpointError(
            f"{path} is not an FC-CLIP checkpoint: it lacks {name_some(missing)}; its {len(data)} keys include "
            f"{name_some(sorted(data))}"
        )
    return data


def detect_preset(state: Mapping[str, torch.Tensor]) -> str:
    """The preset whose architecture the official ``state`` has (``fcclip-convnext-l`` or ``fcclip-tiny``).

    Raises:
        CheckpointError: a ResNet-CLIP FC-CLIP (named), or shapes no preset has (the keys are named).
    """
    from infoclip.adapters.fcclip.config import PRESETS

    if any(k.startswith(CLIP_PREFIX + "visual.attnpool.") or k.startswith(CLIP_PREFIX + "visual.layer1.") for k in state):
        res5 = int(state["sem_seg_head.pixel_decoder.input_proj.0.0.weight"].shape[1])
        variant = _RESNET_RES5.get(res5, "ResNet")
        raise CheckpointError(
            f"this is an FC-CLIP {variant} checkpoint (ResNet CLIP, res5 with {res5} channels); infoclip implements "
            "FC-CLIP's ConvNeXt-L model only (fcclip_cocopan.pth)"
        )
    found = {k: tuple(state[k].shape) for k in _SIGNATURE_KEYS if k in state}
    for preset in PRESETS:
        shapes = {k: s for k, s, _ in _layout(preset)}
        if all(found.get(k) == shapes.get(k) for k in _SIGNATURE_KEYS):
            return preset
    res5 = found.get(_SIGNATURE_KEYS[0], (0, 0))[1]
    if res5 in _RESNET_RES5:
        raise CheckpointError(
            f"this looks like an FC-CLIP {_RESNET_RES5[res5]} checkpoint (res5 with {res5} channels); infoclip "
            "implements FC-CLIP's ConvNeXt-L model only (fcclip_cocopan.pth)"
        )
    expected = {k: s for k, s, _ in _layout("fcclip-convnext-l")}
    wrong = [f"{k} is {list(found.get(k, ()))}, expected {list(expected[k])}" for k in _SIGNATURE_KEYS if found.get(k) != expected[k]]
    raise CheckpointError(f"not an FC-CLIP ConvNeXt-L checkpoint: {'; '.join(wrong[:SHOWN_KEYS])}")


def _clip_fill(config: Mapping[str, Any], keys: list[str]) -> dict[str, torch.Tensor]:
    """The CLIP weights ``keys`` (infoclip names) from the preset's pretrained tag, or its seeded init."""
    from infoclip.adapters.fcclip.backbone import build_convnext_clip
    from infoclip.clip import read_clip_state_dict, resolve_pretrained

    clip_cfg = config["clip"]
    if clip_cfg["pretrained"]:
        source = read_clip_state_dict(resolve_pretrained(clip_cfg["name"], clip_cfg["pretrained"]))
    else:
        source = build_convnext_clip(clip_cfg["name"], clip_cfg["init_seed"]).state_dict()
    short = [k[len(CLIP_PREFIX) :] for k in keys]
    absent = [k for k in short if k not in source]
    if absent:
        raise CheckpointError(f"the CLIP weights of {clip_cfg['name']}:{clip_cfg['pretrained']} lack {name_some(absent)}")
    return {CLIP_PREFIX + k: source[k] for k in short}


def convert_official_state(state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Official state dict -> (infoclip ``FCCLIP`` state dict, resolved model config).

    Every non-CLIP tensor of the detected preset must be present with its shape and nothing unknown may be;
    CLIP tensors the file lacks are filled (see the module docstring) and reported on the log.

    Raises:
        CheckpointError: unknown architecture, or keys missing, unexpected or of the wrong shape.
    """
    from infoclip.adapters.fcclip.config import preset_model_config

    preset = detect_preset(state)
    config = preset_model_config(preset)
    layout = {k: (shape, dtype) for k, shape, dtype in _layout(preset)}
    ours: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in _DROPPED:
            continue
        match = _IN_PROJ.match(key)
        if match:
            for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                ours[f"{match.group(1)}{name}_proj_weight"] = part
        else:
            ours[key] = value
    unexpected = [k for k in ours if k not in layout]
    wrong = [f"{k} {list(v.shape)} (expected {list(layout[k][0])})" for k, v in ours.items() if k in layout and tuple(v.shape) != layout[k][0]]
    missing = [k for k in layout if k not in ours]
    missing_head = [k for k in missing if not k.startswith(CLIP_PREFIX)]
    problems = [f"{label}: {name_some(keys)}" for label, keys in (("missing", missing_head), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise CheckpointError(f"{source} looks like an FC-CLIP checkpoint ({preset}) but does not fit it: {'; '.join(problems)}")
    if missing:
        tag = f"{config['clip']['name']}:{config['clip']['pretrained'] or 'random init (seed ' + str(config['clip']['init_seed']) + ')'}"
        text = sum(1 for k in missing if not k.startswith(CLIP_PREFIX + "visual."))
        log.warning(
            "%s holds no weights for %d CLIP tensors (%d of the text tower, e.g. %s): filled from %s, as the official "
            "code builds its CLIP from that tag before loading the checkpoint",
            source, len(missing), text, missing[0][len(CLIP_PREFIX):], tag,
        )
        ours.update(_clip_fill(config, missing))
    converted = {}
    for key, (shape, dtype) in layout.items():
        value = ours[key]
        if value.is_floating_point() != dtype.is_floating_point:
            raise CheckpointError(f"{source}: {key} has dtype {value.dtype}, expected {dtype}")
        converted[key] = value.to(dtype).reshape(shape).contiguous() if value.is_floating_point() else value.reshape(shape)
    return converted, config


def import_official_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``Adapter.importers["official"]``: an official FC-CLIP checkpoint file -> (state dict, model config)."""
    return convert_official_state(read_official_state(path), source=str(path))
