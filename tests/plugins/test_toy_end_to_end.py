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
    # (recomputing the encoder in backward, set_grad_checkpointing, changes no number)
    reference = _train(cli, tmp_path / "ref", tiny_dataset, TOTAL, start, "train.grad_checkpointing=true")
    assert "trainable parameters" in reference.stderr and "hashed character trigrams" in reference.stderr
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


def test_toy_honours_the_contract_members(installed_toy, cli, tmp_path):
    from infoclip.adapters import get_adapter
    from infoclip.errors import InputError, WeightsNotFoundError

    toy = __import__("infoclip_toy_adapter")
    model = get_adapter("toy").build_model({})
    assert model.embed_dim == 8 and model.clip_tag == "" and model.default_protocol == "tiles"
    groups = {g["name"]: g for g in model.param_groups(1e-3, 0.0, {"encoder": 0.5, "clip": 0.01})}
    assert groups["encoder"]["lr"] == 5e-4 and groups["text"]["lr"] == groups["head"]["lr"] == 1e-3
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    image = torch.rand(3, 12, 12) * 255
    before = model.predict(image, ["cat", "sky"])
    model.set_prompt_templates(["a {}", "a photo of a {}"])
    assert model.prompt_templates == ["a {}", "a photo of a {}"] and model.model_config()["prompt_templates"] == model.prompt_templates
    assert not torch.allclose(before, model.predict(image, ["cat", "sky"]))
    with pytest.raises(InputError, match="holding"):
        model.set_prompt_templates(["no placeholder"])
    with pytest.raises(InputError, match="unknown protocol 'sliding'.*tiles, whole"):
        model.check_protocol("sliding")
    with pytest.raises(WeightsNotFoundError, match="do not exist"):
        toy.ToyModel({"pretrained": str(tmp_path / "missing.pt")}).load_pretrained()

    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}}, foreign)
    refused = cli(["convert", "toy", str(foreign), "-o", str(tmp_path / "x.safetensors")])
    assert refused.exit_code == 1 and "is not a toyseg-1 checkpoint" in refused.stderr
    assert sum(line.startswith("error:") for line in refused.stderr.splitlines()) == 1 and not (tmp_path / "x.safetensors").exists()
