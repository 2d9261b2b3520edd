"""SAN ViT-B/16 on CPU (random weights): inference time and peak memory beside CAT-Seg's and the official code's.

Each case runs in a fresh subprocess (its peak resident memory is its own), on the same 8-bit 480 x 640 image
and the first T COCO-Stuff names (default 20), with text embeddings computed before timing:

* ``san``: infoclip's SAN, ``model.predict`` (SAN's protocol: short side 640 -> 640 x 853, whole image);
* ``catseg``: infoclip's CAT-Seg ViT-B/16, ``model.predict`` (its sliding protocol: 4 crops + a global view);
* ``official``: the official SAN modules (MendelXu/SAN @ e19262d) on the same resized image, ``SAN.forward``
  in eval mode. This needs the scratch setup of docs/san-fidelity.md (official code + open_clip 2.16 +
  detectron2 stand-ins, never part of this repository): pass its folder with ``--official-dir``; without
  it the row is skipped and the script says so.

    OMP_NUM_THREADS=1 python benchmarks/san.py                                  # san + catseg
    OMP_NUM_THREADS=1 python benchmarks/san.py --official-dir /work/scratch/san # + the official SAN
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from catseg import Timer, _coco_names, _peak_mib, _rss_mib  # noqa: E402  (shared benchmark helpers)

SIZE = (480, 640)


def _image():
    import torch

    generator = torch.Generator().manual_seed(0)
    return (torch.rand(3, *SIZE, generator=generator) * 255).round()


def run_case(case: str, classes: int, threads: int, official_dir: str | None) -> dict:
    import torch

    torch.set_num_threads(threads)
    names = _coco_names(classes)
    image = _image()
    torch.manual_seed(0)
    result = {"case": case, "classes": classes, "threads": threads}
    if case == "official":
        sys.path.insert(0, official_dir)
        import official_san  # the scratch module: official SAN modules on open_clip 2.16, detectron2 stubbed
        from run_official import d2_resize

        model = official_san.build("b16").eval()
        result["rss_after_build_mib"] = round(_rss_mib())
        resized = d2_resize(image.to(torch.uint8)).float()
        batch = [{"image": resized, "height": SIZE[0], "width": SIZE[1], "vocabulary": names}]
        with torch.no_grad():
            model.ov_classifier.get_classifier_by_vocabulary(names)  # text cached, as in evaluation
            with Timer() as timer:
                scores = model(batch)[0]["sem_seg"]
    else:
        from infoclip.adapters import get_adapter

        adapter = get_adapter(case)
        preset = {"san": "san-vit-b16", "catseg": "catseg-vit-b16"}[case]
        model = adapter.build_model(__import__(f"infoclip.adapters.{case}", fromlist=["x"]).preset_model_config(preset)).eval()
        result["rss_after_build_mib"] = round(_rss_mib())
        with torch.no_grad():
            if case == "san":
                model.text_embeddings(names)
            else:
                model.encode_classes(names)
        with Timer() as timer:
            scores = model.predict(image, names)
    assert tuple(scores.shape) == (classes, *SIZE), scores.shape
    result.update(Timer.medians([timer]))
    result["peak_rss_mib"] = round(_peak_mib())
    result["peak_minus_build_mib"] = result["peak_rss_mib"] - result["rss_after_build_mib"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--official-dir", help="the scratch folder with the official SAN setup (docs/san-fidelity.md)")
    parser.add_argument("--cases", nargs="+", default=["san", "catseg", "official"])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.classes, args.threads, args.official_dir)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
    rows = []
    for case in args.cases:
        if case == "official" and not (args.official_dir and (Path(args.official_dir) / "official_san.py").is_file()):
            print("[san bench] official: skipped (no --official-dir with the scratch setup of docs/san-fidelity.md)", file=sys.stderr)
            continue
        cmd = [sys.executable, __file__, "--case", case, "--classes", str(args.classes), "--threads", str(args.threads)]
        if args.official_dir:
            cmd += ["--official-dir", args.official_dir]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"case {case} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"[san bench] {case}: {rows[-1]}", file=sys.stderr)
    labels = {"san": "infoclip SAN B/16, predict (whole, 640x853)", "catseg": "infoclip CAT-Seg B/16, predict (sliding)",
              "official": "official SAN B/16, forward (640x853)"}  # fmt: skip
    print(f"one {SIZE[0]}x{SIZE[1]} image, T={args.classes}, random weights, CPU, {args.threads} thread(s)")
    print(f"{'case':<46} {'CPU s':>7} {'wall s':>7} {'peak RSS MiB':>13} {'peak - model MiB':>17}")
    for row in rows:
        print(f"{labels[row['case']]:<46} {row['cpu_s']:>7.2f} {row['wall_s']:>7.2f} {row['peak_rss_mib']:>13} {row['peak_minus_build_mib']:>17}")
    by = {r["case"]: r for r in rows}
    for other in ("catseg", "official"):
        if "san" in by and other in by:
            print(f"ratio CPU time SAN / {other}: {by['san']['cpu_s'] / by[other]['cpu_s']:.2f}x; "
                  f"extra memory: {by['san']['peak_minus_build_mib'] / max(1, by[other]['peak_minus_build_mib']):.2f}x")


if __name__ == "__main__":
    main()
