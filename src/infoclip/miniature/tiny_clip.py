"""The miniature's tiny CLIPs: open_clip custom architectures, their shipped weights, and their dense forward.

Two architectures, ordinary open_clip configs in ``infoclip/clip/model_configs/`` registered with open_clip by
``infoclip.clip.loading.register_tiny_configs`` beside the test architectures, so that any process
(``infoclip eval``, ``infoclip segment``) can rebuild a model trained on them:

* ``infoclip-miniature-clip``: a ViT (patch 8 at 64 px), the CLIP of the CAT-Seg and SAN rows;
* ``infoclip-miniature-convnext``: timm ``convnext_atto`` at 128 px (the 64 px world upsampled twice, so that
  the stride-32 last stage is a 4 x 4 map), the frozen CLIP of the FC-CLIP rows.

Both share one text tower (width 64, 3 layers, context 24). The weights that ship with infoclip
(``assets/<architecture>.safetensors``, fp16 open_clip state dicts) were produced by ``infoclip miniature
pretrain-clip`` and load like any local CLIP checkpoint (``model.clip.pretrained``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F

from infoclip.clip import convnext
from infoclip.errors import ConfigError, WeightsNotFoundError

#: open_clip model name of the miniature's ViT CLIP (CAT-Seg, SAN)
MINIATURE_CLIP = "infoclip-miniature-clip"
#: open_clip model name of the miniature's ConvNeXt CLIP (FC-CLIP)
MINIATURE_CONVNEXT = "infoclip-miniature-convnext"
ARCHITECTURES = (MINIATURE_CLIP, MINIATURE_CONVNEXT)

_ASSETS = "assets"


def check_architecture(name: str) -> str:
    """``name`` if it is one of the miniature's CLIP architectures; otherwise a ``ConfigError`` naming them."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown miniature CLIP architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return name


def assets_dir() -> Path:
    """Folder of the shipped miniature assets (inside the installed package)."""
    return Path(str(resources.files("infoclip.miniature") / _ASSETS))


def config_path(name: str = MINIATURE_CLIP) -> Path:
    """Path of the open_clip JSON config of a miniature CLIP architecture."""
    from infoclip.clip import loading

    return loading._CONFIG_DIR / f"{check_architecture(name)}.json"


def shipped_weights_path(name: str = MINIATURE_CLIP) -> Path:
    """Path of the shipped pretrained weights of a miniature CLIP (fp16 safetensors, open_clip state dict).

    Raises:
        WeightsNotFoundError: the file is missing from this installation.
    """
    path = assets_dir() / f"{check_architecture(name)}.safetensors"
    if not path.is_file():
        raise WeightsNotFoundError(
            f"the shipped miniature CLIP weights are missing ({path}); reinstall infoclip, or regenerate them "
            f"with `infoclip miniature pretrain-clip --architecture {name} --output {path}`"
        )
    return path


def architecture(name: str = MINIATURE_CLIP) -> dict:
    """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) of a miniature CLIP."""
    return json.loads(config_path(name).read_text(encoding="utf-8"))


def register_config(name: str = MINIATURE_CLIP) -> str:
    """Register the miniature CLIP architectures with open_clip (idempotent); returns ``name``."""
    from infoclip.clip.loading import register_tiny_configs

    register_tiny_configs()
    return check_architecture(name)


def create_clip(pretrained: str | Path | None = None, name: str = MINIATURE_CLIP) -> torch.nn.Module:
    """Build a miniature CLIP with open_clip; ``pretrained`` is a local weights file or None (random init)."""
    import open_clip

    model = open_clip.create_model(register_config(name), pretrained=str(pretrained) if pretrained else None, device="cpu")
    return model


def image_size(name: str = MINIATURE_CLIP) -> int:
    """Input resolution (pixels, square) of a miniature CLIP's image tower."""
    return int(architecture(name)["vision_cfg"]["image_size"])


def tokenizer(model: torch.nn.Module):
    """open_clip's tokenizer at the model's context length (both miniature CLIPs use open_clip's BPE vocabulary)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=int(model.context_length))


#: CLIP normalisation on the 0-255 scale (the statistics every OpenAI-style CLIP uses)
CLIP_MEAN = (0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255)
CLIP_STD = (0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float RGB in [0, 255] -> CLIP-normalised float."""
    mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def tower_inputs(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """World images -> the tower's input: CLIP-normalised, bilinearly resized to the tower's native size.

    The ConvNeXt CLIP runs at 128 px on the 64 px world (its fine-tuning and evaluation upsample the same way,
    through the run config's image sizes), the ViT at the world's own 64 px (no resize).

    Args:
        images: (B, 3, S, S) float RGB in [0, 255].

    Returns:
        (B, 3, R, R) float, R = ``visual.image_size``.
    """
    size = tuple(int(v) for v in visual.image_size)
    x = normalize_images(images)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def encode_image_both(visual: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled image embedding and the dense embeddings of one pass through a miniature CLIP's image tower.

    ViT: the dense path is CAT-Seg's (catseg-reference §1.2): the last block is replaced by a value-only path
    whose residual is the input CLS token, followed by ``ln_post`` and the projection on every token. Both
    outputs share every block but the last. ConvNeXt: the dense path is FC-CLIP's out-of-vocabulary readout,
    CLIP's image head per pixel of the last stage (``infoclip.clip.convnext.dense_embeddings``); the pooled
    embedding is the same head on the averaged map. Either way one tower pass gives both.

    Args:
        visual: an open_clip ``VisionTransformer`` (batch-first, ``tok`` pooling, no attention pooling) or an
            open_clip timm ConvNeXt tower.
        images: (B, 3, S, S) CLIP-normalised float at the tower's native size (``tower_inputs``).

    Returns:
        pooled: (B, E) the ordinary CLIP image embedding (not normalised).
        dense: (B, N, E) dense embeddings, row-major (not normalised): N = (S / patch)^2 patch tokens (CLS
        dropped) for the ViT, N = (S / 32)^2 pixels of the last stage for the ConvNeXt.
    """
    if convnext.is_convnext_tower(visual):
        last = convnext.trunk_features(visual, images)["dense"]
        return convnext.pooled_embedding(visual, last), convnext.dense_embeddings(visual, last)
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
