"""Fixtures of the SAN tests: the tiny preset (random tiny CLIP), official-layout weights, a few images."""

from __future__ import annotations

import re

import pytest
import torch

CLASSES = ["cat", "dog", "sofa, couch", "sky", "grass"]
_VISUAL_BLOCK = re.compile(r"^clip_model\.visual\.transformer\.resblocks\.(\d+)\.(.*)$")


def official_state(state: dict[str, torch.Tensor], feature_layers: int, context: int, num_classes: int = 171) -> dict[str, torch.Tensor]:
    """An infoclip SAN state -> the official checkpoint layout, from this file's own reading of the official
    module tree (``SAN.clip_visual_extractor`` / ``clip_rec_head`` / ``ov_classifier`` /
    ``side_adapter_network`` / ``criterion``), not from the converter's mapping."""
    out: dict[str, torch.Tensor] = {}
    packed: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = _VISUAL_BLOCK.match(key)
        if match:
            block, rest = int(match.group(1)), match.group(2)
            name = (f"clip_visual_extractor.resblocks.{block}." if block < feature_layers
                    else f"clip_rec_head.resblocks.{block - feature_layers}.") + rest  # fmt: skip
        elif key.startswith("clip_model.visual."):
            rest = key[len("clip_model.visual.") :]
            name = ("clip_rec_head." if rest in ("ln_post.weight", "ln_post.bias", "proj") else "clip_visual_extractor.") + rest
        elif key.startswith("clip_model."):
            name = "ov_classifier." + key[len("clip_model.") :]
        elif key == "bg_embed":
            name = "ov_classifier.bg_embed"
        else:
            name = key
        for part in ("q", "k", "v"):
            if name.endswith(f"attn.{part}_proj_weight"):
                packed.setdefault(name[: -len("q_proj_weight")] + "in_proj_weight", {})[part] = value
                break
        else:
            out[name] = value.clone()
    for name, parts in packed.items():
        out[name] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    out["ov_classifier.attn_mask"] = torch.full((context, context), float("-inf")).triu_(1)
    out["criterion.empty_weight"] = torch.ones(num_classes + 1)
    return out


@pytest.fixture(scope="session")
def tiny_config():
    from infoclip.adapters.san import preset_model_config

    return preset_model_config("san-tiny")


@pytest.fixture()
def tiny_model(tiny_config):
    from infoclip.adapters.san import build_model

    torch.manual_seed(0)
    return build_model(tiny_config).eval()


@pytest.fixture()
def images():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 96, 120, generator=generator) * 255
