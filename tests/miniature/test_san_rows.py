"""A SAN method of the miniature trains, exports and evaluates through the real commands on a tiny world."""

from __future__ import annotations

import copy
import json

from infoclip.miniature.pipeline import TRAINING_FREE, Miniature, MiniatureConfig


def test_san_infoclip_method_trains_and_evaluates_on_a_tiny_world(tmp_path):
    config = copy.deepcopy(MiniatureConfig.load())
    config.modes["fast"].update(n_train=6, n_test=3, iterations=2)
    config.adapters["san"].run["train"]["log_period"] = 1
    results = Miniature(tmp_path, mode="fast", config=config, methods=["san-infoclip"]).run()
    rows = {row["method"]: row for row in results["rows"]}
    assert list(rows) == ["untrained SAN", TRAINING_FREE, "san-infoclip"], "no CAT-Seg row: only SAN was asked for"
    run = rows["san-infoclip"]["runs"][0]
    assert rows["san-infoclip"]["adapter"] == "san" and results["adapters"] == {"san": "SAN"}
    for key in ("seen", "unseen", "own_clip_seen", "own_clip_unseen"):
        assert 0.0 <= run[key] <= 100.0, key
    # the mechanism columns of SAN runs: per-term CLIP gradients in log.csv, the fine-tuned CLIP's own alignment
    header = (tmp_path / "runs" / "san-infoclip-seed0" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"grad_norm_clip_task", "grad_norm_clip_compression", "grad_norm_clip_distillation"} <= set(header)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["method_settings"]["san-infoclip"][0] == "model.clip.finetune=qv_all"
    assert (tmp_path / "configs" / "san.yaml").is_file() and not (tmp_path / "configs" / "catseg.yaml").exists()
