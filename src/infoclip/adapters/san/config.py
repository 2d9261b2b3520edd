"""The ``model:`` section of a SAN config: presets, defaults and validation.

The schema and its defaults are the ``model:`` section of ``configs/san-vit-b16.yaml`` (the documented
file): any SAN model config is merged onto it and keys it does not have are refused, so weights files
always store the complete, resolved config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infoclip.adapters.config_checks import ModelSchema, check_open_clip_section, check_prompt_templates
from infoclip.adapters.config_checks import check_int as _int
from infoclip.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
SCHEMA_PRESET = "san-vit-b16"
#: shipped presets, name -> YAML path
SCHEMA = ModelSchema(CONFIG_DIR, SCHEMA_PRESET, "SAN")
PRESETS: dict[str, Path] = SCHEMA.presets
#: CLIP fine-tuning modes (san-reference.md §7)
FINETUNE_MODES = ("san", "qv_rec", "qv_all")


def default_model_config() -> dict[str, Any]:
    """A fresh copy of the complete default ``model:`` section (ViT-B/16, official values)."""
    return SCHEMA.defaults()


def preset_model_config(name: str) -> dict[str, Any]:
    """The resolved ``model:`` section of a shipped preset (``san-vit-b16``, ``san-vit-l14-336``, ``san-tiny``)."""
    return resolve_model_config(SCHEMA.preset(name))


def _number(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"model.{key} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def resolve_model_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``config`` onto the ViT-B/16 defaults and check it.

    Raises:
        ConfigError: an unknown key or a value of the wrong kind (the message names the key).
    """
    cfg = SCHEMA.merge(config)
    clip, side, dec, inf, loss = cfg["clip"], cfg["side_adapter"], cfg["mask_decoder"], cfg["inference"], cfg["loss"]
    check_open_clip_section(clip, "clip")
    _int(clip["feature_layers"], "clip.feature_layers", 1)
    _number(clip["resolution_scale"], "clip.resolution_scale", 0.05, 4.0)
    if clip["finetune"] not in FINETUNE_MODES:
        raise ConfigError(f"model.clip.finetune must be one of {', '.join(FINETUNE_MODES)}, got {clip['finetune']!r}")
    check_prompt_templates(cfg["prompt_templates"])
    for key in ("width", "depth", "num_heads", "patch_size", "image_size", "num_queries"):
        _int(side[key], f"side_adapter.{key}", 1)
    if side["width"] % side["num_heads"]:
        raise ConfigError(f"model.side_adapter.width {side['width']} is not divisible by num_heads {side['num_heads']}")
    if side["image_size"] % side["patch_size"]:
        raise ConfigError("model.side_adapter.image_size must be a multiple of side_adapter.patch_size")
    pairs = side["fusion_map"]
    if not (isinstance(pairs, (list, tuple)) and pairs and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in pairs)):
        raise ConfigError(f"model.side_adapter.fusion_map must be a list of [side block, CLIP feature] pairs, got {pairs!r}")
    side_blocks = [_int(p[0], "side_adapter.fusion_map") for p in pairs]
    for p in pairs:
        if not 0 <= _int(p[1], "side_adapter.fusion_map") <= clip["feature_layers"]:
            raise ConfigError(f"model.side_adapter.fusion_map uses CLIP feature {p[1]}; features are 0..{clip['feature_layers']} (clip.feature_layers)")
    if len(set(side_blocks)) != len(side_blocks) or max(side_blocks) > side["depth"]:
        raise ConfigError(f"model.side_adapter.fusion_map side blocks must be distinct and in 0..{side['depth']}, got {side_blocks}")
    supervised = side["deep_supervision"]
    if not (isinstance(supervised, (list, tuple)) and supervised and list(supervised) == sorted(set(supervised))
            and all(1 <= _int(i, "side_adapter.deep_supervision", 1) <= side["depth"] for i in supervised)):  # fmt: skip
        raise ConfigError(f"model.side_adapter.deep_supervision must list increasing side blocks in 1..{side['depth']}, got {supervised!r}")
    if supervised[-1] != side["depth"]:
        raise ConfigError("model.side_adapter.deep_supervision must end with the last side block (its masks are the prediction)")
    for key in ("embed_channels", "mlp_channels", "mlp_num_layers"):
        _int(dec[key], f"mask_decoder.{key}", 1)
    for key in ("size_divisibility", "test_short_side", "test_max_size"):
        _int(inf[key], f"inference.{key}", 1)
    for key in ("class_weight", "mask_weight", "dice_weight"):
        _number(loss[key], f"loss.{key}", 0.0, 1e6)
    _number(loss["no_object_weight"], "loss.no_object_weight", 0.0, 1.0)
    _int(loss["num_points"], "loss.num_points", 1)
    _number(loss["oversample_ratio"], "loss.oversample_ratio", 1.0, 100.0)
    _number(loss["importance_sample_ratio"], "loss.importance_sample_ratio", 0.0, 1.0)
    return cfg
