"""Tiny FC-CLIP trains through the engine with the InfoCLIP objective (set criterion on semantic targets) and resumes exactly."""

from __future__ import annotations

import pytest
import torch

from infoclip.errors import AdapterError
from infoclip.training import prepare_run_config, train
from infoclip.training.checkpoint import read_checkpoint
from infoclip.training.run_log import read_csv

from ..training.conftest import tiny_dataset, tiny_overrides  # noqa: F401 - fixture
from ..training.test_engine import _StopAt

NAMES = ["person,child", "wall", "zebra crossing,crosswalk", "unicorn"]


def _overrides(dataset):
    return tiny_overrides(dataset, iterations=4) + [
        "data.min_size=64", "data.crop_size=64", "data.size_divisibility=32", "train.checkpoint_period=2",
        "model.criterion.num_points=256", "solver.lr=1e-4", "solver.weight_decay=0.05",
    ]


def _losses(run_dir):
    return {int(r["iteration"]): {k: float(v) for k, v in r.items() if k.startswith("loss_")} for r in read_csv(run_dir / "log.csv")}


def test_trains_with_infoclip_and_resumes_exactly(tmp_path, tiny_dataset):
    reference = tmp_path / "reference"
    config, _ = prepare_run_config(reference, "fcclip-tiny", "fcclip", _overrides(tiny_dataset))
    train(config, reference)
    losses = _losses(reference)
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(v["loss_compression"] != 0 and v["loss_distillation"] != 0 for v in losses.values())
    run = tmp_path / "interrupted"
    config, _ = prepare_run_config(run, "fcclip-tiny", "fcclip", _overrides(tiny_dataset))
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=_StopAt(3))
    config, _ = prepare_run_config(run, None, None, [], resume=True)
    train(config, run, resume=True)
    got = _losses(run)
    for it in (3, 4):
        assert got[it] == losses[it], f"iteration {it} after resume"
    a, b = read_checkpoint(reference)["model"], read_checkpoint(run)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    clip_a = {k: v for k, v in a.items() if k.startswith("backbone.clip_model.")}
    from infoclip.adapters.fcclip import build_model, preset_model_config

    fresh = build_model(preset_model_config("fcclip-tiny")).state_dict()
    assert all(torch.equal(v, fresh[k]) for k, v in clip_a.items()), "the frozen CLIP does not move"
    assert not torch.equal(a["sem_seg_head.predictor.class_embed.layers.2.weight"], fresh["sem_seg_head.predictor.class_embed.layers.2.weight"])


def test_set_loss_reads_the_pass_that_made_the_logits(tiny_model):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255
    labels = torch.randint(-1, 4, (2, 64, 64), generator=torch.Generator().manual_seed(1))
    tiny_model.config["criterion"]["num_points"] = 128
    out = tiny_model.train().forward_train(images, NAMES)
    torch.manual_seed(0)
    loss = tiny_model.task_loss(out.logits, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert tiny_model.sem_seg_head.predictor.query_feat.weight.grad is not None
    with pytest.raises(AdapterError, match="latest forward_train"):
        tiny_model.task_loss(out.logits, labels)
