"""CLIP through open_clip, run the way CAT-Seg runs it.

* ``build_clip`` / ``load_clip`` / ``load_clip_weights``: open_clip models with Q/K/V split attention,
  built offline; pretrained weights by tag or local file, with a clear ``WeightsNotFoundError`` offline.
* ``encode_image_dense``: dense last block, on-the-fly bicubic position-table resize, intermediate taps.
* ``encode_text`` / ``class_prompts`` / ``get_tokenizer``: prompted class-name embeddings.
* ``register_tiny_configs``: the small architectures (``infoclip-tiny-clip`` for tests, the miniature's CLIPs).
* ``convnext``: the readouts of an open_clip ConvNeXt tower (trunk stages, the CLIP head per pixel).
"""

from infoclip.clip import convnext
from infoclip.clip.attention import SplitQKVAttention
from infoclip.clip.dense import (
    block_forward,
    class_prompts,
    dense_block_forward,
    embed_image_tokens,
    encode_image_dense,
    encode_text,
    get_tokenizer,
    normalize_images,
    resize_position_embedding,
    run_block,
)
from infoclip.clip.loading import (
    build_clip,
    load_clip,
    load_clip_weights,
    read_clip_state_dict,
    register_tiny_configs,
    resolve_pretrained,
    split_attention,
)

TINY_CLIP = "infoclip-tiny-clip"

__all__ = [
    "TINY_CLIP",
    "SplitQKVAttention",
    "block_forward",
    "build_clip",
    "dense_block_forward",
    "embed_image_tokens",
    "run_block",
    "class_prompts",
    "convnext",
    "encode_image_dense",
    "encode_text",
    "get_tokenizer",
    "load_clip",
    "load_clip_weights",
    "normalize_images",
    "read_clip_state_dict",
    "register_tiny_configs",
    "resize_position_embedding",
    "resolve_pretrained",
    "split_attention",
]
