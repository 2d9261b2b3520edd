"""Build open_clip CLIP models for dense use, and load their pretrained weights explicitly.

Building and loading are separate steps on purpose: ``build_clip`` never touches the network (random
init, or a seeded random init), so a model that is about to receive full weights from a file builds
offline; ``load_clip_weights`` fetches a pretrained tag through open_clip's download helpers or reads a
local file. When the weights are neither cached nor downloadable it raises one
``WeightsNotFoundError`` that says which file to fetch and where to put it, instead of open_clip's
retry loop (about 47 s offline) and a traceback.
"""

from __future__ import annotations

import logging
import os
import socket
import zipfile
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from infoclip.clip.attention import SplitQKVAttention
from infoclip.errors import CheckpointError, ConfigError, WeightsNotFoundError

_CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered = False

#: keys of OpenAI's TorchScript archives that are not weights
_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")


def register_tiny_configs() -> None:
    """Register infoclip's small architectures (``model_configs/*.json``) with open_clip, once.

    ``infoclip-tiny-clip``: ViT with patch 16, width 64, 4 layers, 2 heads, a 4x4 position table (image
    size 64, so CAT-Seg's position-embedding resize runs at any other size); text tower width 32,
    2 layers, context 16; joint embedding 32; QuickGELU. Random init only, for tests and smoke runs.
    ``infoclip-miniature-clip`` (ViT) and ``infoclip-miniature-convnext`` (timm ``convnext_atto`` at 128 px): the
    miniature's pretrained CLIPs (``infoclip.miniature.tiny_clip``).
    """
    global _registered
    if _registered:
        return
    import open_clip

    if not all(p.stem in open_clip.list_models() for p in _CONFIG_DIR.glob("*.json")):
        open_clip.add_model_config(_CONFIG_DIR)
    _registered = True


def split_attention(clip_model: nn.Module) -> nn.Module:
    """Replace every ``nn.MultiheadAttention`` of both towers by ``SplitQKVAttention`` (same numbers), in place."""
    for blocks in (clip_model.visual.transformer.resblocks, clip_model.transformer.resblocks):
        for block in blocks:
            if isinstance(block.attn, nn.MultiheadAttention):
                block.attn = SplitQKVAttention.from_multihead(block.attn)
    return clip_model


def create_random_model(model_name: str, init_seed: int | None = None) -> nn.Module:
    """``open_clip.create_model(model_name)`` with random weights, seeded without touching the global RNG.

    Built on torch's current default device (CPU, or "meta" inside ``with torch.device("meta")``, which builds
    the architecture without allocating or initialising weights). The name must be registered with open_clip.
    """
    import open_clip

    previous_disable = logging.root.manager.disable
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly": random init is the point here
    try:
        with torch.random.fork_rng(devices=[]):
            if init_seed is not None:
                torch.manual_seed(int(init_seed))
            return open_clip.create_model(model_name, pretrained=None, device=torch.get_default_device())
    finally:
        logging.disable(previous_disable)


def build_clip(model_name: str, init_seed: int | None = None) -> nn.Module:
    """An open_clip ``CLIP`` with random weights and Q/K/V split attention; never downloads anything.

    Args:
        model_name: an open_clip architecture name (``ViT-B-16-quickgelu``, ``ViT-L-14-336-quickgelu``,
            ``infoclip-tiny-clip``, ...). Must be a ViT image tower with OpenAI-style text tower.
        init_seed: seed of the random init (the global RNG is left untouched); ``None`` uses the global RNG.

    Raises:
        ConfigError: unknown architecture, or one CAT-Seg's dense forward cannot run.
    """
    import open_clip
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    register_tiny_configs()
    if model_name not in open_clip.list_models():
        vit = ", ".join(m for m in open_clip.list_models() if "quickgelu" in m and m.startswith("ViT"))
        raise ConfigError(f"unknown open_clip architecture {model_name!r}; ViT choices include: {vit}, infoclip-tiny-clip")
    model = create_random_model(model_name, init_seed)
    visual = getattr(model, "visual", None)
    if not isinstance(visual, VisionTransformer) or not hasattr(model, "token_embedding"):
        raise ConfigError(
            f"{model_name} is not a ViT CLIP with an OpenAI-style text tower; CAT-Seg needs one "
            "(e.g. ViT-B-16-quickgelu or ViT-L-14-336-quickgelu)"
        )
    blocks = list(visual.transformer.resblocks) + list(model.transformer.resblocks)
    if not all(isinstance(b, ResidualAttentionBlock) and isinstance(b.ls_1, nn.Identity) for b in blocks):
        raise ConfigError(f"{model_name} uses custom or layer-scaled attention blocks, which CAT-Seg's dense forward does not support")
    if visual.attn_pool is not None or not isinstance(visual.patch_dropout, nn.Identity):
        raise ConfigError(f"{model_name} uses attentional pooling or patch dropout, which CAT-Seg's dense forward does not support")
    return split_attention(model)


def _is_local_path(pretrained: str) -> bool:
    return os.sep in pretrained or "/" in pretrained or Path(pretrained).suffix in (".pt", ".pth", ".bin", ".safetensors")


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def resolve_pretrained(model_name: str, pretrained: str, cache_dir: str | None = None) -> Path:
    """Path of the weights file for ``pretrained`` (a local file, or an open_clip tag, downloading if possible).

    Raises:
        WeightsNotFoundError: the file is missing, or the tag's file is neither cached nor downloadable
            (the message names the file to fetch and where to put it).
        ConfigError: ``pretrained`` is neither a file path nor a tag open_clip knows for ``model_name``.
    """
    import open_clip

    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    if _is_local_path(pretrained):
        raise WeightsNotFoundError(f"CLIP weights file not found: {path}")
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
        raise ConfigError(
            f"open_clip has no pretrained tag {pretrained!r} for {model_name} (tags: {tags}); "
            "give a tag or the path of a local weights file"
        )
    hub = cfg.get("hf_hub", "")
    url = cfg.get("url", "")
    if hub:
        repo_id, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        from huggingface_hub import hf_hub_download

        for name in ("open_clip_model.safetensors", filename) if filename.endswith(".bin") else (filename,):
            try:
                return Path(hf_hub_download(repo_id=repo_id, filename=name, cache_dir=cache_dir, local_files_only=True))
            except Exception:  # not cached: try the next name, then the network
                continue
        source = f"https://huggingface.co/{repo_id}/resolve/main/{filename}"
        where = "the Hugging Face cache (HF_HOME, default ~/.cache/huggingface)"
    else:
        cached = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(urlparse(url).path)
        if cached.is_file():
            return cached
        source, where = url, str(cached.parent)
    if not _hub_reachable():
        raise WeightsNotFoundError(
            f"CLIP weights {model_name}:{pretrained} are not cached and cannot be downloaded (offline). "
            f"Fetch {source} on a connected machine and either copy it into {where} "
            f"(e.g. by running `python -c \"import open_clip; open_clip.create_model('{model_name}', "
            f"pretrained='{pretrained}')\"` there and copying the cache), or set model.clip.pretrained "
            "to the file's local path"
        )
    try:
        return Path(open_clip.download_pretrained(cfg, cache_dir=cache_dir))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsNotFoundError(
            f"downloading CLIP weights {model_name}:{pretrained} from {source} failed ({first}); "
            "download the file yourself and set model.clip.pretrained to its path"
        ) from exc


def read_clip_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read CLIP weights: safetensors, a state dict saved by ``torch.save`` (read with ``weights_only=True``),
    or OpenAI's original TorchScript archive (read with ``torch.jit.load``, which unpickles no Python objects).

    Returns the state dict in open_clip's key layout, with packed ``in_proj_weight`` split into
    ``q_proj_weight``/``k_proj_weight``/``v_proj_weight``.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Mapping[str, torch.Tensor] = load_file(str(path), device="cpu")
    elif zipfile.is_zipfile(path) and any(n.endswith("constants.pkl") for n in zipfile.ZipFile(path).namelist()):
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        from infoclip.weights import torch_load_checkpoint

        state = torch_load_checkpoint(path)
        if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a CLIP state dict")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        if key in _NON_WEIGHT_KEYS:
            continue
        if key.endswith("attn.in_proj_weight"):
            stem = key[: -len("in_proj_weight")]
            for name, part in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                out[f"{stem}{name}_proj_weight"] = part
        else:
            out[key] = value
    return out


def load_clip_weights(
    clip_model: nn.Module, model_name: str, pretrained: str, cache_dir: str | None = None
) -> Path:
    """Load pretrained weights (a tag or a local file) into a model from ``build_clip``, strictly.

    Returns the path of the weights file that was read.

    Raises:
        WeightsNotFoundError: see ``resolve_pretrained``.
        CheckpointError: the file does not fit the architecture (the message names the keys).
    """
    from infoclip.weights import load_state_strict

    path = resolve_pretrained(model_name, pretrained, cache_dir)
    state = read_clip_state_dict(path)
    own = clip_model.state_dict()
    if "logit_bias" in own and "logit_bias" not in state:
        state["logit_bias"] = own["logit_bias"]
    state = {k: (v.reshape(own[k].shape) if k in own and v.numel() == own[k].numel() else v) for k, v in state.items()}
    load_state_strict(clip_model, state, path)
    return path


def load_clip(
    model_name: str, pretrained: str | None = None, cache_dir: str | None = None, init_seed: int | None = None
) -> nn.Module:
    """``build_clip`` then, when ``pretrained`` is given, ``load_clip_weights``; returns the model in eval mode.

    Args:
        model_name: open_clip architecture name.
        pretrained: an open_clip tag (``"openai"``), a local weights file, or ``None`` for random init.
        cache_dir: download cache (default: open_clip's / the Hugging Face hub's).
        init_seed: seed of the random init.
    """
    model = build_clip(model_name, init_seed=init_seed)
    if pretrained:
        load_clip_weights(model, model_name, pretrained, cache_dir)
    return model.eval()
