"""The forgetting mode: its validation split (disjoint from the test scenes), its run config, its mechanism table."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from infoclip.config import load_config
from infoclip.errors import ConfigError
from infoclip.miniature.pipeline import Job, Miniature, MiniatureConfig, results_markdown, summarize


def _small(config: MiniatureConfig) -> MiniatureConfig:
    small = copy.deepcopy(config)
    small.modes["forgetting"].update(n_train=3, n_val=3, n_test=3)
    return small


def test_validation_split_is_disjoint_from_test_and_feeds_the_run_config(tmp_path):
    config = _small(MiniatureConfig.load())
    run = Miniature(tmp_path, mode="forgetting", config=config)
    run.write_data()
    from infoclip.data import get_dataset

    val, test = get_dataset(run.val_dir, "val"), get_dataset(run.test_dir, "val")
    assert len(val) == 3 and tuple(val.eval_class_names) == config.world.classes
    assert load_config(run.val_dir / "dataset.yaml")["seen_classes"] == list(config.world.seen)
    assert not any(np.array_equal(val[i].image, test[j].image) for i in range(3) for j in range(3))
    saved = load_config(run.write_run_config(Path("clip.safetensors")))
    assert saved["solver"]["clip_lr_multiplier"] == 1.0
    assert saved["data"]["val"] == str(run.val_dir.resolve()) and saved["train"]["eval_period"] == saved["solver"]["iterations"]


def test_fast_mode_has_no_validation_split(tmp_path):
    run = Miniature(tmp_path, mode="fast")
    saved = load_config(run.write_run_config(Path("clip.safetensors")))
    assert saved["data"]["val"] is None and saved["train"]["eval_period"] == 0
    with pytest.raises(ConfigError, match="mode must be one of"):
        Miniature(tmp_path, mode="nope")


def test_mechanism_table_averages_seeds():
    config = MiniatureConfig.load()
    jobs = [
        Job("catseg", s, None, {"seen": 30.0, "unseen": 10.0, "hIoU": 15.0, "mIoU": 25.0, "own_clip_seen": 20.0 + s,
                                "own_clip_unseen": 12.0, "own_clip_hIoU": 15.0, "val_mIoU": 24.0,
                                "alignment_mi": 1.0 + s, "alignment_mi_ratio": 0.5, "alignment_cka": 0.8})
        for s in (0, 1, 2)
    ]  # fmt: skip
    results = summarize(jobs, config, "forgetting", [0, 1, 2], 1.0, Path("clip.safetensors"))
    row = next(r for r in results["rows"] if r["method"] == "catseg")
    assert row["own_clip_seen"]["mean"] == pytest.approx(21.0) and row["alignment_mi"]["std"] == pytest.approx(1.0)
    text = results_markdown(results)
    assert "| catseg | 21.0 ± 1.0 | 12.0 ± 0.0 | 15.0 ± 0.0 | 24.0 ± 0.0 | 2.000 ± 1.000 | 0.500 ± 0.000 | 0.800 ± 0.000 |" in text
