"""--select-lambda: the grid from the YAML, the same-budget rule, the choice on validation, the run plan."""

from __future__ import annotations

import concurrent.futures
import copy
import math
from pathlib import Path

import pytest

from infoclip.errors import ConfigError, InfoclipError
from infoclip.miniature.pipeline import Job, Miniature, MiniatureConfig, results_markdown, summarize
from infoclip.miniature.selection import GridPoint, Selection, SelectionSpec, choose


def test_grid_expands_the_shipped_yaml_to_equal_budgets():
    config = MiniatureConfig.load()
    points = SelectionSpec.from_config(config).points(config.methods)
    infoclip, catseg = points["infoclip"], points["catseg"]
    assert len(infoclip) == len(catseg) == 6
    first = infoclip[0]
    assert first.name == "infoclip-pairs+lambda_compression=0.1+lambda_distillation=0.1"
    assert first.overrides == (*config.methods["infoclip-pairs"].overrides, "infoclip.lambda_compression=0.1",
                               "infoclip.lambda_distillation=0.1")  # fmt: skip
    assert [dict(p.settings)["infoclip.lambda_distillation"] for p in infoclip[:3]] == [0.1, 0.3, 1.0]
    assert catseg[-1].overrides == ("infoclip.enabled=false", "solver.clip_lr_multiplier=1.0")
    assert len({p.name for p in infoclip + catseg}) == 12


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["families"]["catseg"]["grid"].update({"solver.clip_lr_multiplier": [0.1, 1.0]}), "same number of runs"),
        (lambda s: s["families"]["catseg"].update(method="nope"), "must name one of the config's methods"),
        (lambda s: s.update(criterion="pAcc"), "criterion must be one of"),
        (lambda s: s["families"]["infoclip"]["grid"].update({"infoclip.alpha": []}), "non-empty list"),
    ],
)
def test_bad_selection_sections_are_refused(edit, message):
    config = copy.deepcopy(MiniatureConfig.load())
    edit(config.selection)
    with pytest.raises(ConfigError, match=message):
        SelectionSpec.from_config(config)


def _point(name: str) -> GridPoint:
    return GridPoint("f", name, "catseg", (), ())


def test_choose_takes_the_best_validation_score_first_on_ties_never_nan():
    points = [_point(n) for n in "abcd"]
    assert choose(points, {"a": 10.0, "b": 30.0, "c": 30.0, "d": 20.0}).name == "b"
    assert choose(points, {"a": math.nan, "b": 5.0, "c": 1.0, "d": math.nan}).name == "b"
    with pytest.raises(InfoclipError, match="no validation score for d"):
        choose(points, {"a": 1.0, "b": 1.0, "c": 1.0})


def _small_config() -> MiniatureConfig:
    config = copy.deepcopy(MiniatureConfig.load())
    config.selection["families"] = {
        "infoclip": {"method": "infoclip-pairs", "grid": {"infoclip.lambda_distillation": [0.1, 1.0]}},
        "catseg": {"method": "catseg", "grid": {"solver.clip_lr_multiplier": [0.3, 1.0]}},
    }
    return config


#: the fake validation hIoU of a run, by its overrides: lambda2 = 0.1 and clip lr x0.3 win their families
def _fake_val(overrides) -> float:
    return 40.0 if {"infoclip.lambda_distillation=0.1", "solver.clip_lr_multiplier=0.3"} & set(overrides) else 20.0


def test_plan_trains_each_distinct_run_once_and_reports_the_chosen_rows(tmp_path, monkeypatch):
    run = Miniature(tmp_path, mode="forgetting", config=_small_config(), seeds=[0, 1, 2],
                    selection=Selection.from_config(_small_config()))  # fmt: skip
    run_config = {"catseg": run.write_run_config(Path("clip.safetensors"), "catseg")}
    trained = []

    def fake_train(config, method, seed):
        trained.append((method.name, seed))
        score = _fake_val(method.overrides) + seed
        return Job(method.name, seed, None, {"seen": score, "unseen": score, "hIoU": score, "mIoU": score, "val_hIoU": score})

    monkeypatch.setattr(run, "train_and_evaluate", fake_train)
    plan = run.selection.plan(run, run_config)
    assert len(plan.tasks) == 2 + 2 + 4 + 4  # grid-only, untuned at seed 0, untuned at seeds 1-2, chosen at 1-2
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [f.result() for f in [pool.submit(task) for task in plan.tasks]]
    # lambda2 = 1 and clip lr x1 are the untuned runs: trained once, under the untuned names
    assert sorted(trained) == sorted([
        ("catseg", 0), ("catseg", 1), ("catseg", 2), ("infoclip-pairs", 0), ("infoclip-pairs", 1), ("infoclip-pairs", 2),
        ("infoclip-pairs+lambda_distillation=0.1", 0), ("infoclip-pairs+lambda_distillation=0.1", 1),
        ("infoclip-pairs+lambda_distillation=0.1", 2), ("catseg+clip_lr_multiplier=0.3", 0),
        ("catseg+clip_lr_multiplier=0.3", 1), ("catseg+clip_lr_multiplier=0.3", 2),
    ])  # fmt: skip
    table, section = plan.outcome(jobs)
    assert section["families"]["infoclip"]["chosen"] == "infoclip-pairs+lambda_distillation=0.1"
    assert section["families"]["catseg"]["points"][1]["run"] == "catseg-seed0"
    assert section["families"]["catseg"]["points"][0]["val"] == {"hIoU": 40.0}
    results = summarize(table, run.config, "forgetting", [0, 1, 2], 1.0, Path("clip.safetensors"))
    rows = {r["method"]: r for r in results["rows"]}
    assert set(rows) == {"catseg", "infoclip-pairs", "catseg+clip_lr_multiplier=0.3 (selected)",
                         "infoclip-pairs+lambda_distillation=0.1 (selected)"}  # fmt: skip
    assert rows["catseg+clip_lr_multiplier=0.3 (selected)"]["hIoU"]["mean"] == pytest.approx(41.0)
    results["selection"] = section
    text = results_markdown(results)
    assert "| **0.3** | - | - | 40.0 | catseg+clip_lr_multiplier=0.3-seed0 |" in text
    assert "| 1.0 | - | - | 20.0 | catseg-seed0 |" in text


def test_selection_needs_a_validation_split_and_valid_grid_keys(tmp_path):
    config = _small_config()
    from infoclip_cli.errors import command_line_message

    with pytest.raises(ConfigError, match="validation split") as refused:
        Miniature(tmp_path, mode="fast", config=config, selection=Selection.from_config(config))
    assert command_line_message(refused.value).startswith("--select-lambda scores on a validation split")
    config.selection["families"]["catseg"]["grid"] = {"solver.clip_lr_multiplyer": [0.3, 1.0]}
    run = Miniature(tmp_path, mode="forgetting", config=config, selection=Selection.from_config(config))
    with pytest.raises(ConfigError, match="selection run catseg\\+clip_lr_multiplyer=0.3"):
        run.selection.plan(run, {"catseg": run.write_run_config(Path("clip.safetensors"), "catseg")})


@pytest.mark.slow
def test_select_lambda_runs_end_to_end_on_a_tiny_world(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from infoclip.config import load_config
    from infoclip.miniature.pipeline import default_config_path
    from infoclip_cli.main import app

    data = load_config(default_config_path())
    data["modes"]["forgetting"].update(n_train=8, n_val=4, n_test=4, iterations=3, seeds=[0, 1], methods=["catseg"])
    data["selection"]["families"] = _small_config().selection["families"]
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "select"
    result = CliRunner().invoke(app, ["miniature", "--forgetting", "--select-lambda", "-c", str(config), "-o", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    families = results["selection"]["families"]
    assert [p["run"] for p in families["catseg"]["points"]] == ["catseg+clip_lr_multiplier=0.3-seed0", "catseg-seed0"]
    rows = {r["method"]: r for r in results["rows"]}
    for family in families.values():
        assert all("hIoU" in p["val"] for p in family["points"])
        chosen = rows[family["row"]]
        assert sorted(r["seed"] for r in chosen["runs"]) == [0, 1]
    assert "infoclip-pairs" in rows and "catseg" in rows
    assert "Selection on the validation scenes" in (out / "results.md").read_text()
