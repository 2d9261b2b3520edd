"""Usage errors of ``infoclip segment`` answer before torch is imported (a fresh interpreter per case)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).parents[2] / "src")
# runs the console entry point, then reports at exit whether torch was ever imported
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('TORCH_IMPORTED=%s\\n' % ('torch' in sys.modules)))\n"
    "from infoclip_cli.main import main\n"
    "sys.argv = ['infoclip'] + sys.argv[1:]\n"
    "main()\n"
)


def run_fresh(*args: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("INFOCLIP_DEBUG", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{photo}"], "give the classes either as --classes"),
        (["{photo}", "-c", "cat", "--precision", "fp64"], "Invalid value for '--precision'"),
        (["{photo}", "-c", "cat", "--device", "gpu0"], "unknown device 'gpu0'"),
        (["{photo}", "-c", "cat", "--alpha", "2"], "Invalid value for '--alpha'"),
        (["{photo}", "-c", "cat,,dog"], "blank class name"),
        (["{photo}", "-c", "cat", "--clip", "ViT-B-16"], "--clip expects MODEL:TAG"),
        (["{missing}", "-c", "cat"], "image not found"),
    ],
)
def test_usage_errors_answer_before_torch_is_imported(photo, tmp_path, args, message):
    filled = [a.format(photo=photo, missing=tmp_path / "nope.jpg") for a in args]
    code, stderr = run_fresh("segment", *filled, "-o", str(tmp_path / "out"))
    assert code != 0 and message in stderr, stderr
    assert "TORCH_IMPORTED=False" in stderr, stderr
    assert not (tmp_path / "out").exists()


def test_the_probe_sees_torch_when_a_model_is_loaded(photo, tmp_path):
    # the same probe on a run that gets past validation reports torch: the test above can fail
    code, stderr = run_fresh("segment", str(photo), "-c", "cat", "--clip", "infoclip-tiny-clip:none",
                             "--protocol", "whole", "-o", str(tmp_path / "out"))
    assert code == 0, stderr
    assert "TORCH_IMPORTED=True" in stderr
