"""Two gloo processes on CPU against one process holding the whole batch.

Each rank holds a slice of the global batch, computes the InfoCLIP objective with samples gathered from all
ranks, and back-propagates it. Averaging the parameter gradients over ranks (what DDP does) must give the
gradients of one process computing the objective on the whole batch; the loss values must be equal on every
rank and to the single-process ones.
"""

from __future__ import annotations

import datetime
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from infoclip.core import LPAM, InfoCLIPObjective

DIM, PIXELS, CLASSES = 8, 6, 3
WORLD = 2

# (name, gram_axis, per-image text, local batch sizes of rank 0 and rank 1, gather across ranks)
SCENARIOS = [
    ("batch", "batch", False, (2, 2), True),
    ("pairs", "pairs", False, (2, 2), True),
    ("batch-per-image-text-uneven", "batch", True, (3, 2), True),
    ("pairs-per-image-text-uneven", "pairs", True, (2, 3), True),
    ("one-image-per-rank", "batch", False, (1, 1), True),
    ("no-gather", "batch", False, (2, 2), False),
]


def _data(total: int, per_image_text: bool):
    generator = torch.Generator().manual_seed(total + 10 * per_image_text)

    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    text_shape = (total, CLASSES, DIM) if per_image_text else (CLASSES, DIM)
    return {
        "student_image_input": draw(1, PIXELS, DIM) + draw(total, PIXELS, DIM),
        "student_text_input": draw(*text_shape) + draw(1, DIM),
        "teacher_image": draw(1, PIXELS, DIM) + draw(total, PIXELS, DIM),
        "teacher_text": draw(*text_shape) + draw(1, DIM),
    }


def _run(data, rows: slice, gram_axis: str, per_image_text: bool, gather: bool):
    """Objective on the given rows; the student is a linear layer, so its weight stands for student parameters."""
    torch.manual_seed(0)
    objective = InfoCLIPObjective(LPAM(DIM), gram_axis=gram_axis, gather_across_ranks=gather).double()
    student = torch.nn.Linear(DIM, DIM, bias=False).double()
    text_rows = rows if per_image_text else slice(None)
    student_image = student(data["student_image_input"][rows])
    student_text = student(data["student_text_input"][text_rows])
    out = objective(student_image, student_text, data["teacher_image"][rows], data["teacher_text"][text_rows])
    out["total"].backward()
    grads = {name: p.grad.clone() for name, p in objective.named_parameters()}
    grads["student.weight"] = student.weight.grad.clone()
    return {"compression": out["compression"].detach(), "distillation": out["distillation"].detach(), "grads": grads}


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        results = {}
        for name, gram_axis, per_image_text, sizes, gather in SCENARIOS:
            start = sum(sizes[:rank])
            data = _data(sum(sizes), per_image_text)
            results[name] = _run(data, slice(start, start + sizes[rank]), gram_axis, per_image_text, gather)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("gloo")
    context = mp.get_context("spawn")
    port = _free_port()
    processes = [context.Process(target=_worker, args=(rank, port, str(out_dir))) for rank in range(WORLD)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert all(process.exitcode == 0 for process in processes), [p.exitcode for p in processes]
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s[4]], ids=lambda s: s[0])
def test_gathered_losses_and_averaged_gradients_equal_the_single_process_ones(rank_results, scenario):
    name, gram_axis, per_image_text, sizes, _ = scenario
    reference = _run(_data(sum(sizes), per_image_text), slice(None), gram_axis, per_image_text, gather=True)
    for rank in range(WORLD):
        for key in ("compression", "distillation"):
            torch.testing.assert_close(rank_results[rank][name][key], reference[key])
    assert reference["distillation"].abs() > 1e-3, "the scenario must have a non-trivial loss"
    for parameter, expected in reference["grads"].items():
        averaged = sum(rank_results[rank][name]["grads"][parameter] for rank in range(WORLD)) / WORLD
        torch.testing.assert_close(averaged, expected, msg=f"{name}: gradient of {parameter}")


def test_without_gathering_each_rank_sees_only_its_own_samples(rank_results):
    data = _data(4, False)
    for rank in range(WORLD):
        local = _run(data, slice(2 * rank, 2 * rank + 2), "batch", False, gather=False)
        torch.testing.assert_close(rank_results[rank]["no-gather"]["distillation"], local["distillation"])
    assert not torch.allclose(rank_results[0]["no-gather"]["distillation"], rank_results[1]["no-gather"]["distillation"])
