"""First vs second run of ``infoclip segment`` with the text-embedding cache (docs/segment-options.md).

    python benchmarks/text_cache.py WEIGHTS.safetensors [--clip ViT-B-16:none] [--vocab ade847]

Each run is a fresh ``infoclip segment`` process on one 480x640 image with ``--text-cache-dir`` in a new
folder: run 1 fills the cache (text tower runs), run 2 reads it (text tower skipped). Prints wall seconds of
each run and the model time (``seconds`` in the summary JSON). ``--clip ViT-B-16:none`` times the real ViT-B/16
text tower (random weights: the cost does not depend on the values).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("weights", nargs="?", type=Path)
    parser.add_argument("--clip")
    parser.add_argument("--vocab", default="ade847")
    args = parser.parse_args()
    model = ["--clip", args.clip] if args.clip else ["--weights", str(args.weights)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = folder / "photo.png"
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(image)
        for run in (1, 2):
            out = folder / f"out{run}"
            cmd = [sys.executable, "-m", "infoclip_cli", "segment", str(image), "--vocab", args.vocab, *model,
                   "--protocol", "whole", "--device", "cpu", "--no-overlay", "-o", str(out),
                   "--text-cache-dir", str(folder / "cache")]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - start
            seconds = json.loads((out / "photo.json").read_text())["seconds"]
            print(f"run {run}: wall {wall:.1f} s, model {seconds:.2f} s ({args.vocab}, {' '.join(model)})", flush=True)


if __name__ == "__main__":
    main()
