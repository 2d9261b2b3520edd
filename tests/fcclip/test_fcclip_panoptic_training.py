"""FC-CLIP's recipe on COCO panoptic: instance targets from the PNG + JSON, LSJ, multistep; the CLI run resumes exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from infoclip.data.panoptic import PanopticDataset, coco_panoptic_spec
from infoclip.data.synthetic import write_coco_panoptic
from infoclip.mask_classification.targets import panoptic_targets
from infoclip.training.augment import TrainAugmentation
from infoclip.training.checkpoint import read_checkpoint
from infoclip.training.data_stream import AugmentedDataset, _collate
from infoclip.training.run_config import resolve_run_config
from infoclip.training.run_log import read_csv

from ..training.conftest import cli  # noqa: F401 - fixture


@pytest.fixture
def coco_root(tmp_path, monkeypatch):
    write_coco_panoptic(tmp_path / "datasets", num_images=4, seed=3)
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.delenv("DETECTRON2_DATASETS", raising=False)
    return tmp_path / "datasets"


def test_instance_labels_give_one_target_per_non_crowd_segment(coco_root):
    ds = PanopticDataset(coco_panoptic_spec(), "train")
    # image 0 is 40x56: short side 40 means no resize; the crop (larger than the image) only pads
    plain = TrainAugmentation(min_size=40, max_size=1333, crop_size=64, color_jitter=False, flip=False, size_divisibility=1)
    stream = AugmentedDataset(ds, plain, seed=0, instance_targets=True)
    images, labels = _collate([stream[(0, 0)], stream[(1, 0)]])
    assert images.shape == (2, 3, 64, 64) and labels.shape == (2, 64, 64)
    sample = ds[0]
    expected = panoptic_targets(torch.from_numpy(sample.segment_ids), sample.segments)
    assert len(expected) == len(sample.training_segments()) < len(sample.segments), "the crowd segment is left out"
    for targets in labels.targets():
        assert torch.equal(targets.labels, expected.labels)
        assert torch.equal(targets.masks[:, :40, :56], expected.masks) and not targets.masks[:, 40:].any()
    assert torch.equal(labels.semantic()[0, :40, :56], torch.from_numpy(sample.label))
    assert (labels.semantic()[:, 40:] == -1).all(), "the padding is unlabelled"


def test_fcclip_vocabularies_reach_vocab_through_the_plugin():
    from infoclip.adapters.fcclip import fcclip_vocabulary
    from infoclip.segmentation.classes import load_vocabulary, shipped_vocabularies

    assert {"fcclip-ade150", "fcclip-coco133", "fcclip-voc21", "ade150"} <= set(shipped_vocabularies())
    assert load_vocabulary("fcclip-ade150") == fcclip_vocabulary("ade150") != load_vocabulary("ade150")


def test_the_preset_is_the_official_recipe():
    config = resolve_run_config("fcclip-convnext-l", "fcclip")
    data, solver = config["data"], config["solver"]
    assert (data["train"], data["augmentation"], data["scale_range"], data["crop_size"]) == ("coco-panoptic", "lsj", [0.1, 2.0], 1024)
    assert (solver["lr"], solver["weight_decay"], solver["batch_size"], solver["iterations"]) == (1e-4, 0.05, 16, 368750)
    assert (solver["schedule"], solver["steps"], solver["gamma"], solver["grad_clip"]) == ("multistep", [327778, 355092], 0.1, 0.01)
    criterion = config["model"]["criterion"]
    assert (criterion["class_weight"], criterion["mask_weight"], criterion["dice_weight"], criterion["num_points"]) == (2.0, 5.0, 5.0, 12544)


def _sets(values):
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


TINY = {
    "data.crop_size": 64, "data.size_divisibility": 32, "data.num_workers": 0, "solver.batch_size": 2,
    "solver.steps": "[3]", "data.train_classes": "fcclip-coco133", "train.amp": "none", "train.eval_period": 0,
    "train.log_period": 1, "train.checkpoint_period": 2, "train.tensorboard": False, "model.criterion.num_points": 256,
    "infoclip.enabled": False, "train.log_term_gradients": False,
}


@pytest.mark.slow
def test_fcclip_trains_on_coco_panoptic_from_the_cli_and_resumes_bit_exact(cli, coco_root, tmp_path):
    base = ["train", "--adapter", "fcclip", "--config", "fcclip-tiny", "--json"]
    reference = tmp_path / "reference"
    done = cli([*base, "--output-dir", str(reference), *_sets({**TINY, "solver.iterations": 4})])
    assert done.exit_code == 0, done.stderr
    saved = yaml.safe_load((reference / "config.yaml").read_text())
    assert saved["data"]["train"] == "coco-panoptic" and saved["data"]["augmentation"] == "lsj"
    assert saved["solver"]["schedule"] == "multistep" and saved["data"]["train_classes"] == "fcclip-coco133"
    assert read_checkpoint(reference)["classes"][0].startswith("person,child,girl"), "FC-CLIP's own names train"
    rows = {int(r["iteration"]): r for r in read_csv(reference / "log.csv")}
    assert all(math.isfinite(float(r["loss_task"])) and float(r["loss_task"]) > 0 for r in rows.values())
    lrs = [float(rows[i]["lr_decoder"]) for i in (1, 2, 3, 4)]
    assert lrs == pytest.approx([1e-4, 1e-4, 1e-4, 1e-5]), "x0.1 from the iteration of the step"

    run = tmp_path / "resumed"
    first = cli([*base, "--output-dir", str(run), *_sets({**TINY, "solver.iterations": 2})])
    assert first.exit_code == 0, first.stderr
    second = cli(["train", "--output-dir", str(run), "--resume", "--set", "solver.iterations=4", "--json"])
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["iterations"] == 4
    again = {int(r["iteration"]): r for r in read_csv(run / "log.csv")}
    for it in (3, 4):
        assert again[it]["loss_task"] == rows[it]["loss_task"], f"iteration {it} after resume"
    a, b = read_checkpoint(reference)["model"], read_checkpoint(run)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed weights are bit-equal"


@pytest.mark.slow
def test_fcclip_trains_on_coco_panoptic_under_torchrun_with_two_ranks(coco_root, tmp_path):
    """The per-segment targets (InstanceLabels) cross DDP's forward: two gloo ranks train from one command, only
    rank 0 writes, and the checkpoint records both ranks' random states."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
               "-m", "infoclip_cli", "train", "--adapter", "fcclip", "--config", "fcclip-tiny", "--output-dir", str(run),
               "--no-progress", *_sets({**TINY, "solver.iterations": 2, "solver.batch_size": 4})]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", INFOCLIP_DATASETS=str(coco_root))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    data = read_checkpoint(run)
    assert data["world_size"] == 2 and len(data["rng"]) == 2
    rows = read_csv(run / "log.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert all(math.isfinite(float(r["loss_task"])) and float(r["loss_task"]) > 0 for r in rows)
    assert done.stdout.count("wrote the run to") == 1, "only rank 0 prints the summary"
