"""Gathering samples from every rank so that batch-axis Gram matrices see the global batch.

The InfoCLIP losses are functions of the Gram matrix of *all* samples: with one image per GPU a per-rank
batch-axis Gram is 1 x 1 and every entropy is 0. ``gather_samples`` concatenates the local samples of every
rank (rank order) so that each rank computes the same global loss L(X_1, ..., X_W).

Gradient convention (why the local gradient is multiplied by the world size). Every rank holds the same
value L and back-propagates it, but can only send gradient into its own samples X_r. DDP then *averages*
parameter gradients over the W ranks. For the averaged gradient to equal the single-process gradient of L
over the global batch, sum_r dL/dX_r * dX_r/dtheta, rank r must produce W * dL/dX_r * dX_r/dtheta. So the
gather keeps the local slice differentiable, treats the other ranks' slices as constants, and scales the
local slice's gradient by W in backward. This is what ``torch.distributed.nn.all_gather`` achieves with an
all-reduce of the gradients in backward (each rank's copy of dL/dX_r is identical, so their sum is
W * dL/dX_r); doing it locally needs no backward communication and works on every backend. It assumes
gradients are averaged over ranks (DDP's behaviour); with a plain sum, divide the loss by W.

Local batches may differ in size between ranks (a short last batch); they are padded for the collective and
trimmed afterwards.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def distributed_world_size() -> int:
    """Number of ranks of the default process group, 1 when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_batch_sizes(local_size: int, device: torch.device) -> list[int]:
    """First-dimension sizes of every rank's local batch, in rank order (one small collective)."""
    world = distributed_world_size()
    if world == 1:
        return [local_size]
    mine = torch.tensor([local_size], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(mine) for _ in range(world)]
    dist.all_gather(sizes, mine)
    return [int(size.item()) for size in sizes]


def _all_gather_padded(x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    longest = max(sizes)
    padded = x
    if x.shape[0] < longest:
        padding = x.new_zeros((longest - x.shape[0], *x.shape[1:]))
        padded = torch.cat([x, padding], dim=0)
    slices = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(slices, padded.contiguous())
    return [piece[:size] for piece, size in zip(slices, sizes)]


class _GatherKeepLocalGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:  # type: ignore[override]
        ctx.offset = sum(sizes[:rank])
        ctx.local_size = sizes[rank]
        ctx.world = len(sizes)
        pieces = _all_gather_padded(x.detach(), sizes)
        return torch.cat(pieces, dim=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        local = grad_output[ctx.offset : ctx.offset + ctx.local_size]
        return local * ctx.world, None, None


def gather_samples(x: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate the samples of every rank along dim 0, keeping this rank's slice differentiable.

    Args:
        x: (n_local, ...) tensor; every rank passes the same trailing shape and dtype.
        sizes: every rank's n_local in rank order (``gather_batch_sizes``); gathered here when None.

    Returns:
        (sum(sizes), ...) tensor, ranks in order; ``x`` itself when not running distributed. In backward
        only this rank's slice receives gradient, multiplied by the world size (see the module docstring).
    """
    world = distributed_world_size()
    if world == 1:
        return x
    if sizes is None:
        sizes = gather_batch_sizes(x.shape[0], x.device)
    if x.requires_grad:
        return _GatherKeepLocalGrad.apply(x, sizes, dist.get_rank())
    return torch.cat(_all_gather_padded(x, sizes), dim=0)
