"""Confusion-matrix accumulation for A-847-sized evaluation: infoclip's ConfusionMatrix vs. the alternatives.

Measures, in one run and on the same data, the per-image cost of adding one (prediction, label) pair of
512x683 pixels with 847 classes (10% ignored pixels) to a confusion matrix:

* ``ConfusionMatrix.update`` (index_add_ in place; ignored pixels land in an extra row that is dropped),
  with and without its value-range checks (``evaluate`` skips them: its inputs are valid by construction);
* torch.bincount with the same extra row, its fresh (K+1)*K output added to the matrix;
* torch.bincount after compacting the valid pixels with a boolean mask;
* detectron2's SemSegEvaluator recipe: numpy bincount over a (K+1)x(K+1) matrix;
* np.histogram2d, the textbook way.

All must produce the same matrix (checked). The argmax over the class scores is not included
(847 x 512 x 683 float32 scores are 1.2 GB per image). Goal: under 10 ms per image on one CPU thread.

    python benchmarks/evaluator.py [--images 20] [--classes 847] [--height 512] [--width 683]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from infoclip.evaluation import ConfusionMatrix  # noqa: E402


def make_pairs(n: int, k: int, h: int, w: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (pred, label) int64 pairs: uniform random classes, 10% of label pixels ignored (-1)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        label = rng.integers(0, k, size=(h, w), dtype=np.int64)
        label[rng.random((h, w)) < 0.1] = -1
        pred = rng.integers(0, k, size=(h, w), dtype=np.int64)
        pairs.append((pred, label))
    return pairs


def infoclip_update(k: int, check: bool = True) -> tuple[Callable, Callable]:
    cm = ConfusionMatrix(k)
    return (lambda pred, label: cm.update(pred, label, check=check)), cm.numpy


def infoclip_update_unchecked(k: int) -> tuple[Callable, Callable]:
    return infoclip_update(k, check=False)


def torch_bincount_ignore_row(k: int) -> tuple[Callable, Callable]:
    matrix = torch.zeros(k, k, dtype=torch.int64)

    def update(pred: torch.Tensor, label: torch.Tensor) -> None:
        rows = torch.where(label < 0, k, label)
        matrix.add_(torch.bincount((rows * k + pred).reshape(-1), minlength=(k + 1) * k)[: k * k].view(k, k))

    return update, matrix.numpy


def torch_masked(k: int) -> tuple[Callable, Callable]:
    matrix = torch.zeros(k * k, dtype=torch.int64)

    def update(pred: torch.Tensor, label: torch.Tensor) -> None:
        valid = label >= 0
        matrix.add_(torch.bincount((label[valid] * k + pred[valid]).reshape(-1), minlength=k * k))

    return update, lambda: matrix.view(k, k).numpy()


def detectron2_numpy(k: int) -> tuple[Callable, Callable]:
    matrix = np.zeros((k + 1, k + 1), dtype=np.int64)

    def update(pred: np.ndarray, label: np.ndarray) -> None:
        gt = np.where(label < 0, k, label)  # SemSegEvaluator: gt[gt == ignore] = num_classes
        matrix.__iadd__(np.bincount((k + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=(k + 1) ** 2).reshape(k + 1, k + 1))

    return update, lambda: matrix[:-1, :-1].T  # detectron2 stores [pred, gt]; drop the ignore row/column


def numpy_histogram2d(k: int) -> tuple[Callable, Callable]:
    matrix = np.zeros((k, k), dtype=np.int64)
    edges = np.arange(k + 1)

    def update(pred: np.ndarray, label: np.ndarray) -> None:
        valid = label >= 0
        hist, _, _ = np.histogram2d(label[valid], pred[valid], bins=(edges, edges))
        matrix.__iadd__(hist.astype(np.int64))

    return update, lambda: matrix


METHODS = {
    "infoclip ConfusionMatrix.update (in-place index_add_)": (infoclip_update, True),
    "  same, check=False (what evaluate() calls)": (infoclip_update_unchecked, True),
    "torch.bincount, ignore row, then add": (torch_bincount_ignore_row, True),
    "torch.bincount after boolean-mask compaction": (torch_masked, True),
    "detectron2 SemSegEvaluator recipe (numpy bincount)": (detectron2_numpy, False),
    "np.histogram2d": (numpy_histogram2d, False),
}


def run(n: int, k: int, h: int, w: int, repeats: int) -> list[tuple[str, float]]:
    torch.set_num_threads(1)
    pairs = make_pairs(n, k, h, w)
    torch_pairs = [(torch.from_numpy(p), torch.from_numpy(lab)) for p, lab in pairs]
    rows, reference = [], None
    for name, (factory, uses_torch) in METHODS.items():
        data = torch_pairs if uses_torch else pairs
        per_image = []
        for _ in range(repeats):
            update, result = factory(k)
            for pred, label in data:
                start = time.perf_counter()
                update(pred, label)
                per_image.append(time.perf_counter() - start)
        matrix = np.asarray(result()) // 1  # counts of the last repeat
        if reference is None:
            reference = matrix
        elif not np.array_equal(matrix, reference):
            raise SystemExit(f"{name} disagrees with the infoclip confusion matrix")
        rows.append((name, 1000 * statistics.median(per_image)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--classes", type=int, default=847)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=683)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = run(args.images, args.classes, args.height, args.width, args.repeats)
    base = rows[0][1]
    print(f"{args.classes} classes, {args.height}x{args.width} labels, {args.images} images x {args.repeats} repeats, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread")
    print(f"{'method':<56} {'ms/image':>9} {'x infoclip':>11}")
    for name, ms in rows:
        print(f"{name:<56} {ms:9.2f} {ms / base:11.2f}")


if __name__ == "__main__":
    main()
