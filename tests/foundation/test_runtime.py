"""Runtime words defined once (``infoclip.runtime``) and shared by ``segment``, ``eval`` and ``train``."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from infoclip.errors import InputError
from infoclip.runtime import DEVICE_CHOICES, autocast, check_precision, precision_dtype, resolve_device
from infoclip_cli.main import app
from tests.segmentation.conftest import run_cli  # noqa: F401  (fixture)


def test_device_words_and_library_language():
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")  # tests hide CUDA
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError) as caught:
        resolve_device("gpu7")
    assert caught.value.parameter == "device" and "--" not in str(caught.value)
    with pytest.raises(InputError, match="CUDA is not available") as caught:
        resolve_device("cuda:1")
    assert caught.value.parameter == "device"


def test_precision_words():
    cpu = torch.device("cpu")
    assert precision_dtype("auto", cpu) == precision_dtype("none", cpu) == torch.float32
    assert precision_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(InputError, match="fp16 precision needs a GPU") as caught:
        check_precision("fp16", cpu)
    assert caught.value.parameter == "precision" and "--" not in str(caught.value)
    with autocast(cpu, "bf16"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("command", [["segment", "x.jpg", "-c", "cat"], ["eval", "-d", "voc20"], ["train", "-o", "run"]])
def test_commands_share_the_device_option(command, run_cli, tmp_path, monkeypatch):
    runner = CliRunner()
    help_text = runner.invoke(app, [command[0], "--help"], env={"COLUMNS": "200", "TERM": "dumb"}).output
    assert "--device" in help_text and "DEVICE" in help_text and all(w in help_text for w in DEVICE_CHOICES)
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli(*command, "--device", "gpu7")
    assert code == 1
    assert "error: --device: unknown device 'gpu7'" in stderr


def test_eval_reads_the_classes_forms(tmp_path):
    from infoclip_cli.eval_cmd import _open_datasets
    from infoclip.data.synthetic import write_custom_dataset

    folder = write_custom_dataset(tmp_path / "ds", ["cat", "sky"], num_images=1, base_size=(16, 16))
    (tmp_path / "names.txt").write_text("cat\nsky\n")
    (tmp_path / "names.json").write_text('["cat", "sky"]')
    images, labels = folder / "images" / "val", folder / "labels" / "val"
    if not images.is_dir():
        images, labels = next(p for p in folder.rglob("images") if p.is_dir()), next(p for p in folder.rglob("labels") if p.is_dir())
    for form in ("cat,sky", f"@{tmp_path / 'names.txt'}", f"@{tmp_path / 'names.json'}", str(tmp_path / "names.txt")):
        (ds,) = _open_datasets([], "val", images, labels, form, 255)
        assert list(ds.class_names) == ["cat", "sky"], form
