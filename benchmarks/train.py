"""Training-step cost of the InfoCLIP objective against the plain framework (any adapter preset), measured side by side in one run.

Two trainers are built from the same config, one with ``infoclip.enabled=false`` (the CAT-Seg baseline), one
with the InfoCLIP objective (frozen teacher forward + LPAM + L_c + L_d). Their steps are interleaved
(baseline, InfoCLIP, baseline, ...) so that a change in machine load hits both alike; the first ``--warmup``
steps of each are dropped; the table gives medians. Peak memory is measured for each variant in a fresh
subprocess (CUDA: ``torch.cuda.max_memory_allocated``).

CPU memory is accounted exactly instead (weights + AdamW state + tensors saved for backward in one step).

CLIP weights are random (``model.clip.pretrained=null``): the cost does not depend on their values. The data is a
synthetic custom dataset of ``--classes`` classes at the recipe's resolution; CAT-Seg re-encodes every class
name in each step, so use ``--classes 171`` (COCO-Stuff) for the recipe's real cost.

    python benchmarks/train.py                                    # tiny CAT-Seg on CPU (the test config)
    python benchmarks/train.py --preset catseg-vit-b16 --batch-size 1 --classes 8 --steps 3 --warmup 1 \
        --set infoclip.gram_axis=pairs   # one image per step: batch-axis Grams would be 1 x 1 (losses 0)
    python benchmarks/train.py --preset catseg-vit-b16 --batch-size 4 --classes 171 --device cuda   # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _config(args: argparse.Namespace, dataset: Path, infoclip: bool) -> dict:
    from infoclip.training.run_config import resolve_run_config

    crop = args.crop
    overrides = [
        f"data.train={dataset}",
        "data.num_workers=0",
        f"data.min_size={crop}",
        f"data.crop_size={crop}",
        f"data.size_divisibility={crop}",
        f"solver.batch_size={args.batch_size}",
        f"solver.iterations={args.steps + args.warmup + 1}",
        "train.eval_period=0",
        "train.tensorboard=false",
        f"train.device={args.device}",
        f"train.amp={args.amp}",
        "model.clip.pretrained=null",
        *args.set,
        f"infoclip.enabled={'true' if infoclip else 'false'}",
    ]
    return resolve_run_config(args.preset, None, overrides)  # the adapter the preset names


def _dataset(folder: Path, classes: int, size: int) -> Path:
    from infoclip.data.synthetic import write_custom_dataset

    names = [f"class {i}" for i in range(classes)]
    return write_custom_dataset(folder / "bench", names, num_images=8, base_size=(size, size + size // 3))


def _peak_memory(args: argparse.Namespace, dataset: Path, infoclip: bool) -> None:
    """Child mode (CUDA): build one trainer, run two steps, print ``torch.cuda.max_memory_allocated`` as JSON."""
    import torch

    from infoclip.training.engine import Trainer

    trainer = Trainer(_config(args, dataset, infoclip), Path(tempfile.mkdtemp()) / "run")
    torch.cuda.reset_peak_memory_stats(trainer.device)
    for _ in range(2):
        trainer.run_step()
    print(json.dumps({"peak_bytes": torch.cuda.max_memory_allocated(trainer.device)}))


def _measure_cuda_memory(args: argparse.Namespace, dataset: Path, infoclip: bool) -> int:
    command = [sys.executable, __file__, "--child-memory", "infoclip" if infoclip else "baseline",
               "--dataset", str(dataset), *_passthrough(args)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"memory subprocess failed:\n{done.stderr[-3000:]}")
    return int(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])


def _storage_bytes(tensors) -> dict[int, int]:
    return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}


def cpu_memory_accounting(trainer) -> dict[str, int]:
    """Bytes a step needs on CPU, counted exactly: weights (student, teacher, LPAM), AdamW state, and the
    tensors autograd saves for backward in one step (the activation memory). The process's peak RSS cannot
    tell two variants apart: importing torch and open_clip dominates it."""
    import torch

    modules = [trainer.model] + [m for m in (trainer.teacher, trainer.objective) if m is not None]
    weights = {}
    for module in modules:
        weights.update(_storage_bytes(list(module.parameters()) + list(module.buffers())))
    saved: dict[int, int] = {}

    def pack(tensor):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in weights:
            saved[ptr] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        trainer.run_step()
    state = [v for s in trainer.optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return {
        "weights": sum(weights.values()),
        "optimizer_state": sum(_storage_bytes(state).values()),
        "activations": sum(saved.values()),
    }


def _passthrough(args: argparse.Namespace) -> list[str]:
    return ["--preset", args.preset, "--batch-size", str(args.batch_size), "--classes", str(args.classes),
            "--crop", str(args.crop), "--device", args.device, "--amp", args.amp, "--steps", str(args.steps),
            "--warmup", str(args.warmup), *[a for o in args.set for a in ("--set", o)]]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="catseg-tiny")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--classes", type=int, default=16, help="vocabulary size (171 = COCO-Stuff)")
    parser.add_argument("--crop", type=int, default=None, help="crop size (default: 48 tiny, 384 otherwise)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    parser.add_argument("--steps", type=int, default=10, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured first steps per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra run-config override for both variants (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    parser.add_argument("--child-memory", choices=("baseline", "infoclip"), help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.crop is None:
        args.crop = 48 if args.preset.endswith("-tiny") else 384

    import torch

    torch.set_num_threads(args.threads)
    if args.child_memory:
        _peak_memory(args, args.dataset, args.child_memory == "infoclip")
        return

    from infoclip.training.engine import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        dataset = _dataset(Path(tmp), args.classes, args.crop)
        trainers = {
            name: Trainer(_config(args, dataset, name == "infoclip"), Path(tmp) / name)
            for name in ("baseline", "infoclip")
        }
        device = trainers["baseline"].device
        times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in trainers}
        for step in range(args.warmup + args.steps):
            for name, trainer in trainers.items():
                result = trainer.run_step()
                if step >= args.warmup:
                    times[name].append((result.seconds, result.forward_seconds, result.backward_seconds))
        params = {name: t.parameter_summary() for name, t in trainers.items()}
        if device.type == "cuda":
            del trainers
            torch.cuda.empty_cache()
            memory = {name: _measure_cuda_memory(args, dataset, name == "infoclip") for name in ("baseline", "infoclip")}
            memory_kind = "CUDA max allocated"
            parts = None
        else:
            parts = {name: cpu_memory_accounting(t) for name, t in trainers.items()}
            memory = {name: sum(p.values()) for name, p in parts.items()}
            memory_kind = "weights + AdamW state + saved activations"

    def median(name: str, index: int) -> float:
        return statistics.median(t[index] for t in times[name])

    row = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({args.threads} thread)",
        "batch": args.batch_size,
        "classes": args.classes,
        "crop": args.crop,
        "amp": args.amp,
        "steps": args.steps,
        "step_s": {name: median(name, 0) for name in times},
        "forward_s": {name: median(name, 1) for name in times},
        "backward_s": {name: median(name, 2) for name in times},
        "peak_mib": {name: memory[name] / 2**20 for name in memory},
        "memory_kind": memory_kind,
        "memory_parts_mib": None if parts is None else {n: {k: v / 2**20 for k, v in p.items()} for n, p in parts.items()},
        "lpam_parameters": params["infoclip"]["lpam"],
    }
    base, info = row["step_s"]["baseline"], row["step_s"]["infoclip"]
    row["overhead_pct"] = 100.0 * (info - base) / base
    fwd = row["forward_s"]["infoclip"] - row["forward_s"]["baseline"]
    bwd = row["backward_s"]["infoclip"] - row["backward_s"]["baseline"]
    print("| config | device | batch | classes | plain step (s) | InfoCLIP step (s) | overhead | "
          "+forward (s) | +backward (s) | peak memory plain / InfoCLIP (MiB) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.preset} {args.crop}px{' ' + ' '.join(args.set) if args.set else ''} | {row['device']} | {args.batch_size} | {args.classes} | {base:.3f} | "
        f"{info:.3f} | {row['overhead_pct']:+.1f}% | {fwd:+.3f} | {bwd:+.3f} | "
        f"{row['peak_mib']['baseline']:.0f} / {row['peak_mib']['infoclip']:.0f} ({row['memory_kind']}) |"
    )
    if args.json:
        print(json.dumps(row, indent=2))


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    if "--child-memory" not in sys.argv:
        print(f"(benchmark wall time {time.perf_counter() - start:.0f} s)", file=sys.stderr)
