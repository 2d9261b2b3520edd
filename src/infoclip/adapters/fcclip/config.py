"""The ``model:`` section of an FC-CLIP config: presets, defaults and validation.

The schema and its defaults are the ``model:`` section of ``configs/fcclip-convnext-l.yaml`` (the documented
file): any FC-CLIP model config is merged onto it and keys it does not have are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from infoclip.adapters.config_checks import check_int as _int
from infoclip.adapters.config_checks import check_open_clip_section, check_prompt_templates
from infoclip.adapters.config_checks import fail as _fail
from infoclip.adapters.config_checks import unknown_keys as _unknown_keys
from infoclip.config import deep_merge, load_config
from infoclip.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"
SCHEMA_PRESET = "fcclip-convnext-l"
#: shipped presets, name -> YAML path
PRESETS: dict[str, Path] = {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}
FINETUNE_MODES = ("none", "stage4")


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return load_config(PRESETS[SCHEMA_PRESET])["model"]


def default_model_config() -> dict[str, Any]:
    """A fresh copy of the complete default ``model:`` section (ConvNeXt-L, official values)."""
    return deep_merge(_schema(), {})


def preset_model_config(name: str) -> dict[str, Any]:
    """The resolved ``model:`` section of a shipped preset (``fcclip-convnext-l``, ``fcclip-tiny``)."""
    if name not in PRESETS:
        raise ConfigError(f"no FC-CLIP preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return resolve_model_config(load_config(PRESETS[name])["model"])


def _fraction(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        _fail(key, "a number in [0, 1]", value)
    return float(value)


def resolve_model_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``config`` onto the defaults and check it.

    Raises:
        ConfigError: an unknown key or a value of the wrong kind (the message names the key).
    """
    config = dict(config or {})
    unknown = _unknown_keys(_schema(), config)
    if unknown:
        raise ConfigError(f"unknown FC-CLIP model keys: {', '.join(unknown)} (see the fcclip-convnext-l preset for the schema)")
    cfg = deep_merge(_schema(), config)
    clip, pix, dec, ens, inf = cfg["clip"], cfg["pixel_decoder"], cfg["decoder"], cfg["ensemble"], cfg["inference"]
    check_open_clip_section(clip, "clip", "an open_clip ConvNeXt architecture name")
    if clip["finetune"] not in FINETUNE_MODES:
        _fail("clip.finetune", "'none' or 'stage4'", clip["finetune"])
    check_prompt_templates(cfg["prompt_templates"])
    vocab = cfg["train_vocabulary"]
    if not (isinstance(vocab, str) and vocab) and not (isinstance(vocab, (list, tuple)) and vocab and all(isinstance(v, str) for v in vocab)):
        _fail("train_vocabulary", "an FC-CLIP vocabulary name or a list of class names", vocab)
    for key in ("conv_dim", "mask_dim", "num_layers", "num_heads", "ffn_dim", "num_points"):
        _int(pix[key], f"pixel_decoder.{key}", 1)
    for key in ("hidden_dim", "num_queries", "num_heads", "ffn_dim", "num_layers"):
        _int(dec[key], f"decoder.{key}", 1)
    if pix["conv_dim"] % 32 or pix["conv_dim"] % pix["num_heads"]:
        _fail("pixel_decoder.conv_dim", f"a multiple of 32 (GroupNorm groups) and of num_heads ({pix['num_heads']})", pix["conv_dim"])
    if not pix["conv_dim"] == pix["mask_dim"] == dec["hidden_dim"]:
        raise ConfigError(
            "model.pixel_decoder.conv_dim, pixel_decoder.mask_dim and decoder.hidden_dim must be equal "
            f"(FC-CLIP feeds the pixel decoder's maps to the decoder unprojected), got {pix['conv_dim']}, "
            f"{pix['mask_dim']}, {dec['hidden_dim']}"
        )
    if dec["hidden_dim"] % dec["num_heads"]:
        _fail("decoder.hidden_dim", f"a multiple of decoder.num_heads ({dec['num_heads']})", dec["hidden_dim"])
    _fraction(ens["alpha"], "ensemble.alpha")
    _fraction(ens["beta"], "ensemble.beta")
    if not isinstance(ens["log_space"], bool):
        _fail("ensemble.log_space", "true or false", ens["log_space"])
    from infoclip.mask_classification import SetCriterionConfig

    SetCriterionConfig.from_mapping(cfg["criterion"], num_classes=1)  # raises ConfigError naming bad values
    for key in ("size_divisibility", "test_short_side", "test_max_size", "text_chunk"):
        _int(inf[key], f"inference.{key}", 1)
    if inf["size_divisibility"] % 32:
        _fail("inference.size_divisibility", "a multiple of 32 (the ConvNeXt stride)", inf["size_divisibility"])
    for key in ("postprocess_before_inference", "text_truncate"):
        if not isinstance(inf[key], bool):
            _fail(f"inference.{key}", "true or false", inf[key])
    return cfg
