"""The miniature's results tables: mean and sample std over seeds, references first, the ablation apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from infoclip.miniature.pipeline import TRAINING_FREE, UNTRAINED, Job, MiniatureConfig, results_markdown, summarize


def _job(method, seed, seen):
    return Job(method, seed, None, {"seen": seen, "unseen": seen / 2, "hIoU": seen / 3, "mIoU": seen})


def test_summary_groups_seeds_and_puts_references_first():
    config = MiniatureConfig.load()
    jobs = [_job("catseg", s, v) for s, v in ((0, 30.0), (1, 32.0), (2, 34.0))]
    jobs += [_job("lambda1-only", 0, 20.0), _job(TRAINING_FREE, None, 10.0), _job(UNTRAINED, None, 5.0)]
    results = summarize(jobs, config, "full", [0, 1, 2], 12.0, Path("clip.safetensors"))
    names = [row["method"] for row in results["rows"]]
    assert names[:2] == [UNTRAINED, TRAINING_FREE]
    assert results["adapters"] == {"catseg": "CAT-Seg"} and results["rows"][2]["adapter"] == "catseg"
    catseg = next(row for row in results["rows"] if row["method"] == "catseg")
    assert catseg["seen"]["mean"] == pytest.approx(32.0) and catseg["seen"]["std"] == pytest.approx(2.0)
    text = results_markdown(results)
    main, ablation = text.split("Ablation")
    assert "| catseg | 3 | 32.0 ± 2.0 |" in main and "lambda1-only" not in main
    assert "| lambda1-only | `infoclip.enabled=true, infoclip.gram_axis=batch, infoclip.lambda_distillation=0.0` | 20.0" in ablation
    assert "| catseg | `infoclip.enabled=false` | 30.0 |" in ablation


def test_each_adapter_has_its_untrained_row_before_the_shared_training_free_one():
    config = MiniatureConfig.load()
    jobs = [_job("san", 0, 20.0), _job("catseg", 0, 30.0), _job("untrained SAN", None, 2.0),
            _job(TRAINING_FREE, None, 10.0), _job(UNTRAINED, None, 5.0)]
    jobs[2].adapter, jobs[4].adapter = "san", "catseg"
    results = summarize(jobs, config, "full", [0], 1.0, Path("clip.safetensors"))
    assert [row["method"] for row in results["rows"]][:3] == [UNTRAINED, "untrained SAN", TRAINING_FREE]
    assert {r["method"]: r.get("adapter") for r in results["rows"]}["san"] == "san"
    assert results["method_settings"]["san"] == ["infoclip.enabled=false"]
