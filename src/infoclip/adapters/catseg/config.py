"""The ``model:`` section of a CAT-Seg config: presets, defaults and validation.

The schema and its defaults are the ``model:`` section of ``configs/catseg-vit-b16.yaml`` (the documented
file): any CAT-Seg model config is merged onto it, and keys it does not have are refused, so a typo never
passes silently and weights files always store the complete, resolved config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infoclip.adapters.config_checks import ModelSchema, check_open_clip_section, check_prompt_templates
from infoclip.adapters.config_checks import check_int as _int
from infoclip.adapters.config_checks import fail as _fail
from infoclip.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
SCHEMA_PRESET = "catseg-vit-b16"
#: shipped presets, name -> YAML path
SCHEMA = ModelSchema(CONFIG_DIR, SCHEMA_PRESET, "CAT-Seg")
PRESETS: dict[str, Path] = SCHEMA.presets


def default_model_config() -> dict[str, Any]:
    """A fresh copy of the complete default ``model:`` section (ViT-B/16, official values)."""
    return SCHEMA.defaults()


def preset_model_config(name: str) -> dict[str, Any]:
    """The resolved ``model:`` section of a shipped preset (``catseg-vit-b16``, ``catseg-vit-l14-336``, ``catseg-tiny``)."""
    return resolve_model_config(SCHEMA.preset(name))


def _int_list(value: Any, key: str, length: int, minimum: int = 0) -> list[int]:
    if not isinstance(value, (list, tuple)) or len(value) != length:
        _fail(key, f"a list of {length} integers", value)
    return [_int(v, key, minimum) for v in value]


def resolve_model_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``config`` onto the defaults and check it.

    Args:
        config: a (possibly partial) ``model:`` section; ``None`` or ``{}`` gives the ViT-B/16 defaults.

    Returns:
        The complete config (a new dict).

    Raises:
        ConfigError: an unknown key or a value of the wrong kind (the message names the key).
    """
    cfg = SCHEMA.merge(config)
    clip, agg, inf = cfg["clip"], cfg["aggregator"], cfg["inference"]
    check_open_clip_section(clip, "clip")
    _int(clip["resolution"], "clip.resolution", 1)
    _int_list(clip["guidance_layers"], "clip.guidance_layers", 2)
    if clip["finetune"] not in ("attention", "none", "full"):
        _fail("clip.finetune", "'attention', 'none' or 'full'", clip["finetune"])
    check_prompt_templates(cfg["prompt_templates"])
    for key in ("hidden_dim", "num_heads", "num_layers", "text_guidance_proj_dim", "appearance_guidance_proj_dim", "window_size"):
        _int(agg[key], f"aggregator.{key}", 1)
    _int(agg["pad_len"], "aggregator.pad_len")
    _int(agg["no_grad_chunk"], "aggregator.no_grad_chunk")
    for key in ("decoder_dims", "decoder_guidance_dims", "decoder_guidance_proj_dims", "pooling_train", "pooling_eval"):
        _int_list(agg[key], f"aggregator.{key}", 2, 1)
    if agg["attention_type"] not in ("linear", "full"):
        _fail("aggregator.attention_type", "'linear' or 'full'", agg["attention_type"])
    if not isinstance(cfg["loss"]["mask_ignore"], bool):
        _fail("loss.mask_ignore", "true or false", cfg["loss"]["mask_ignore"])
    if not isinstance(cfg["lpam_feeds_decoder"], bool):
        _fail("lpam_feeds_decoder", "true or false", cfg["lpam_feeds_decoder"])
    if cfg["lpam_residual"] not in ("ln_dot", "cosine"):
        _fail("lpam_residual", "'ln_dot' or 'cosine'", cfg["lpam_residual"])
    if cfg["lpam_feeds_decoder"] and len(cfg["prompt_templates"]) != 1:
        raise ConfigError("model.lpam_feeds_decoder needs a single prompt template (the LPAM map has one channel)")
    for key in ("size_divisibility", "test_short_side", "test_max_size", "sliding_kernel", "sliding_out_res", "views_per_batch"):
        _int(inf[key], f"inference.{key}", 1)
    overlap = inf["sliding_overlap"]
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0 <= overlap < 1:
        _fail("inference.sliding_overlap", "a number in [0, 1)", overlap)
    if inf["sliding_kernel"] > inf["sliding_out_res"]:
        _fail("inference.sliding_kernel", f"at most inference.sliding_out_res ({inf['sliding_out_res']})", inf["sliding_kernel"])
    return cfg
