"""Fixtures of the CAT-Seg model tests: the tiny preset (random tiny CLIP), a few images and classes."""

from __future__ import annotations

import pytest
import torch

from infoclip.adapters.catseg import preset_model_config

CLASSES = ["cat", "dog", "sofa, couch", "sky", "grass"]


@pytest.fixture(scope="session")
def tiny_config():
    return preset_model_config("catseg-tiny")


@pytest.fixture()
def tiny_model(tiny_config):
    from infoclip.adapters.catseg import build_model

    torch.manual_seed(0)
    return build_model(tiny_config)


@pytest.fixture()
def images():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 128, 128, generator=generator) * 255
