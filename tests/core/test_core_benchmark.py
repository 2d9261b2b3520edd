"""benchmarks/entropy.py runs and prints one table row per size (a smoke test at tiny sizes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "entropy.py"


def test_entropy_benchmark_prints_a_row_per_size(capsys):
    spec = importlib.util.spec_from_file_location("entropy_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--sizes", "4,9", "--no-paper-shapes", "--budget", "0", "--repeats", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [row.split("|")[1].strip() for row in rows] == ["4", "9"]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[3].endswith("x") and cells[6].endswith("x")
        assert float(cells[7]) < 1e-3  # both routes agree
