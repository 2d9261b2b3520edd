"""Optimizer parameter groups, the learning-rate schedule and full-model gradient clipping (CAT-Seg's recipe).

Parameter groups follow the official ``build_optimizer`` of CAT-Seg's ``train_net.py``:

* every trainable parameter starts at ``solver.lr`` and ``solver.weight_decay``;
* parameters of a CLIP module train at ``lr * solver.clip_lr_multiplier`` (2e-6);
* parameters owned by a normalisation layer (LayerNorm, GroupNorm, BatchNorm, ...) get ``weight_decay_norm`` (0);
  those of an ``nn.Embedding`` get ``weight_decay_embed`` (0); Swin's ``relative_position_bias_table`` and
  ``absolute_pos_embed`` get 0;
* biases keep ``weight_decay`` unless ``weight_decay_bias`` is set: the official code decays them;
* the shared LPAM trains at ``infoclip.lpam_lr`` (2e-4) with the same decay rules.

Parameters with equal (lr, weight decay) are merged into one group, which is numerically the same as
detectron2's one-group-per-parameter layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm1d,
    nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.LocalResponseNorm,
)  # fmt: skip
_NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed")
#: power of the poly schedule (detectron2's SOLVER.POLY_LR_POWER default, SAN's value)
POLY_POWER = 0.9


@dataclass(frozen=True)
class GroupRule:
    """Which learning rate and weight decay a set of modules gets.

    Attributes:
        name: group label (``decoder``, ``clip``, ``lpam``), kept in the optimizer's param groups for logging.
        lr: learning rate of all the parameters the rule covers (weight decay is decided per parameter).
    """

    name: str
    lr: float


#: ``(root module, its rule, optional (selector of submodule names, rule for those))``
ModuleRules = tuple[nn.Module, GroupRule, "tuple[Callable[[str], bool], GroupRule] | None"]


def build_param_groups(
    modules: Iterable[ModuleRules],
    weight_decay: float,
    weight_decay_norm: float = 0.0,
    weight_decay_bias: float | None = None,
    weight_decay_embed: float = 0.0,
) -> list[dict[str, Any]]:
    """Param groups for ``torch.optim.AdamW`` from ``(module, rule, (selector, other_rule) | None)`` triples.

    ``selector(module_name) -> bool`` picks submodules of ``module`` that follow ``other_rule``: this is how
    the CLIP submodules inside the CAT-Seg model get the CLIP multiplier. Each parameter is assigned once
    (the first time it is met); parameters that do not require grad are left out.

    Returns:
        A list of ``{"params", "lr", "weight_decay", "name"}`` dicts, one per distinct (rule, decay).
    """
    seen: set[int] = set()
    grouped: dict[tuple[str, float, float], list[nn.Parameter]] = {}
    for root, rule, special in modules:
        for module_name, module in root.named_modules():
            rule_here = special[1] if special is not None and special[0](module_name) else rule
            for param_name, param in module.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                decay = weight_decay
                if isinstance(module, NORM_TYPES):
                    decay = weight_decay_norm
                elif isinstance(module, nn.Embedding):
                    decay = weight_decay_embed
                elif any(tag in param_name for tag in _NO_DECAY_NAMES):
                    decay = 0.0
                elif param_name == "bias" or param_name.endswith("_bias"):
                    decay = weight_decay if weight_decay_bias is None else weight_decay_bias
                grouped.setdefault((rule_here.name, rule_here.lr, decay), []).append(param)
    groups = []
    for (name, lr, decay), params in grouped.items():
        suffix = "" if decay == weight_decay else "_no_decay" if decay == 0 else f"_wd{decay:g}"
        groups.append({"params": params, "lr": lr, "weight_decay": decay, "name": f"{name}{suffix}"})
    return groups


def recipe_param_groups(
    model: nn.Module,
    lpam: nn.Module | None,
    solver: Mapping[str, Any],
    lpam_lr: float,
    is_clip_module: Callable[[str], bool],
) -> list[dict[str, Any]]:
    """The CAT-Seg recipe's param groups for ``model`` (+ the shared ``lpam``) from the ``solver`` section.

    ``is_clip_module(module_name)`` says whether a submodule of ``model`` is part of CLIP (official rule:
    its name contains ``clip_model``); those train at ``solver.lr * solver.clip_lr_multiplier``.
    """
    base = float(solver["lr"])
    clip_rule = GroupRule("clip", base * float(solver["clip_lr_multiplier"]))
    entries: list[ModuleRules] = [(model, GroupRule("decoder", base), (is_clip_module, clip_rule))]
    if lpam is not None:
        entries.append((lpam, GroupRule("lpam", float(lpam_lr)), None))
    bias = solver["weight_decay_bias"]
    return build_param_groups(
        entries,
        weight_decay=float(solver["weight_decay"]),
        weight_decay_norm=float(solver["weight_decay_norm"]),
        weight_decay_bias=None if bias is None else float(bias),
        weight_decay_embed=float(solver["weight_decay_embed"]),
    )


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
    ``constant``: 1 after warm-up.
    """

    def __init__(self, schedule: str, max_iter: int, warmup_iterations: int = 0, warmup_factor: float = 0.001,
                 end_factor: float = 0.0) -> None:  # fmt: skip
        self.schedule = schedule
        self.max_iter = int(max_iter)
        self.warmup_iterations = int(warmup_iterations)
        self.warmup_factor = float(warmup_factor)
        self.end_factor = float(end_factor)

    def __call__(self, iteration: int) -> float:
        if self.schedule == "cosine":
            where = min(iteration, self.max_iter) / self.max_iter
            value = self.end_factor + (1.0 - self.end_factor) * 0.5 * (1.0 + math.cos(math.pi * where))
        elif self.schedule == "poly":
            value = (1.0 - min(iteration, self.max_iter) / self.max_iter) ** POLY_POWER
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
