"""Training the tiny SAN through the engine: SAN + InfoCLIP learns, resumes bit-exactly; the recipe preset."""

from __future__ import annotations

import pytest
import torch

from infoclip.training import prepare_run_config, train
from infoclip.training.checkpoint import last_checkpoint, read_checkpoint
from infoclip.training.run_log import read_csv
from tests.training.conftest import tiny_dataset, tiny_overrides  # noqa: F401  (fixture)
from tests.training.test_engine import _StopAt


def _losses(run_dir):
    return {int(r["iteration"]): {k: float(v) for k, v in r.items() if k.startswith("loss_")} for r in read_csv(run_dir / "log.csv")}


def _overrides(dataset):
    return tiny_overrides(dataset) + [
        "data.min_size=[48, 56]", "infoclip.enabled=true", "model.clip.finetune=qv_all", "solver.schedule=poly",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def san_run(tmp_path_factory, tiny_dataset):  # noqa: F811
    run = tmp_path_factory.mktemp("san_runs") / "reference"
    config, _ = prepare_run_config(run, "san-tiny", "san", _overrides(tiny_dataset))
    return run, train(config, run)


def test_san_with_infoclip_trains(san_run):
    run, summary = san_run
    assert summary.iterations == 6
    losses = _losses(run)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert all(v["loss_compression"] != 0 and v["loss_distillation"] != 0 for v in losses.values())
    assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for v in losses.values())
    state = read_checkpoint(run)["model"]
    assert not any("criterion" in k for k in state)
    from infoclip.adapters.san import build_model, preset_model_config

    torch.manual_seed(0)
    fresh = build_model(preset_model_config("san-tiny")).state_dict()
    moved = [k for k in ("side_adapter_network.query_embed", "bg_embed", "clip_model.visual.transformer.resblocks.0.attn.q_proj_weight")
             if not torch.equal(state[k], fresh[k])]  # fmt: skip
    assert len(moved) == 3, moved
    assert torch.equal(state["clip_model.visual.transformer.resblocks.0.attn.k_proj_weight"],
                       fresh["clip_model.visual.transformer.resblocks.0.attn.k_proj_weight"]), "K never trains"  # fmt: skip


def test_san_resume_is_bit_exact(san_run, tmp_path, tiny_dataset):  # noqa: F811
    reference, _ = san_run
    run = tmp_path / "interrupted"
    config, _ = prepare_run_config(run, "san-tiny", "san", _overrides(tiny_dataset))
    with pytest.raises(KeyboardInterrupt):
        train(config, run, progress=_StopAt(4))
    assert last_checkpoint(run).name == "checkpoint_0000003.pt"
    config, _ = prepare_run_config(run, None, None, [], resume=True)
    train(config, run, resume=True)
    expected, got = _losses(reference), _losses(run)
    for it in (4, 5, 6):
        assert got[it] == expected[it], f"iteration {it} after resume"
    a, b = read_checkpoint(reference)["model"], read_checkpoint(run)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_preset_is_sans():
    from infoclip.training.run_config import resolve_run_config

    config = resolve_run_config("san-vit-b16", "san")
    assert config["data"]["min_size"] == list(range(320, 961, 64)) and config["data"]["crop_size"] == 640
    assert config["data"]["max_size"] == 2560
    solver = config["solver"]
    assert (solver["lr"], solver["weight_decay"], solver["iterations"], solver["batch_size"]) == (1e-4, 1e-4, 60000, 32)
    assert (solver["schedule"], solver["grad_clip"]) == ("poly", 0.01)
    assert config["infoclip"]["enabled"] is False and config["model"]["clip"]["finetune"] == "san"
    info = resolve_run_config("san-vit-b16-infoclip", "san")
    assert info["infoclip"]["enabled"] is True and info["model"]["clip"]["finetune"] == "qv_all"


def test_poly_schedule_matches_the_official_log():
    from infoclip.training.optim import LRFactor

    factor = LRFactor("poly", 60000)
    assert 1e-4 * factor(19) == pytest.approx(9.9971e-5, rel=1e-4)  # repo log, iteration 19
    assert 1e-4 * factor(59999) == pytest.approx(5.008e-9, rel=1e-3)
