"""Seeded random weights in the official CAT-Seg checkpoint layout, the same on every machine.

The golden tensors under ``tests/catseg/golden/`` were computed by the official CAT-Seg code from weights made
by ``official_state_dict`` (the scratch harness imported this module), and ``test_catseg_golden.py`` makes the
same weights again to run infoclip on them. So this function is part of the golden record: changing any
number in it invalidates the golden files (regenerate them as ``golden/README.md`` says).

Every tensor gets its own ``torch.Generator`` seeded from the base seed and the CRC-32 of its name, so a
tensor's values depend only on (seed, name, shape), not on which other keys exist or in what order.

No tensor keeps an identity value (norm weights at 1, biases at 0, padding tokens at 0): with those, a
swapped ``ln_1``/``ln_2`` or a dropped bias would give the same output and pass unseen.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch

GOLDEN_DIR = Path(__file__).parent / "golden"

# official buffers that the official model computes itself (shifted-window masks); not weights, so they are
# written as zeros: infoclip's converter checks their shape and drops them, the harness kept the official ones
_DERIVED = re.compile(r"\.attn_mask$")
# transposed convolutions store (in, out, k, k); with stride == kernel each output sees `in` inputs
_TRANSPOSED = re.compile(r"^(upsample[12]\.weight|.*\.decoder\d\.up\.weight)$")
_CLIP = "sem_seg_head.predictor.clip_model."


def read_layout(path: str | Path) -> dict[str, tuple[int, ...]]:
    """The ``{key: shape}`` JSON the harness read off the official model's ``state_dict()``."""
    return {key: tuple(shape) for key, shape in json.loads(Path(path).read_text()).items()}


def _values(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    normal = torch.randn(shape, generator=generator, dtype=torch.float32)
    name = key[len(_CLIP) :] if key.startswith(_CLIP) else key
    in_clip = key.startswith(_CLIP)
    if name.endswith("bias"):  # .bias and attn.in_proj_bias
        return normal * (0.02 if in_clip else 0.05)
    if name.endswith(("padding_tokens", "padding_guidance")):
        return normal * 0.5
    if name == "logit_scale":
        return math.log(1 / 0.07) + normal * 0.1
    if name in ("visual.class_embedding", "visual.positional_embedding", "visual.proj", "text_projection"):
        width = shape[0] if name.endswith("proj") or name == "text_projection" else shape[-1]
        return normal * width**-0.5
    if name == "positional_embedding":
        return normal * 0.01
    if name == "token_embedding.weight":
        return normal * 0.02
    if len(shape) == 1 and name.endswith("weight"):  # LayerNorm / GroupNorm scales
        return 1 + normal * 0.1
    fan_in = shape[0] if _TRANSPOSED.match(key) else math.prod(shape[1:])
    return normal * fan_in**-0.5


def official_state_dict(layout: Mapping[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Seeded float32 tensors for an official ``{key: shape}`` layout (official key names).

    Norm scales 1 + N(0, 0.1^2); biases N(0, 0.02^2) in CLIP, N(0, 0.05^2) elsewhere; padding tokens and
    padding guidance N(0, 0.5^2); CLIP's class embedding, image position table and projections at CLIP's
    width^-1/2 scale, text positions 0.01, token embedding 0.02, logit scale ln(1/0.07) + N(0, 0.1^2); other
    matrices and convolutions N(0, 1/fan_in). Shifted-window masks (buffers) are zeros.
    """
    state = {}
    for key in sorted(layout):
        shape = tuple(layout[key])
        if _DERIVED.search(key):
            state[key] = torch.zeros(shape)
            continue
        generator = torch.Generator().manual_seed(seed * 2**32 + zlib.crc32(key.encode()))
        state[key] = _values(key, shape, generator)
    return state


def seeded_image(height: int, width: int, seed: int) -> torch.Tensor:
    """(3, height, width) uint8 RGB: smooth seeded blobs plus pixel noise (so both low and high spatial
    frequencies reach the model)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 16), max(2, width // 16), generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]
    noise = torch.rand(3, height, width, generator=generator)
    return (smooth * 200 + noise * 55).round().clamp(0, 255).to(torch.uint8)
