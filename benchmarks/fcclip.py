"""FC-CLIP ConvNeXt-L on CPU (random weights): inference time and peak memory, beside CAT-Seg and the official code.

Each case runs in a fresh subprocess, so its peak resident memory is its own. All cases segment the same
synthetic image (``--image``, default 480x640: gradients, a checkerboard, noise) with the same ``--classes``:

* ``fcclip``: ``model.predict`` with FC-CLIP's protocol (ResizeShortestEdge ``--short`` (800) / 1333, whole image, pad 32),
  text classifier cached first (its one-off encoding timed apart), plus a per-stage breakdown of one forward
  (CLIP trunk, pixel decoder and, inside it, the pure-PyTorch deformable-attention sampling, decoder, ensemble
  and semantic inference);
* ``catseg``: CAT-Seg ViT-B/16 ``predict`` with its published sliding protocol (short side 640), same classes
  (first synonym of each), text cached;
* ``official`` (with ``--official-scratch DIR``): the official FC-CLIP modules through the scratch harness
  ``DIR/official_run.py`` (detectron2 stubbed, fcclip-reference.md §5; not part of this repository), same image
  and classes; its second forward (text cached) is timed. Its peak memory includes the harness's seeded weights.

SAN is not in this branch's ``main`` yet; add it when it is.

    OMP_NUM_THREADS=1 python benchmarks/fcclip.py --official-scratch /work/scratch/fcclip
    OMP_NUM_THREADS=1 python benchmarks/fcclip.py --short 320 --image 240x320 ...   # what fits a shared CPU
    python benchmarks/fcclip.py --preset fcclip-tiny --cases fcclip     # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CLASSES = ["person,child,girl", "wall,walls,brick wall", "zebra crossing,crosswalk", "aquarium", "sofa,couch,pillow", "unicorn,horned horse"]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _image(height: int, width: int):
    """The scratch harness's synthetic test image (same generator), (3, H, W) float 0-255."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([(xx * 255 / max(width - 1, 1)), (yy * 255 / max(height - 1, 1)), ((xx // 16 + yy // 16) % 2) * 200 + 20], -1)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    return torch.from_numpy(img).permute(2, 0, 1).float()


class Timer:
    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def run_fcclip(preset: str, height: int, width: int, threads: int, short: int) -> dict:
    import torch

    import infoclip.adapters.fcclip.pixel_decoder as pd
    from infoclip.adapters.fcclip import build_model, preset_model_config

    torch.set_num_threads(threads)
    model = build_model(preset_model_config(preset)).eval()
    model.config["inference"]["test_short_side"] = short
    image = _image(height, width)
    result: dict = {"case": "fcclip", "preset": preset}
    with torch.no_grad():
        with Timer() as t:
            model.text_classifier(CLASSES)
        result["text_cpu_s"] = round(t.cpu, 2)
        with Timer() as t:
            scores = model.predict(image, CLASSES)
        result.update(cpu_s=round(t.cpu, 2), wall_s=round(t.wall, 2))
        assert scores.shape == (len(CLASSES), height, width)
        # per-stage breakdown of one forward on the protocol's input
        from infoclip.adapters.catseg.model import resize_shortest_edge

        inf = model.config["inference"]
        x = model.preprocess(resize_shortest_edge(image, inf["test_short_side"], inf["test_max_size"])[None])
        result["input"] = list(x.shape[-2:])
        core = {"cpu": 0.0}
        original = pd.deformable_attention_core

        def timed_core(*args):  # noqa: ANN002
            c0 = time.process_time()
            out = original(*args)
            core["cpu"] += time.process_time() - c0
            return out

        pd.deformable_attention_core = timed_core
        try:
            with Timer() as t_bb:
                features = model.backbone.features(x)
            text, synonyms = model.text_classifier(CLASSES)
            with Timer() as t_pd:
                mask_features, maps = model.sem_seg_head.pixel_decoder(features)
            with Timer() as t_dec:
                heads = model.sem_seg_head.predictor(maps, mask_features, text, synonyms)
        finally:
            pd.deformable_attention_core = original
        from infoclip.adapters.fcclip.model import FCCLIPOutputs

        outputs = FCCLIPOutputs(features, mask_features, maps, heads, text, synonyms)
        with Timer() as t_ens:
            cls = model.class_log_probs(outputs, CLASSES)
            model.semantic_scores(cls[0], heads[-1].masks[0], tuple(x.shape[-2:]), tuple(x.shape[-2:]), (height, width))
    result["stages_cpu_s"] = {
        "CLIP trunk": round(t_bb.cpu, 2),
        "pixel decoder": round(t_pd.cpu, 2),
        "  of which deformable sampling (grid_sample core)": round(core["cpu"], 2),
        "decoder + heads": round(t_dec.cpu, 2),
        "ensemble + semantic inference": round(t_ens.cpu, 2),
    }
    result["peak_rss_mib"] = round(_peak_mib())
    return result


def run_catseg(height: int, width: int, threads: int) -> dict:
    import torch

    from infoclip.adapters.catseg import build_model, preset_model_config

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(preset_model_config("catseg-vit-b16")).eval()
    names = [c.split(",")[0] for c in CLASSES]
    image = _image(height, width)
    with torch.no_grad():
        with Timer() as t:
            model.encode_classes(names)
        text = t.cpu
        with Timer() as t:
            probs = model.predict(image, names)
    assert probs.shape == (len(names), height, width)
    return {"case": "catseg", "preset": "catseg-vit-b16", "text_cpu_s": round(text, 2), "cpu_s": round(t.cpu, 2),
            "wall_s": round(t.wall, 2), "peak_rss_mib": round(_peak_mib())}  # fmt: skip


def run_official(scratch: Path, height: int, width: int, threads: int, short: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(str(scratch / p) for p in ("stubs", "oc224", "official"))}  # fmt: skip
    out = Path(os.environ.get("TMPDIR", "/tmp")) / "fcclip_bench_official.pt"
    cmd = [sys.executable, str(scratch / "official_run.py"), "--size", "large", "--short", str(short), "--image", f"{height}x{width}", "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=scratch)
    if done.returncode != 0:
        sys.exit(f"official case failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    for path in (out, Path(str(out) + ".ckpt.pth")):
        path.unlink(missing_ok=True)
    return {"case": "official", "preset": "official fc-clip@2b0bbe2", "cpu_s": round(row["official_cpu_s"], 2),
            "wall_s": round(row["official_wall_s"], 2), "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image", default="480x640", help="HxW of the synthetic image")
    parser.add_argument("--preset", default="fcclip-convnext-l")
    parser.add_argument("--short", type=int, default=800, help="FC-CLIP's test short side (800 in its protocol)")
    parser.add_argument("--cases", default="fcclip,catseg,official")
    parser.add_argument("--official-scratch", type=Path, help="scratch folder with official_run.py (official case)")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    height, width = map(int, args.image.split("x"))
    if args.case:
        if args.case == "fcclip":
            row = run_fcclip(args.preset, height, width, args.threads, args.short)
        elif args.case == "catseg":
            row = run_catseg(height, width, args.threads)
        else:
            row = run_official(args.official_scratch, height, width, args.threads, args.short)
        print(json.dumps(row))
        return
    cases = [c for c in args.cases.split(",") if c and (c != "official" or args.official_scratch)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    rows = []
    for case in cases:
        cmd = [sys.executable, __file__, "--case", case, "--threads", str(args.threads), "--image", args.image, "--preset", args.preset,
               "--short", str(args.short)]  # fmt: skip
        if args.official_scratch:
            cmd += ["--official-scratch", str(args.official_scratch)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"case {case} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"[fcclip bench] {rows[-1]}", file=sys.stderr)
    import torch

    print(f"image {args.image}, FC-CLIP short side {args.short}, {len(CLASSES)} classes, random weights, CPU, "
          f"{args.threads} thread(s), torch {torch.__version__}")  # fmt: skip
    print(f"{'model':<32} {'CPU s':>8} {'wall s':>8} {'text CPU s':>11} {'peak RSS MiB':>13}")
    for row in rows:
        text = f"{row['text_cpu_s']:.1f}" if "text_cpu_s" in row else "-"
        print(f"{row['preset']:<32} {row['cpu_s']:>8.1f} {row['wall_s']:>8.1f} {text:>11} {row['peak_rss_mib']:>13}")
    for row in rows:
        if "stages_cpu_s" in row:
            print(f"FC-CLIP stages at input {row['input'][0]}x{row['input'][1]} (CPU s):")
            for name, value in row["stages_cpu_s"].items():
                print(f"  {name:<50} {value:>7.2f}")
    by = {r["case"]: r for r in rows}
    if "fcclip" in by:
        for other in ("catseg", "official"):
            if other in by:
                print(f"ratio FC-CLIP / {by[other]['preset']} CPU time: {by['fcclip']['cpu_s'] / by[other]['cpu_s']:.2f}x; "
                      f"peak memory {by['fcclip']['peak_rss_mib'] / by[other]['peak_rss_mib']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
