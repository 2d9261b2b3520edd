"""``evaluate`` / ``infoclip eval`` with the opt-in prediction options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infoclip.data.synthetic import write_custom_dataset


@pytest.fixture(scope="module")
def mine(tmp_path_factory):
    return write_custom_dataset(tmp_path_factory.mktemp("d") / "mine", ["cat", "sofa", "sky"], num_images=2)


@pytest.fixture(scope="module")
def model(tiny_weights):
    from infoclip.models import load_model

    return load_model(tiny_weights, "cpu")[0]


def _dataset(folder):
    from infoclip.data import get_dataset

    return get_dataset(str(folder), "val")


def test_default_options_give_the_published_numbers(model, mine):
    from infoclip.evaluation import evaluate
    from infoclip.segmentation.options import SegmentOptions

    plain = evaluate(model, _dataset(mine), "whole")
    with_defaults = evaluate(model, _dataset(mine), "whole", options=SegmentOptions())
    np.testing.assert_array_equal(plain.confusion, with_defaults.confusion)
    assert with_defaults.extra["options"]["templates"] == "trained"


def test_background_counts_as_a_miss_of_the_ground_truth(model, mine):
    from infoclip.evaluation import evaluate
    from infoclip.segmentation.options import SegmentOptions

    plain = evaluate(model, _dataset(mine), "whole")
    nothing = evaluate(model, _dataset(mine), "whole", options=SegmentOptions(background_threshold=1.0))
    assert nothing.confusion.shape == (3, 4)  # the last column: predicted as no class
    assert nothing.confusion[:, :3].sum() == 0
    assert nothing.confusion.sum() == plain.confusion.sum()  # every labelled pixel still counted
    assert nothing.metrics["mIoU"] == 0.0 and nothing.metrics["pAcc"] == 0.0
    assert nothing.extra["options"]["background_threshold"] == 1.0
    none_below = evaluate(model, _dataset(mine), "whole", options=SegmentOptions(background_threshold=0.0))
    np.testing.assert_array_equal(none_below.confusion[:, :3], plain.confusion)


def test_eval_cli_records_the_options(tiny_weights, mine, run_cli, tmp_path):
    args = ["eval", "-w", tiny_weights, "--images", mine / "images", "--labels", mine / "labels", "--classes",
            mine / "classes.json", "--protocol", "whole"]
    code, _, stderr = run_cli(*args, "-o", tmp_path / "plain")
    assert code == 0, stderr
    code, _, stderr = run_cli(*args, "--tta", "flip", "--templates", "vild14", "-o", tmp_path / "opts")
    assert code == 0, stderr
    summary = json.loads((tmp_path / "opts" / "summary.json").read_text())
    assert summary["options"]["tta"] == "flip" and summary["options"]["templates"] == "vild14"
    assert len(summary["prompt_templates"]) == 14
    plain = json.loads((tmp_path / "plain" / "custom" / "metrics.json").read_text())
    opts = json.loads((tmp_path / "opts" / "custom" / "metrics.json").read_text())
    assert plain["extra"]["options"]["tta"] == "none" and opts["extra"]["options"]["tta"] == "flip"


@pytest.mark.parametrize(
    ("flags", "start"),
    [
        (["--background-threshold", "1.5"], "error: --background-threshold: the background threshold must be a number in [0, 1]"),
        (["--templates", "imagenet81"], "error: --templates: unknown template set 'imagenet81'"),
        (["--expand-vocab", "lvis"], "error: --expand-vocab: unknown vocabulary expansion 'lvis'"),
        (["--tta", "rotate"], "error: --tta: unknown test-time augmentation 'rotate'"),
        (["--synonym-rule", "min"], "error: --synonym-rule: unknown synonym rule 'min'"),
    ],
)
def test_bad_option_values_are_one_line(tiny_weights, mine, run_cli, flags, start):
    code, _, stderr = run_cli("eval", "-w", tiny_weights, "--images", mine / "images", "--labels", mine / "labels",
                              "--classes", mine / "classes.json", *flags)
    lines = stderr.strip().splitlines()
    assert code == 1 and "Traceback" not in stderr
    assert lines[-2].startswith(start), stderr


def test_eval_text_cache_second_run_reads_it(tiny_weights, mine, run_cli, tmp_path):
    args = ["eval", "-w", tiny_weights, "--images", mine / "images", "--labels", mine / "labels", "--classes",
            mine / "classes.json", "--protocol", "whole", "--text-cache-dir", tmp_path / "cache"]
    code, _, stderr = run_cli(*args, "-o", tmp_path / "one")
    assert code == 0, stderr
    entries = list((tmp_path / "cache").glob("*.safetensors"))
    assert len(entries) == 1
    stamp = entries[0].stat().st_mtime_ns
    code, _, stderr = run_cli(*args, "-o", tmp_path / "two")
    assert code == 0, stderr
    assert entries[0].stat().st_mtime_ns == stamp  # read, not rewritten
    one = json.loads((tmp_path / "one" / "custom" / "metrics.json").read_text())
    two = json.loads((tmp_path / "two" / "custom" / "metrics.json").read_text())
    assert one["per_class"] == two["per_class"]
