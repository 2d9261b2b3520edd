"""The miniature's fast mode end to end: the integration test of the whole method on a CPU.

It runs ``infoclip miniature --fast`` as a user would (the real ``train``, ``export`` and ``eval`` commands
in subprocesses, on the shipped tiny CLIP) and asserts that learning happened: after fine-tuning on the seen
classes, seen-class mIoU is clearly above both the untrained CAT-Seg and the training-free dense-CLIP
baseline. It does not assert which method wins on unseen classes.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from infoclip.errors import InputError
from infoclip.miniature.pipeline import TRAINING_FREE, UNTRAINED
from infoclip_cli.main import app

#: "clearly above": mIoU points (percent) the fine-tuned model must gain over each reference
MARGIN = 5.0


@pytest.mark.slow
def test_fast_mode_learns_the_seen_classes(tmp_path):
    out = tmp_path / "mini"
    result = CliRunner().invoke(app, ["miniature", "--fast", "--output-dir", str(out), "--jobs", "2"])
    assert result.exit_code == 0, result.output
    assert "predictions on unseen classes" in result.output
    assert "[4/4 jobs done]" in result.output, "the job board reports on stderr"
    results = json.loads((out / "results.json").read_text())
    rows = {row["method"]: row for row in results["rows"]}
    trained = rows["catseg"]["seen"]["mean"]
    assert trained > rows[UNTRAINED]["seen"]["mean"] + MARGIN, rows
    assert trained > rows[TRAINING_FREE]["seen"]["mean"] + MARGIN, rows
    # The InfoCLIP run trains through the same commands; which method wins is not asserted.
    assert rows["infoclip-batch"]["seen"]["mean"] > rows[UNTRAINED]["seen"]["mean"] + MARGIN, rows
    for row in rows.values():
        assert 0.0 <= row["unseen"]["mean"] <= 100.0
    picture = out / "predictions.png"
    assert picture.is_file() and picture.stat().st_size > 1000
    assert (out / "weights" / "catseg-seed0.safetensors").is_file()
    assert (out / "weights" / "infoclip-batch-seed0.safetensors").is_file()


def test_second_run_into_the_same_folder_needs_force(tmp_path):
    (tmp_path / "runs").mkdir()
    result = CliRunner().invoke(app, ["miniature", "--fast", "--output-dir", str(tmp_path)])
    from infoclip_cli.errors import command_line_message

    assert isinstance(result.exception, InputError)
    assert "`force=True`" in str(result.exception), "the library names its argument"
    assert "--force" in command_line_message(result.exception), "the command line shows the flag"


def test_seeds_option_is_checked(tmp_path):
    result = CliRunner().invoke(app, ["miniature", "--fast", "--output-dir", str(tmp_path / "x"), "--seeds", "0,zero"])
    assert isinstance(result.exception, InputError)
    assert "--seeds" in str(result.exception)


def test_pretrain_clip_command_writes_loadable_weights(tmp_path):
    """A few seconds of `infoclip miniature pretrain-clip`: the file it writes loads as the miniature CLIP."""
    from infoclip.clip import build_clip
    from infoclip.clip.loading import load_clip_weights
    from infoclip.miniature import tiny_clip

    out = tmp_path / "clip.safetensors"
    result = CliRunner().invoke(app, ["miniature", "pretrain-clip", "--output", str(out), "--seconds", "2"])
    assert result.exit_code == 0, result.output
    assert "close-up accuracy" in result.output
    load_clip_weights(build_clip(tiny_clip.register_config()), tiny_clip.MINIATURE_CLIP, str(out))
