"""Per-term gradient norms: how hard each loss term pulls on the trained CLIP parameters.

The InfoCLIP loss is ``L = L_task + lambda_1 L_c + lambda_2 L_d``. Whether the objective *protects* CLIP's
alignment or simply *outweighs* the task is a question of the balance between the three gradients on the
CLIP weights. ``term_gradient_norms`` measures it: the L2 norm over the trained CLIP parameters of the gradient
of ``L_task``, of ``lambda_1 L_c`` and of ``lambda_2 L_d`` separately (the weighted terms, i.e. what the
optimiser actually receives from each).

Cost and guarantees: one ``torch.autograd.grad`` per non-zero term through the retained graph of the step
(so about three extra backward passes, only on the iterations it runs on; the engine runs it on logging
iterations only). ``autograd.grad`` returns the gradients instead of accumulating them into ``.grad`` and
draws no random numbers, so the step's own backward, and hence the training trajectory, is unchanged
(tests/training/test_gradient_balance.py checks the losses bit for bit). Under DDP the norms are of this
rank's local gradients (before the all-reduce).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from infoclip.adapters.contract import CLIP_PART, OVSSModel
from infoclip.adapters.parameters import part_of
from infoclip.errors import AdapterError

#: the loss terms measured, with the weight attribute of ``InfoCLIPObjective`` that scales each (None: 1)
TERMS: tuple[tuple[str, str | None], ...] = (
    ("task", None),
    ("compression", "lambda_compression"),
    ("distillation", "lambda_distillation"),
)
#: CSV columns written by the engine, in ``TERMS`` order
COLUMNS = tuple(f"grad_norm_clip_{name}" for name, _ in TERMS)


def clip_parameters(model: OVSSModel) -> list[nn.Parameter]:
    """The trained (``requires_grad``) parameters of the ``CLIP_PART`` of ``model.lr_parts()``.

    Raises:
        AdapterError: the model names no CLIP part, or none of its CLIP parameters trains.
    """
    parts = model.lr_parts()
    if CLIP_PART not in parts:
        raise AdapterError(f"{type(model).__name__} names no {CLIP_PART!r} part in lr_parts(); per-term CLIP gradients need one")
    params = [
        p for name, p in model.named_parameters()
        if p.requires_grad and part_of(name.rpartition(".")[0], parts, model.default_lr_part) == CLIP_PART
    ]  # fmt: skip
    if not params:
        raise AdapterError("no CLIP parameter trains (model.clip.finetune none?): there is no CLIP gradient to measure")
    return params


def term_gradient_norms(
    losses: Mapping[str, torch.Tensor],
    params: Sequence[torch.Tensor],
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """L2 norm over ``params`` of the gradient of each weighted loss term, without touching ``.grad``.

    Args:
        losses: 0-dim float tensors ``task``, ``compression``, ``distillation`` of one forward whose graph is
            still alive (the caller backpropagates ``total`` afterwards; the graph is retained here).
        params: the parameters to measure (``clip_parameters``).
        weights: multiplier of each term (``{"compression": lambda_1, "distillation": lambda_2}``); missing
            terms weigh 1.

    Returns:
        ``{"grad_norm_clip_task": float >= 0, "grad_norm_clip_compression": ..., "grad_norm_clip_distillation": ...}``;
        0.0 for a term that is zero-weighted, constant, or does not reach ``params``.
    """
    weights = dict(weights or {})
    params = list(params)
    norms: dict[str, float] = {}
    for (name, _), column in zip(TERMS, COLUMNS):
        loss = losses.get(name)
        weight = float(weights.get(name, 1.0))
        if loss is None or weight == 0.0 or not loss.requires_grad:
            norms[column] = 0.0
            continue
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        squares = [g.detach().float().pow(2).sum() for g in grads if g is not None]
        norms[column] = abs(weight) * float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


def objective_weights(objective: nn.Module | None) -> dict[str, float]:
    """``{"compression": lambda_1, "distillation": lambda_2}`` of an ``InfoCLIPObjective`` (zeros without one)."""
    return {name: float(getattr(objective, attr, 0.0)) if objective is not None else 0.0 for name, attr in TERMS if attr}
