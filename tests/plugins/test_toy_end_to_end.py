"""Proof that the adapter contract suffices: the toy adapter (a conv encoder with a hashed-trigram text
embedder, no CLIP, its own ``tiles`` protocol, preset and checkpoint format), installed as the entry-point
distribution ``infoclip-toy``, goes through every command of the real CLI."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from infoclip.training.run_log import read_csv
from tests.training.conftest import CLASSES, cli, tiny_dataset, tiny_overrides  # noqa: F401  (fixtures)

LOSSES = ("loss_total", "loss_task", "loss_compression", "loss_distillation")
TOTAL = 4


def _train(cli, run, dataset, iterations, *extra):  # noqa: ANN001
    sets = [*tiny_overrides(dataset, iterations), "solver.schedule=constant", "train.checkpoint_period=2", *extra]
    args = ["train", "--adapter", "toy", "--config", "toy-tiny", "--output-dir", str(run), "--json"]
    result = cli([*args, *[x for s in sets for x in ("--set", s)]])
    assert result.exit_code == 0, result.stderr[-3000:]
    return result


def _losses(run):  # noqa: ANN001
    return [tuple(float(row[k]) for k in LOSSES) for row in read_csv(run / "log.csv")]


def test_toy_adapter_trains_resumes_exports_evaluates_segments_and_converts(installed_toy, cli, tmp_path, tiny_dataset):
    toy = sys.modules.get("infoclip_toy_adapter") or __import__("infoclip_toy_adapter")
    official = toy.write_official(toy.ToyModel({"init_seed": 7}), tmp_path / "toyseg.pt")
    start = f"model.pretrained={official}"  # load_pretrained reads the made-up official format

    # train with the InfoCLIP objective; an uninterrupted run is the reference
    reference = _train(cli, tmp_path / "ref", tiny_dataset, TOTAL, start)
    assert "trainable parameters" in reference.stderr and "encoder" in reference.stderr, "the lr parts table"
    ref = _losses(tmp_path / "ref")
    assert len(ref) == TOTAL and all(r[2] != 0.0 and r[3] != 0.0 for r in ref), "InfoCLIP terms are trained"

    # half the run, then --resume to the full length: identical losses, iteration by iteration
    run = tmp_path / "run"
    _train(cli, run, tiny_dataset, TOTAL // 2, start)
    resumed = cli(["train", "--output-dir", str(run), "--resume", "--set", f"solver.iterations={TOTAL}", "--no-progress"])
    assert resumed.exit_code == 0, resumed.stderr[-3000:]
    assert _losses(run) == ref

    weights = tmp_path / "toy.safetensors"
    exported = cli(["export", str(run), "-o", str(weights)])
    assert exported.exit_code == 0, exported.stderr

    scored = cli(["eval", "-w", str(weights), "-d", str(tiny_dataset), "--limit", "2", "-o", str(tmp_path / "eval")])
    assert scored.exit_code == 0, scored.stderr
    metrics = json.loads((tmp_path / "eval" / "toyroom" / "metrics.json").read_text())
    assert metrics["num_images"] == 2 and metrics["protocol"] == "tiles" and 0.0 <= metrics["mIoU"] <= 100.0

    image = tmp_path / "room.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "seg"
    segmented = cli(["segment", str(image), "-w", str(weights), "-c", ",".join(CLASSES), "-o", str(out), "--save-probs"])
    assert segmented.exit_code == 0, segmented.stderr
    record = json.loads((out / "room.json").read_text())
    assert record["protocol"] == "tiles" and "trigram" in json.dumps(record), record

    # convert the official checkpoint, then segment with it: the scores of the model the importer describes
    converted = tmp_path / "converted.safetensors"
    done = cli(["convert", "toy", str(official), "-o", str(converted)])
    assert done.exit_code == 0, done.stderr
    again = cli(["segment", str(image), "-w", str(converted), "-c", ",".join(CLASSES), "-o", str(tmp_path / "seg2"),
                 "--save-probs", "--protocol", "whole"])  # fmt: skip
    assert again.exit_code == 0, again.stderr
    probs = np.load(tmp_path / "seg2" / "room_probs.npy")
    expected = toy.ToyModel({"init_seed": 7}).eval().predict(
        torch.from_numpy(np.asarray(Image.open(image), dtype=np.float32)).permute(2, 0, 1), CLASSES, "whole"
    )
    np.testing.assert_allclose(probs, expected.numpy(), atol=1e-5)
    assert not np.allclose(probs, np.load(out / "room_probs.npy"), atol=1e-3), "the trained model differs"
