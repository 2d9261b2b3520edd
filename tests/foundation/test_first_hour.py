"""The small behaviours a new user meets in the first hour (issue 17): each one as the user would hit it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.segmentation.conftest import photo, run_cli, tiny_weights  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[2]


def test_eval_all_lists_every_missing_dataset_with_its_steps(run_cli, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path / "empty"))
    code, _, err = run_cli("eval", "-w", tiny_weights, "--dataset", "all")
    assert code == 1
    lines = err.splitlines()
    missing = [line for line in lines if "folder not found" in line]
    assert len(missing) == 6, err
    assert all("infoclip data prepare" in line or "README" in line for line in missing), "each says what to do"
    assert lines[-2] == "error: 6 of 6 dataset(s) cannot be opened (listed above): ade847, pc459, ade150, pc59, " \
        "voc20, voc20b"  # fmt: skip


def test_eval_complains_about_missing_weights_before_the_dataset(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path / "empty"))
    code, _, err = run_cli("eval", "--dataset", "ade150")
    assert code == 1 and err.startswith("error: give either --weights")
    code, _, err = run_cli("eval", "-w", tmp_path / "nope.safetensors", "--dataset", "ade150")
    assert code == 1 and err.startswith(f"error: weights file not found: {tmp_path / 'nope.safetensors'}")


def test_convert_points_at_export_for_an_infoclip_training_checkpoint(run_cli, tmp_path):
    import torch

    from infoclip.training.checkpoint import write_checkpoint

    checkpoint = write_checkpoint(tmp_path / "run", 7, {"model": {"w": torch.zeros(2)}})
    code, _, err = run_cli("convert", "catseg", checkpoint, "-o", tmp_path / "w.safetensors")
    assert code == 1
    assert err.splitlines()[-2] == (
        f"error: {checkpoint} is an infoclip training checkpoint (iteration 7), not an official checkpoint; make "
        f"inference weights from it with `infoclip export {checkpoint} -o weights.safetensors`"
    )


def test_the_example_script_prints_its_usage_without_arguments():
    done = subprocess.run([sys.executable, str(REPO / "examples" / "segment_image.py")], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("usage: python ") and "WEIGHTS.safetensors|MODEL:TAG IMAGE CLASSES" in done.stderr


def test_the_baseline_footer_names_the_model_not_the_weights_path():
    from infoclip.segmentation.segmenter import BASELINE_PREFIX, baseline_caption

    long_path = "/home/someone/" + "very-long-folder-name/" * 8 + "clip_weights.safetensors"
    assert baseline_caption(BASELINE_PREFIX + f"ViT-B-16:{long_path}") == (
        "training-free baseline: ViT-B-16 (local weights clip_weights.safetensors)"
    )
    assert baseline_caption(BASELINE_PREFIX + "ViT-B-16:openai") == "training-free baseline: ViT-B-16:openai"


def test_save_probs_announces_large_files_before_writing(run_cli, tiny_weights, photo, tmp_path, monkeypatch):
    from infoclip_cli import segment_cmd

    monkeypatch.setattr(segment_cmd, "LARGE_PROBS_BYTES", 1)
    out = tmp_path / "out"
    code, _, err = run_cli("segment", photo, "--classes", "cat,sofa", "-w", tiny_weights, "-o", out, "--save-probs",
                           "--protocol", "whole")  # fmt: skip
    assert code == 0, err
    probs = np.load(out / f"{Path(photo).stem}_probs.npy")
    announced = f"note: writing {probs.nbytes / 1e6:.0f} MB of per-class scores to {out / Path(photo).stem}_probs.npy"
    assert announced in err
    assert err.index(announced) < err.index("wrote the outputs"), "said before the last line"
    assert err.rstrip().splitlines()[-1] == f"wrote the outputs of 1 image(s) to {out}", "the last line says where"


def test_curves_say_why_there_is_no_validation_curve(tmp_path, monkeypatch):
    from tests.training.conftest import CLASSES, tiny_overrides

    from infoclip.data.synthetic import write_custom_dataset
    from infoclip.training import engine, prepare_run_config, train

    drawn = []
    monkeypatch.setattr(engine, "plot_curves", lambda run_dir, title="", no_validation="": drawn.append(no_validation))
    dataset = write_custom_dataset(tmp_path / "toyroom", CLASSES, num_images=2, base_size=(40, 56))
    config, _ = prepare_run_config(tmp_path / "run", "catseg-tiny", None, tiny_overrides(dataset, 1))
    train(config, tmp_path / "run")
    assert drawn == ["validation off: train.eval_period is 0"]


@pytest.mark.parametrize("entry", ["infoclip-miniature/", "segment_output/"])
def test_the_default_output_folders_are_ignored_by_git(entry):
    assert entry in (REPO / ".gitignore").read_text().splitlines()
