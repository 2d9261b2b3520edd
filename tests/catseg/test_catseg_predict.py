"""CAT-Seg's evaluation protocol (catseg-reference §3.1) on the tiny preset, against a direct transcription
of the official steps (nn.Unfold / nn.Fold, 50/50 global average, detectron2 resize rules)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from infoclip.adapters.catseg.model import clip_input, resize_shortest_edge

from .conftest import CLASSES


@pytest.mark.parametrize(
    ("size", "expected"),
    [((480, 640), (640, 853)), ((640, 427), (959, 640)), ((1000, 100), (2560, 256)), ((640, 700), (640, 700))],
)
def test_resize_shortest_edge_sizes(size, expected):
    image = torch.zeros(3, *size)
    assert tuple(resize_shortest_edge(image, 640, 2560).shape[-2:]) == expected


def test_resize_shortest_edge_is_pil_bilinear_on_8_bit():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    out = resize_shortest_edge(torch.from_numpy(pixels).permute(2, 0, 1).float(), 640, 2560)
    expected = np.asarray(Image.fromarray(pixels).resize((640, 960), Image.BILINEAR))
    assert torch.equal(out, torch.from_numpy(expected.copy()).permute(2, 0, 1).float())


def _official_sliding(model, image, names, kernel=384, overlap=0.333, out_res=(640, 640)):
    """The official inference_sliding_window, step by step, on an already short-side-resized image."""
    stride = int(kernel * (1 - overlap))
    unfold = torch.nn.Unfold(kernel_size=kernel, stride=stride)
    fold = torch.nn.Fold(out_res, kernel_size=kernel, stride=stride)
    squashed = F.interpolate(image.unsqueeze(0), size=out_res, mode="bilinear", align_corners=False).squeeze(0)
    crops = unfold(squashed).T.reshape(-1, 3, kernel, kernel)
    global_view = F.interpolate(image.unsqueeze(0), size=(kernel, kernel), mode="bilinear", align_corners=False)
    batch = torch.cat([crops, global_view])
    outputs = model(batch, names)
    outputs = F.interpolate(outputs, size=kernel, mode="bilinear", align_corners=False).sigmoid()
    global_output = F.interpolate(outputs[-1:], size=out_res, mode="bilinear", align_corners=False)
    local = fold(outputs[:-1].flatten(1).T) / fold(unfold(torch.ones([1, *out_res])))
    return ((local + global_output) / 2.0)[0]


def test_sliding_protocol_matches_official_steps(tiny_model):
    model = tiny_model.eval()
    rng = np.random.default_rng(1)
    pixels = torch.from_numpy(rng.integers(0, 256, (3, 240, 320), dtype=np.uint8)).float()
    probs = model.predict(pixels, CLASSES)
    assert probs.shape == (5, 240, 320) and probs.dtype == torch.float32
    assert 0 <= probs.min() and probs.max() <= 1
    with torch.no_grad():
        resized = resize_shortest_edge(pixels, 640, 2560)
        folded = _official_sliding(model, resized, CLASSES)
        expected = F.interpolate(folded[None], size=(240, 320), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(probs, expected, atol=1e-5)


def test_sliding_with_fewer_views_per_batch_gives_same_result(tiny_config):
    from infoclip.adapters.catseg import CATSeg

    torch.manual_seed(0)
    a = CATSeg(tiny_config).eval()
    b = CATSeg({**tiny_config, "inference": {**tiny_config["inference"], "views_per_batch": 2}}).eval()
    b.load_state_dict(a.state_dict())
    image = torch.rand(3, 64, 96) * 255
    assert torch.allclose(a.predict(image, CLASSES[:3]), b.predict(image, CLASSES[:3]), atol=1e-6)


def test_whole_protocol_pads_then_resizes(tiny_model):
    model = tiny_model.train()  # predict switches to eval and back
    image = torch.rand(3, 100, 137) * 255
    probs = model.predict(image, CLASSES, protocol="whole")
    assert model.training
    with torch.no_grad():
        model.eval()
        resized = resize_shortest_edge(image, 640, 2560)
        assert resized.shape == (3, 640, 877)
        mean = torch.tensor(model.config["clip"]["pixel_mean"]).view(3, 1, 1)
        std = torch.tensor(model.config["clip"]["pixel_std"]).view(3, 1, 1)
        padded = F.pad((resized - mean) / std, (0, 896 - 877))  # detectron2 ImageList: zeros after normalising
        normalised = F.interpolate(padded[None], size=(128, 128), mode="bilinear", align_corners=False)
        assert torch.allclose(normalised, clip_input(resized[None], model.config))
        logits = model._forward(normalised, CLASSES, None)[0]
        expected = F.interpolate(logits.sigmoid(), size=(100, 137), mode="bilinear", align_corners=False)[0]
    assert torch.allclose(probs, expected, atol=1e-6)


def test_predict_many_classes_uses_preselection(tiny_model):
    names = [f"object {i}" for i in range(18)]  # > pad_len 16
    probs = tiny_model.predict(torch.rand(3, 50, 60) * 255, names, protocol="whole")
    assert probs.shape == (18, 50, 60)
    dropped = torch.sigmoid(torch.tensor(-100.0))
    assert int((probs == dropped).all(dim=(1, 2)).sum()) == 2


def test_benchmark_script_runs_on_the_tiny_preset():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "catseg.py"
    spec = importlib.util.spec_from_file_location("catseg_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for case in ("forward", "train", "e2e"):
        row = bench.run_case(case, classes=3, threads=1, repeats=1, preset="catseg-tiny")
        assert row["cpu_s"] > 0 and row["peak_rss_mib"] >= row["rss_after_build_mib"] > 0
