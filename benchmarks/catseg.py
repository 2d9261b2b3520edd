"""CAT-Seg ViT-B/16 at 384 on CPU (random weights): forward time and peak memory.

Measures, each case in a fresh subprocess so that its peak resident memory is its own:

* ``forward``: one 384 x 384 image through CLIP (dense) + aggregator in eval mode, text cached, for each
  T in ``--classes`` (default 20 and 171); the one-off text encoding of the T prompts is timed apart;
* ``train`` (with ``--train``): one training step's forward + BCE + backward, batch 1, T = the largest T;
* ``e2e``: ``model.predict`` with the official sliding-window protocol on one 640 x 853 image
  (short side 640: 4 crops + 1 global view), for each T in ``--e2e-classes`` (default 20).

Then prints a table and the ratios between the T values. Class names are the first T COCO-Stuff names.

    OMP_NUM_THREADS=1 python benchmarks/catseg.py                  # one thread (the project default)
    python benchmarks/catseg.py --threads 2 --classes 20 171 --e2e-classes 20 171 --train
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """Wall time and this process's CPU time (user + system) of a block. On a shared machine the CPU time
    is the stable figure: with one thread it is the time the work takes on an otherwise idle core."""

    def __enter__(self) -> "Timer":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu

    @staticmethod
    def medians(timers: list["Timer"]) -> dict:
        return {"wall_s": round(statistics.median(t.wall for t in timers), 3),
                "cpu_s": round(statistics.median(t.cpu for t in timers), 3)}  # fmt: skip


def _coco_names(count: int) -> list[str]:
    import json as _json
    from importlib import resources

    names = _json.loads(resources.files("infoclip").joinpath("data/vocab/coco.json").read_text(encoding="utf-8"))
    if count > len(names):
        names = names + [f"extra class {i}" for i in range(count - len(names))]
    return names[:count]


def run_case(case: str, classes: int, threads: int, repeats: int, preset: str = "catseg-vit-b16") -> dict:
    import torch

    torch.set_num_threads(threads)
    from infoclip.adapters.catseg import build_model, preset_model_config

    torch.manual_seed(0)
    model = build_model(preset_model_config(preset))
    crop = model.config["inference"]["sliding_kernel"]
    names = _coco_names(classes)
    result = {"case": case, "classes": classes, "threads": threads, "rss_after_build_mib": round(_rss_mib())}
    generator = torch.Generator().manual_seed(0)
    if case == "forward":
        model.eval()
        image = torch.rand(1, 3, crop, crop, generator=generator) * 255
        with torch.no_grad():
            with Timer() as text_timer:
                model.encode_classes(names)
            result["text_encoding_cpu_s"] = round(text_timer.cpu, 3)
            model(image, names)  # warm-up
            timers = []
            for _ in range(repeats):
                with Timer() as timer:
                    logits = model(image, names)
                timers.append(timer)
        assert logits.shape == (1, classes, 4 * model.grid[0], 4 * model.grid[1])
        result.update(Timer.medians(timers))
    elif case == "train":
        model.train()
        images = torch.rand(1, 3, crop, crop, generator=generator) * 255
        labels = torch.randint(-1, classes, (1, crop, crop), generator=generator)
        timers = []
        for _ in range(repeats):
            with Timer() as timer:
                out = model.forward_train(images, names)
                model.task_loss(out.logits, labels).backward()
            timers.append(timer)
            model.zero_grad(set_to_none=True)
        result.update(Timer.medians(timers))
    elif case == "e2e":
        image = torch.rand(3, 640, 853, generator=generator) * 255
        with torch.no_grad():
            model.eval().encode_classes(names)  # text cached, as in an evaluation over many images
        with Timer() as timer:
            probs = model.predict(image, names)
        result.update(Timer.medians([timer]))
        assert probs.shape == (classes, 640, 853)
    else:
        raise SystemExit(f"unknown case {case}")
    result["peak_rss_mib"] = round(_peak_mib())
    result["peak_minus_build_mib"] = result["peak_rss_mib"] - result["rss_after_build_mib"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--classes", type=int, nargs="+", default=[20, 171])
    parser.add_argument("--e2e-classes", type=int, nargs="*", default=[20])
    parser.add_argument("--train", action="store_true", help="also time one training step (largest T)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default="catseg-vit-b16", help="CAT-Seg preset (catseg-tiny for a smoke run)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--T", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.T, args.threads, args.repeats, args.preset)))
        return

    plan = [("forward", t) for t in args.classes]
    if args.train:
        plan.append(("train", max(args.classes)))
    plan += [("e2e", t) for t in args.e2e_classes]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    rows = []
    for case, classes in plan:
        cmd = [sys.executable, __file__, "--case", case, "--T", str(classes), "--threads", str(args.threads),
               "--repeats", str(args.repeats), "--preset", args.preset]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"case {case} T={classes} failed:\n{done.stderr}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"[catseg bench] {case} T={classes}: {row}", file=sys.stderr)

    print(f"CAT-Seg preset {args.preset}, random weights, CPU, {args.threads} thread(s), torch "
          f"{__import__('torch').__version__}")  # fmt: skip
    print(f"{'case':<30} {'T':>4} {'CPU s':>7} {'wall s':>7} {'text CPU s':>10} {'peak RSS MiB':>13} {'peak - model MiB':>17}")
    labels = {"forward": "forward 1 crop (eval, no_grad)", "train": "train step 1 crop (fwd+bwd)",
              "e2e": "predict 640x853, sliding"}  # fmt: skip
    for row in rows:
        text = f"{row['text_encoding_cpu_s']:.2f}" if "text_encoding_cpu_s" in row else "-"
        print(f"{labels[row['case']]:<30} {row['classes']:>4} {row['cpu_s']:>7.2f} {row['wall_s']:>7.2f} {text:>10} "
              f"{row['peak_rss_mib']:>13} {row['peak_minus_build_mib']:>17}")  # fmt: skip
    forward = {r["classes"]: r for r in rows if r["case"] == "forward"}
    if len(forward) > 1:
        low, high = min(forward), max(forward)
        print(f"ratio forward CPU time T={high}/T={low}: {forward[high]['cpu_s'] / forward[low]['cpu_s']:.2f}x; "
              f"extra memory: {forward[high]['peak_minus_build_mib'] / max(1, forward[low]['peak_minus_build_mib']):.2f}x")  # fmt: skip
    e2e = {r["classes"]: r for r in rows if r["case"] == "e2e"}
    for classes, row in e2e.items():
        if classes in forward:
            print(f"ratio e2e / single forward CPU time at T={classes}: {row['cpu_s'] / forward[classes]['cpu_s']:.2f}x")


if __name__ == "__main__":
    main()
