"""Fixtures of the FC-CLIP tests: the tiny preset, the official-code goldens, official-format checkpoints.

The goldens (``golden/fcclip_tiny.safetensors``, see ``golden/README.md``) were made by the official FC-CLIP
modules on weights that are a pure function of (key, shape, seed): ``seeded_state`` below regenerates them,
so no weights file is committed and the tests push them through infoclip's own converter.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from tests.segmentation.conftest import run_cli  # noqa: F401  (fixture: infoclip ARGS -> code, stdout, stderr)

GOLDEN = Path(__file__).parent / "golden" / "fcclip_tiny.safetensors"
_SPLIT = re.compile(r"^(.*\.attn\.)([qkv])_proj_weight$")


def seeded_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Deterministic weights: sorted keys drawn from one generator (rules in golden/README.md)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("logit_scale"):
            out[key] = torch.tensor(math.log(1 / 0.07) if "predictor" in key else math.log(100.0))
            continue
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        if len(shape) >= 2:
            v = z / math.sqrt(math.prod(shape[1:]))
        elif key.endswith(".gamma"):
            v = 0.5 + 0.1 * z
        elif key.endswith("sampling_offsets.bias"):
            v = 2.0 * z
        elif key.endswith("weight"):
            v = 1.0 + 0.1 * z
        else:
            v = 0.02 * z
        out[key] = v.float()
    return out


def official_shapes(preset: str) -> dict[str, tuple[int, ...]]:
    """The official checkpoint layout of a preset: infoclip's keys with the text tower's Q/K/V packed again."""
    from infoclip.adapters.fcclip.convert import _layout

    shapes: dict[str, tuple[int, ...]] = {}
    for key, shape, _ in _layout(preset):
        match = _SPLIT.match(key)
        if match:
            packed = match.group(1) + "in_proj_weight"
            rows = shapes.get(packed, (0, shape[1]))[0] + shape[0]
            shapes[packed] = (rows, shape[1])
        else:
            shapes[key] = shape
    return shapes


@pytest.fixture(scope="session")
def golden():
    from safetensors import safe_open

    with safe_open(str(GOLDEN), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    return tensors, meta


@pytest.fixture(scope="session")
def official_tiny_state():
    """The seeded official-format state of the tiny preset (the goldens' weights)."""
    return seeded_state(official_shapes("fcclip-tiny"), 0)


@pytest.fixture()
def official_file(tmp_path, official_tiny_state):
    """Write an official-format checkpoint; returns a function(state or wrapper) -> path."""

    def write(data=None, name="fcclip_cocopan.pth") -> Path:
        path = tmp_path / name
        torch.save({"model": official_tiny_state, "iteration": 1} if data is None else data, path)
        return path

    return write


@pytest.fixture(scope="session")
def tiny_config():
    from infoclip.adapters.fcclip import preset_model_config

    return preset_model_config("fcclip-tiny")


@pytest.fixture()
def tiny_model(tiny_config):
    from infoclip.adapters.fcclip import build_model

    return build_model(tiny_config)


def golden_class_names(meta: dict[str, str]) -> list[str]:
    return json.loads(meta["class_names"])
