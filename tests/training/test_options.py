"""Training options on the tiny CAT-Seg: gradient accumulation, gradient checkpointing, bf16, LPAM in the decoder."""

from __future__ import annotations

import pytest
import torch

from infoclip.training import export_checkpoint, prepare_run_config, train
from infoclip.training.engine import Trainer
from infoclip.training.run_config import resolve_run_config

from .conftest import tiny_overrides


def _trainer(tmp_path, dataset, *extra: str) -> Trainer:
    config = resolve_run_config("catseg-tiny", "catseg", tiny_overrides(dataset, 4) + list(extra))
    return Trainer(config, tmp_path / "run")


def _grads(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in trainer.bundle.named_parameters() if p.grad is not None}


def test_gradient_accumulation_matches_the_full_batch(tmp_path, tiny_dataset):
    # Baseline: the task loss is a mean over images, so 2 micro-steps of 1 image equal one step of 2.
    full = _trainer(tmp_path, tiny_dataset, "infoclip.enabled=false")
    accumulated = _trainer(tmp_path, tiny_dataset, "infoclip.enabled=false", "train.grad_accumulation=2")
    assert accumulated.layout.per_step == 1
    a, b = full.run_step(), accumulated.run_step()
    assert b.losses["task"] == pytest.approx(a.losses["task"], rel=1e-5)
    assert b.grad_norm == pytest.approx(a.grad_norm, rel=1e-4)
    ga, gb = _grads(full), _grads(accumulated)
    assert set(ga) == set(gb) and all(torch.allclose(ga[k], gb[k], rtol=1e-3, atol=1e-9) for k in ga)


def test_gradient_checkpointing_gives_the_same_step(tmp_path, tiny_dataset):
    plain = _trainer(tmp_path, tiny_dataset)
    checkpointed = _trainer(tmp_path, tiny_dataset, "train.grad_checkpointing=true")
    a, b = plain.run_step(), checkpointed.run_step()
    assert b.losses == pytest.approx(a.losses, rel=1e-6)
    ga, gb = _grads(plain), _grads(checkpointed)
    assert all(torch.allclose(ga[k], gb[k], rtol=1e-4, atol=1e-9) for k in ga)


def test_bf16_autocast_and_bf16_teacher(tmp_path, tiny_dataset):
    trainer = _trainer(tmp_path, tiny_dataset, "train.amp=bf16", "infoclip.teacher_precision=bf16")
    assert {p.dtype for p in trainer.teacher.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}, "autocast keeps fp32 master weights"
    step = trainer.run_step()
    reference = _trainer(tmp_path, tiny_dataset).run_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in step.losses.values())
    assert step.losses["task"] == pytest.approx(reference.losses["task"], rel=3e-2)


def test_lpam_feeding_the_decoder_is_trained_and_exported(tmp_path, tiny_dataset):
    from infoclip.models import load_model
    from infoclip.weights import read_weights

    run = tmp_path / "feeds"
    config, _ = prepare_run_config(run, "catseg-tiny", None, tiny_overrides(tiny_dataset, 1) + ["infoclip.lpam_feeds_decoder=true"])
    train(config, run)
    path, _ = export_checkpoint(run, tmp_path / "feeds.safetensors")
    state, meta = read_weights(path)
    assert meta.config["lpam_feeds_decoder"] is True and any(k.startswith("lpam.") for k in state)
    model, _ = load_model(path)
    assert model.lpam is not None


def test_objective_options_reach_the_losses(tmp_path, tiny_dataset):
    pairs = _trainer(tmp_path, tiny_dataset, "infoclip.gram_axis=pairs", "infoclip.lambda_distillation=0.5",
                     "infoclip.residual=cosine")  # fmt: skip
    assert pairs.objective.lpam.residual == "cosine" and pairs.objective.lambda_distillation == 0.5
    assert "gram_axis='pairs'" in repr(pairs.objective)
    step = pairs.run_step()
    assert step.losses["total"] == pytest.approx(
        step.losses["task"] + step.losses["compression"] + 0.5 * step.losses["distillation"], rel=1e-5
    )
    gaussian = _trainer(tmp_path, tiny_dataset, "infoclip.kernel=gaussian", "infoclip.sigma=4")
    assert "kernel='gaussian', sigma=4.0" in repr(gaussian.objective)
