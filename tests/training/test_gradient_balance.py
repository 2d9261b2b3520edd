"""Per-term CLIP gradient norms in log.csv: right values, zero cost to the trajectory, only on logging steps."""

from __future__ import annotations

import pytest
import torch

from infoclip.errors import AdapterError
from infoclip.training import prepare_run_config, train
from infoclip.training.gradient_balance import COLUMNS, clip_parameters, term_gradient_norms
from infoclip.training.run_log import read_csv

from .conftest import tiny_overrides


def test_norms_match_separate_backwards_and_leave_grad_untouched():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5))
    x = torch.randn(5)
    task, comp, dist = (w * x).sum() ** 2, (w**2).sum(), (w - 1).abs().sum()
    norms = term_gradient_norms({"task": task, "compression": comp, "distillation": dist}, [w],
                                {"compression": 0.5, "distillation": 0.0})  # fmt: skip
    assert w.grad is None, "autograd.grad must not accumulate into .grad"
    expected_task = torch.autograd.grad(task, w, retain_graph=True)[0].norm()
    expected_comp = 0.5 * torch.autograd.grad(comp, w, retain_graph=True)[0].norm()
    assert norms[COLUMNS[0]] == pytest.approx(float(expected_task), rel=1e-6)
    assert norms[COLUMNS[1]] == pytest.approx(float(expected_comp), rel=1e-6)
    assert norms[COLUMNS[2]] == 0.0, "a zero-weighted term pulls with nothing"
    (task + comp).backward()  # the graph was retained for the step's own backward
    assert w.grad is not None


def test_clip_parameters_needs_a_trained_clip():
    from infoclip.adapters import get_adapter
    from infoclip.config import load_config

    adapter = get_adapter("catseg")
    config = load_config(adapter.config_path("catseg-tiny"))
    model = adapter.build_model(config["model"])
    params = clip_parameters(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert params and all(names[id(p)].startswith("clip_model.") for p in params)
    frozen = adapter.build_model({**config["model"], "clip": {**config["model"]["clip"], "finetune": "none"}})
    with pytest.raises(AdapterError, match="no CLIP parameter trains"):
        clip_parameters(frozen)


def _run(tmp_path, dataset, name, extra):
    run = tmp_path / name
    config, _ = prepare_run_config(run, "catseg-tiny", "catseg", tiny_overrides(dataset, 4) + ["train.log_period=2", *extra])
    train(config, run)
    return read_csv(run / "log.csv")


def test_logging_the_norms_leaves_the_trajectory_bit_identical(tmp_path, tiny_dataset):
    on = _run(tmp_path, tiny_dataset, "on", ["train.log_term_gradients=true"])
    off = _run(tmp_path, tiny_dataset, "off", ["train.log_term_gradients=false"])
    assert [r["iteration"] for r in on] == ["2", "4"]
    for a, b in zip(on, off):
        for key in ("loss_total", "loss_task", "loss_compression", "loss_distillation", "grad_norm"):
            assert a[key] == b[key], f"{key} changed at iteration {a['iteration']}: {a[key]} vs {b[key]}"
    assert not any(c in off[0] for c in COLUMNS)
    for row in on:
        task, compression, distillation = (float(row[c]) for c in COLUMNS)
        assert task > 0 and distillation > 0, row
        # L_c = I(D_V^T, D_L^T; R^T) is a function of the frozen teacher and the LPAM: it never reaches the CLIP
        assert compression == 0.0, row


def test_plain_finetuning_logs_zero_infoclip_gradients(tmp_path, tiny_dataset):
    rows = _run(tmp_path, tiny_dataset, "plain", ["infoclip.enabled=false"])
    assert float(rows[-1][COLUMNS[0]]) > 0
    assert float(rows[-1][COLUMNS[1]]) == 0.0 and float(rows[-1][COLUMNS[2]]) == 0.0
