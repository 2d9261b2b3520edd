"""Measure the opt-in prediction options with ``infoclip eval`` on the miniature world (docs/segment-options.md).

Run ``infoclip miniature --fast -o MINI`` once, then::

    python benchmarks/segment_options.py MINI [--out benchmarks/results/segment_options.json]

It evaluates the miniature's fine-tuned CAT-Seg (``MINI/weights/catseg-seed0.safetensors``) and the
training-free dense-CLIP baseline of the shipped tiny CLIP on ``MINI/data/test`` (60 images, whole-image
protocol as the miniature uses), once per option row, each as one ``infoclip eval`` command, and prints a
Markdown table: mIoU on seen and unseen classes, their harmonic mean, and seconds per image (model time, from
metrics.json). The synonym rows use a copy of the test set whose class names carry one synonym each
(``stripes|stripes pattern``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROWS: list[tuple[str, list[str]]] = [
    ("defaults (published protocol)", []),
    ("--templates imagenet80", ["--templates", "imagenet80"]),
    ("--templates imagenet7", ["--templates", "imagenet7"]),
    ("--templates vild14", ["--templates", "vild14"]),
    ("synonyms 'name|name pattern', --synonym-rule max", ["--synonym-rule", "max"]),
    ("synonyms 'name|name pattern', --synonym-rule mean", ["--synonym-rule", "mean"]),
    ("--background-threshold 0.3", ["--background-threshold", "0.3"]),
    ("--background-threshold 0.5", ["--background-threshold", "0.5"]),
    ("--expand-vocab ade150", ["--expand-vocab", "ade150"]),
    ("--tta flip", ["--tta", "flip"]),
    ("--tta ms", ["--tta", "ms"]),
]


def synonym_dataset(test_dir: Path, out: Path) -> Path:
    """A copy of the test set's dataset.yaml (same images and labels) with ``name|name pattern`` classes."""
    import yaml

    spec = yaml.safe_load((test_dir / "dataset.yaml").read_text())
    def rename(name: str) -> str:
        return f"{name}|{name} pattern"
    spec["classes"] = [rename(n) for n in spec["classes"]]
    spec["seen_classes"] = [rename(n) for n in spec.get("seen_classes", [])]
    spec["images"] = str((test_dir / spec["images"]).resolve())
    spec["labels"] = str((test_dir / spec["labels"]).resolve())
    spec["name"] = spec["name"] + "-synonyms"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return out


def run_eval(model_args: list[str], dataset: Path, extra: list[str], out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "infoclip_cli", "eval", *model_args, "--dataset", str(dataset), "--protocol", "whole",
           "--device", "cpu", "-o", str(out), *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    metrics = json.loads(next(out.glob("*/metrics.json")).read_text())
    split = metrics["seen_unseen"]
    return {"seen": split["mIoU_seen"], "unseen": split["mIoU_unseen"], "hIoU": split["hIoU"],
            "s_per_image": metrics["seconds_per_image"], "command": " ".join(["infoclip", *cmd[3:]])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mini", type=Path)
    parser.add_argument("--clip", type=Path, help="the tiny CLIP weights (default: the shipped asset)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/segment_options.json"))
    args = parser.parse_args()
    from infoclip.miniature import tiny_clip

    clip = args.clip or tiny_clip.assets_dir() / "infoclip-miniature-clip.safetensors"
    test_dir = args.mini / "data" / "test"
    work = args.mini / "options-bench"
    synonyms = synonym_dataset(test_dir, work / "synonym-data")
    models = {
        "CAT-Seg fine-tuned": ["--weights", str(args.mini / "weights" / "catseg-seed0.safetensors")],
        "training-free dense CLIP": ["--clip", f"{tiny_clip.MINIATURE_CLIP}:{Path(clip).resolve()}"],
    }
    results = []
    for model_name, model_args in models.items():
        for index, (label, extra) in enumerate(ROWS):
            dataset = synonyms if label.startswith("synonyms") else test_dir
            row = run_eval(model_args, dataset, extra, work / f"{model_name[:7]}-{index}")
            row.update(model=model_name, option=label)
            results.append(row)
            print(f"| {model_name} | {label} | {row['seen']:.1f} | {row['unseen']:.1f} | {row['hIoU']:.1f} | "
                  f"{row['s_per_image']:.3f} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS"), "rows": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
