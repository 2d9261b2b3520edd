"""Teacher-student alignment agreement: linear CKA, the Rényi MI of the maps, and its place in validation."""

from __future__ import annotations

import pytest
import torch

from infoclip.adapters.contract import DenseEmbeddings
from infoclip.errors import InputError
from infoclip.evaluation.alignment_agreement import AgreementMeter, alignment_maps, linear_cka, map_agreement


def test_linear_cka_properties():
    torch.manual_seed(0)
    x = torch.randn(64, 10)
    q, _ = torch.linalg.qr(torch.randn(10, 10))
    assert float(linear_cka(x, x)) == pytest.approx(1.0, abs=1e-9)
    assert float(linear_cka(x, 3.0 * x @ q + 2.0)) == pytest.approx(1.0, abs=1e-9), "rotation, scale, shift invariant"
    assert float(linear_cka(x, torch.randn(64, 10))) < 0.4
    assert float(linear_cka(x, torch.ones(64, 3))) == 0.0
    with pytest.raises(InputError, match="n >= 2"):
        linear_cka(x, torch.randn(32, 10))


def test_map_agreement_ranks_a_copy_above_noise():
    torch.manual_seed(0)
    teacher = torch.randn(64, 8)
    same = map_agreement(teacher, teacher.clone())
    noisy = map_agreement(teacher, teacher + 0.5 * torch.randn(64, 8))
    unrelated = map_agreement(teacher, torch.randn(64, 8))
    assert same["alignment_cka"] == pytest.approx(1.0, abs=1e-9)
    assert same["alignment_mi"] > noisy["alignment_mi"] > unrelated["alignment_mi"]
    assert same["alignment_cka"] > noisy["alignment_cka"] > unrelated["alignment_cka"]
    assert 0.0 < noisy["alignment_mi_ratio"] < same["alignment_mi_ratio"] <= 1.0 + 1e-9


def test_maps_and_meter():
    torch.manual_seed(0)
    image, text = torch.randn(2, 16, 4), torch.randn(3, 4)
    emb = DenseEmbeddings(image, (4, 4), text)
    maps = alignment_maps(emb)
    assert maps.shape == (2, 16, 3) and float(maps.abs().max()) <= 1.0 + 1e-6
    expected = torch.nn.functional.cosine_similarity(image[1, 5], text[2], dim=0)
    assert float(maps[1, 5, 2]) == pytest.approx(float(expected), abs=1e-6)
    meter = AgreementMeter()
    meter.update(emb, emb)
    assert meter.count == 2 and meter.result()["alignment_cka"] == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(InputError, match="differ in shape"):
        meter.update(emb, DenseEmbeddings(image, (4, 4), torch.randn(2, 4)))
