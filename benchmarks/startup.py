"""How fast ``infoclip segment`` answers a usage error, against what importing torch alone costs.

Each case runs in a fresh interpreter (what a user's shell does), ``--repeats`` times, interleaved so that
machine load hits all cases alike; the median wall time of each is printed with its ratio to the torch
import. Cases:

* ``python -c pass``: the interpreter itself;
* ``import torch``: the floor of any command that loads a model;
* ``segment IMG`` with no classes, ``segment IMG -c cat --device gpu0`` (a bad option value) and
  ``segment missing.jpg -c cat``: usage errors, answered before torch is imported.

Goal: a usage error in under a second.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = "from infoclip_cli.main import main; import sys; sys.argv = ['infoclip'] + sys.argv[1:]; main()"


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(args, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    image = folder / "photo.png"
    image.write_bytes(b"not decoded: the usage errors come first")
    py = sys.executable
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "import torch": [py, "-c", "import torch"],
        "segment IMG (no classes)": [py, "-c", CLI, "segment", str(image)],
        "segment IMG --device gpu0": [py, "-c", CLI, "segment", str(image), "-c", "cat", "--device", "gpu0"],
        "segment missing.jpg": [py, "-c", CLI, "segment", str(folder / "missing.jpg"), "-c", "cat"],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(options.repeats):
        for name, args in cases.items():
            times[name].append(wall(args))
    torch_median = statistics.median(times["import torch"])
    print(f"{'case':28s} {'median s':>9s} {'x import torch':>15s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28s} {median:9.2f} {median / torch_median:15.2f}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
