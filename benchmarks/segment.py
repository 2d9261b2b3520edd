"""Images per second of ``Segmenter.predict`` on CPU: tiny CAT-Seg, CAT-Seg ViT-B/16, the dense-CLIP baseline;
fp32 against bf16 autocast; sliding against whole protocol.

Models have random weights (speed does not depend on the values; nothing is downloaded). Each measurement runs
one warm-up image (which also encodes and caches the class prompts, as for every image after the first in
``infoclip segment``) and then times ``--repeats`` predictions of the same image, including image conversion,
the protocol's resizing, and the argmax; not file writing.

    OMP_NUM_THREADS=1 python benchmarks/segment.py                      # everything, 1 thread
    python benchmarks/segment.py --models catseg-tiny --repeats 10
    python benchmarks/segment.py --vocab ade150 --threads 2
"""

from __future__ import annotations

import argparse
import os
import time

MODELS = ("catseg-tiny", "catseg-vit-b16", "clip-vit-b16")


def build(name: str, precision: str, protocol: str):  # noqa: ANN201
    from infoclip import Segmenter
    from infoclip.adapters import get_adapter
    from infoclip.config import load_config

    if name.startswith("clip-"):
        return Segmenter.from_clip("ViT-B-16-quickgelu:none", "cpu", precision, protocol)
    adapter = get_adapter("catseg")
    model = adapter.build_model(load_config(adapter.config_path(name))["model"])
    return Segmenter(model, f"{name} (random weights)", "cpu", precision, protocol)


def measure(segmenter, image, classes, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    """(wall seconds, CPU seconds) per image, medians of ``repeats`` timed predictions after one warm-up.

    CPU time (of this process, all threads) is reported beside wall time because on a shared machine the wall
    time of a one-thread run grows with the other processes' load while its CPU time barely does.
    """
    segmenter.predict(image, classes)
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        segmenter.predict(image, classes)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return sorted(wall)[len(wall) // 2], sorted(cpu)[len(cpu) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--protocols", default="sliding,whole")
    parser.add_argument("--vocab", default="voc20", help="shipped vocabulary used as the class list")
    parser.add_argument("--repeats", type=int, default=0, help="timed images per setting (default: 5 tiny, 1 ViT-B/16)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch
    from skimage import data

    from infoclip.segmentation.classes import load_vocabulary

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    image = np.ascontiguousarray(data.chelsea())  # 451 x 300 RGB photo bundled with scikit-image
    classes = load_vocabulary(args.vocab)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {args.threads} thread(s), image {image.shape[1]}x{image.shape[0]}, "
          f"{len(classes)} classes ({args.vocab}), CPU, load average {load:.1f} on {os.cpu_count()} cores")
    print(f"{'model':<16} {'protocol':<8} {'precision':<9} {'wall s':>8} {'images/s':>9} {'CPU s':>8} {'CPU vs fp32':>12}")
    for name in args.models.split(","):
        repeats = args.repeats or (5 if name == "catseg-tiny" else 1)
        for protocol in args.protocols.split(","):
            reference = None
            for precision in args.precisions.split(","):
                wall, cpu = measure(build(name, precision, protocol), image, classes, repeats)
                reference = reference or cpu
                print(f"{name:<16} {protocol:<8} {precision:<9} {wall:8.3f} {1 / wall:9.3f} {cpu:8.3f} "
                      f"{reference / cpu:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
