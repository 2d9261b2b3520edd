"""The miniature's tiny CLIP: an open_clip custom architecture, its shipped weights, and its dense forward.

The architecture is an ordinary open_clip config, ``infoclip/clip/model_configs/infoclip-miniature-clip.json``,
registered with open_clip by ``infoclip.clip.loading.register_tiny_configs`` beside the test architectures, so
that any process (``infoclip eval``, ``infoclip segment``) can rebuild a model trained on it. The weights that
ship with infoclip (``assets/infoclip-miniature-clip.safetensors``, fp16 open_clip state dict) were produced
by ``infoclip miniature pretrain-clip`` and load like any local CLIP checkpoint (``model.clip.pretrained``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F

from infoclip.errors import WeightsNotFoundError

#: open_clip model name of the miniature's CLIP architecture
MINIATURE_CLIP = "infoclip-miniature-clip"

_ASSETS = "assets"
_WEIGHTS_FILE = f"{MINIATURE_CLIP}.safetensors"


def assets_dir() -> Path:
    """Folder of the shipped miniature assets (inside the installed package)."""
    return Path(str(resources.files("infoclip.miniature") / _ASSETS))


def config_path() -> Path:
    """Path of the open_clip JSON config of the miniature CLIP."""
    from infoclip.clip import loading

    return loading._CONFIG_DIR / f"{MINIATURE_CLIP}.json"


def shipped_weights_path() -> Path:
    """Path of the shipped pretrained miniature CLIP weights (fp16 safetensors, open_clip state dict).

    Raises:
        WeightsNotFoundError: the file is missing from this installation.
    """
    path = assets_dir() / _WEIGHTS_FILE
    if not path.is_file():
        raise WeightsNotFoundError(
            f"the shipped miniature CLIP weights are missing ({path}); reinstall infoclip, or regenerate them "
            "with `infoclip miniature pretrain-clip --output " + str(path) + "`"
        )
    return path


def architecture() -> dict:
    """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) of the miniature CLIP."""
    return json.loads(config_path().read_text(encoding="utf-8"))


def register_config() -> str:
    """Register the miniature CLIP architecture with open_clip (idempotent); returns its model name."""
    from infoclip.clip.loading import register_tiny_configs

    register_tiny_configs()
    return MINIATURE_CLIP


def create_clip(pretrained: str | Path | None = None) -> torch.nn.Module:
    """Build the miniature CLIP with open_clip; ``pretrained`` is a local weights file or None (random init)."""
    import open_clip

    name = register_config()
    model = open_clip.create_model(name, pretrained=str(pretrained) if pretrained else None, device="cpu")
    return model


def image_size() -> int:
    """Input resolution (pixels, square) of the miniature CLIP's image tower."""
    return int(architecture()["vision_cfg"]["image_size"])


#: CLIP normalisation on the 0-255 scale (the statistics every OpenAI-style CLIP uses)
CLIP_MEAN = (0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255)
CLIP_STD = (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float RGB in [0, 255] -> CLIP-normalised float."""
    mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def encode_image_both(visual: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled image embedding and the dense patch embeddings of one pass through an open_clip ViT.

    The dense path is CAT-Seg's (catseg-reference §1.2): the last block is replaced by a value-only path
    whose residual is the input CLS token, followed by ``ln_post`` and the projection on every token. Both
    outputs share every block but the last, so pretraining with a loss on each costs one tower pass.

    Args:
        visual: an open_clip ``VisionTransformer`` (batch-first, ``tok`` pooling, no attention pooling).
        images: (B, 3, S, S) CLIP-normalised float at the tower's native size.

    Returns:
        pooled: (B, E) the ordinary CLIP image embedding (not normalised).
        dense: (B, N, E) dense patch embeddings (CLS dropped, not normalised), N = (S / patch)^2.
    """
    x = visual._embeds(images)
    blocks = visual.transformer.resblocks
    for block in blocks[:-1]:
        x = block(x)
    last = blocks[-1]
    pooled = visual.ln_post(last(x)[:, 0]) @ visual.proj

    attn = last.attn
    width = x.shape[-1]
    v_weight = attn.in_proj_weight[2 * width :]
    v_bias = attn.in_proj_bias[2 * width :]
    v = attn.out_proj(F.linear(last.ln_1(x), v_weight, v_bias))
    v = last.ls_1(v) + x[:, :1]
    v = v + last.ls_2(last.mlp(last.ln_2(v)))
    dense = visual.ln_post(v[:, 1:]) @ visual.proj
    return pooled, dense
