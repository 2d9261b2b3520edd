"""The optimizer policy of the CAT-Seg recipe: parameter groups, the learning-rate schedule, full-model clipping.

Parameter groups follow the official ``build_optimizer`` of CAT-Seg's ``train_net.py``, through the model
contract (``OVSSModel.param_groups``; the weight-decay rules are in ``infoclip.adapters.parameters``):

* every trainable parameter starts at ``solver.lr`` and ``solver.weight_decay``;
* the model's part called ``clip`` (``OVSSModel.lr_parts``) trains at ``lr * solver.clip_lr_multiplier`` (2e-6);
* normalisation and embedding parameters get ``weight_decay_norm`` / ``weight_decay_embed`` (0); biases keep
  ``weight_decay`` unless ``weight_decay_bias`` is set (the official code decays them);
* the shared LPAM trains at ``infoclip.lpam_lr`` (2e-4) with the same decay rules, unless the model owns it
  (LPAM in the decoder), where it is one of the model's parameters.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from infoclip.adapters.contract import CLIP_PART, OVSSModel
from infoclip.adapters.parameters import GroupRule, WeightDecayPolicy, build_param_groups

#: power of the poly schedule (detectron2's SOLVER.POLY_LR_POWER default, SAN's value)
POLY_POWER = 0.9


def weight_decay_policy(solver: Mapping[str, Any]) -> WeightDecayPolicy:
    """The ``solver`` section's weight-decay settings as a policy."""
    bias = solver["weight_decay_bias"]
    return WeightDecayPolicy(
        weight_decay=float(solver["weight_decay"]),
        norm=float(solver["weight_decay_norm"]),
        bias=None if bias is None else float(bias),
        embed=float(solver["weight_decay_embed"]),
    )


def recipe_param_groups(
    model: OVSSModel, lpam: nn.Module | None, solver: Mapping[str, Any], lpam_lr: float
) -> list[dict[str, Any]]:
    """The recipe's param groups for ``model`` (``model.param_groups``) and the shared ``lpam``.

    The model's groups come first; LPAM parameters the model already owns are not listed twice.
    """
    policy = weight_decay_policy(solver)
    groups = model.param_groups(float(solver["lr"]), policy, {CLIP_PART: float(solver["clip_lr_multiplier"])})
    if lpam is not None:
        taken = {id(p) for group in groups for p in group["params"]}
        for group in build_param_groups([(lpam, lambda _name: GroupRule("lpam", float(lpam_lr)))], policy):
            group["params"] = [p for p in group["params"] if id(p) not in taken]
            if group["params"]:
                groups.append(group)
    return groups


def build_optimizer(groups: list[dict[str, Any]], solver: Mapping[str, Any]) -> torch.optim.AdamW:
    """AdamW over ``groups`` with the solver's betas and eps (torch defaults in the recipe)."""
    if not any(g["params"] for g in groups):
        from infoclip.errors import TrainingError

        raise TrainingError("the model has no trainable parameter; check the adapter's fine-tuning settings")
    betas = tuple(float(b) for b in solver["betas"])
    return torch.optim.AdamW(groups, lr=float(solver["lr"]), betas=betas, eps=float(solver["eps"]))


class LRFactor:
    """Multiplier of each group's initial lr at an iteration (a picklable callable for ``LambdaLR``).

    ``cosine``: detectron2's ``WarmupCosineLR``: ``end + (1 - end) * 0.5 * (1 + cos(pi * it / max_iter))``
    where ``end = lr_end / lr``, times a linear warm-up from ``warmup_factor`` to 1 over ``warmup_iterations``.
    ``poly``: detectron2's ``WarmupPolyLR``: ``(1 - it / max_iter) ** POLY_POWER`` (SAN's schedule).
    ``multistep``: detectron2's ``WarmupMultiStepLR`` (FC-CLIP's schedule): ``gamma ** n`` where ``n`` counts the
    ``steps`` at or below ``it`` (the rate drops at the first iteration of each step).
    ``constant``: 1 after warm-up.
    """

    def __init__(self, schedule: str, max_iter: int, warmup_iterations: int = 0, warmup_factor: float = 0.001,
                 end_factor: float = 0.0, steps: Sequence[int] = (), gamma: float = 0.1) -> None:  # fmt: skip
        self.schedule = schedule
        self.max_iter = int(max_iter)
        self.warmup_iterations = int(warmup_iterations)
        self.warmup_factor = float(warmup_factor)
        self.end_factor = float(end_factor)
        self.steps = tuple(int(s) for s in steps)
        self.gamma = float(gamma)

    def __call__(self, iteration: int) -> float:
        if self.schedule == "cosine":
            where = min(iteration, self.max_iter) / self.max_iter
            value = self.end_factor + (1.0 - self.end_factor) * 0.5 * (1.0 + math.cos(math.pi * where))
        elif self.schedule == "poly":
            value = (1.0 - min(iteration, self.max_iter) / self.max_iter) ** POLY_POWER
        elif self.schedule == "multistep":
            value = self.gamma ** bisect.bisect_right(self.steps, iteration)
        else:
            value = 1.0
        if iteration < self.warmup_iterations:
            alpha = iteration / self.warmup_iterations
            value *= self.warmup_factor * (1.0 - alpha) + alpha
        return value


def build_scheduler(optimizer: torch.optim.Optimizer, solver: Mapping[str, Any]) -> torch.optim.lr_scheduler.LambdaLR:
    """The per-iteration schedule: call ``scheduler.step()`` once after every optimizer step."""
    lr = float(solver["lr"])
    factor = LRFactor(
        solver["schedule"],
        solver["iterations"],
        solver["warmup_iterations"],
        solver["warmup_factor"],
        float(solver["lr_end"]) / lr if lr > 0 else 0.0,
        solver["steps"],
        solver["gamma"],
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


def clip_full_model(optimizer: torch.optim.Optimizer, max_norm: float | None) -> torch.Tensor:
    """Clip the L2 norm of all gradients together (detectron2 ``full_model``); return the norm before clipping."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params:
        return torch.zeros(())
    if max_norm is None:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    return torch.nn.utils.clip_grad_norm_(params, float(max_norm))


def recipe_optimizer(
    model: OVSSModel, lpam: nn.Module | None, config: Mapping[str, Any]
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """The run's AdamW over the recipe's param groups (``infoclip.lpam_lr`` for the shared ``lpam``) and its schedule."""
    solver = config["solver"]
    groups = recipe_param_groups(model, lpam, solver, float(config["infoclip"]["lpam_lr"]))
    optimizer = build_optimizer(groups, solver)
    return optimizer, build_scheduler(optimizer, solver)
