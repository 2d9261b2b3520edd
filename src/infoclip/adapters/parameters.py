"""Parameter groups and parameter tables: the parts of the model contract that are about parameters.

An ``OVSSModel`` names its parts by module-name prefix (``OVSSModel.lr_parts``, e.g. CAT-Seg's
``{"clip": ("clip_model",)}``); the optimizer policy gives each part a learning-rate multiplier and decides
weight decay per parameter by the official detectron2 / CAT-Seg rules (``WeightDecayPolicy``):

* parameters owned by a normalisation layer (LayerNorm, GroupNorm, BatchNorm, ...) get ``norm`` (0);
  those of an ``nn.Embedding`` get ``embed`` (0); Swin's ``relative_position_bias_table`` and
  ``absolute_pos_embed`` get 0;
* biases keep ``weight_decay`` unless ``bias`` is set (the official code decays them);
* everything else gets ``weight_decay``.

Parameters with equal (part, lr, weight decay) are merged into one group, which is numerically the same as
detectron2's one-group-per-parameter layout. Depends on torch only.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm1d,
    nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LayerNorm, nn.LocalResponseNorm,
)  # fmt: skip
_NO_DECAY_NAMES = ("relative_position_bias_table", "absolute_pos_embed")


@dataclass(frozen=True)
class WeightDecayPolicy:
    """Weight decay per kind of parameter (see the module docstring).

    Attributes:
        weight_decay: the default decay.
        norm: decay of normalisation-layer parameters.
        bias: decay of biases; ``None`` keeps ``weight_decay`` (official behaviour).
        embed: decay of ``nn.Embedding`` weights.
    """

    weight_decay: float = 0.0
    norm: float = 0.0
    bias: float | None = None
    embed: float = 0.0

    def decay_of(self, module: nn.Module, param_name: str) -> float:
        """The decay of parameter ``param_name`` owned directly by ``module``."""
        if isinstance(module, NORM_TYPES):
            return self.norm
        if isinstance(module, nn.Embedding):
            return self.embed
        if any(tag in param_name for tag in _NO_DECAY_NAMES):
            return 0.0
        if param_name == "bias" or param_name.endswith("_bias"):
            return self.weight_decay if self.bias is None else self.bias
        return self.weight_decay


@dataclass(frozen=True)
class GroupRule:
    """The learning rate of a set of modules, and the label its optimizer groups carry (``decoder``, ``clip``)."""

    name: str
    lr: float


#: ``(root module, rule_for(submodule name) -> GroupRule)``
ModuleRules = tuple[nn.Module, Callable[[str], GroupRule]]


def build_param_groups(modules: Iterable[ModuleRules], decay: WeightDecayPolicy) -> list[dict[str, Any]]:
    """Param groups for ``torch.optim.AdamW`` from ``(module, rule_for)`` pairs.

    ``rule_for(module_name)`` gives the rule of each submodule of ``module`` (by its name inside ``module``).
    Each parameter is assigned once (the first time it is met); parameters that do not require grad are left out.

    Returns:
        A list of ``{"params", "lr", "weight_decay", "name"}`` dicts, one per distinct (rule, decay), in the
        order their first parameter is met. ``name`` is the rule's name, suffixed ``_no_decay`` (decay 0) or
        ``_wd<value>`` when the decay differs from ``decay.weight_decay``.
    """
    seen: set[int] = set()
    grouped: dict[tuple[str, float, float], list[nn.Parameter]] = {}
    for root, rule_for in modules:
        for module_name, module in root.named_modules():
            rule = rule_for(module_name)
            for param_name, param in module.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                grouped.setdefault((rule.name, rule.lr, decay.decay_of(module, param_name)), []).append(param)
    groups = []
    for (name, lr, value), params in grouped.items():
        suffix = "" if value == decay.weight_decay else "_no_decay" if value == 0 else f"_wd{value:g}"
        groups.append({"params": params, "lr": lr, "weight_decay": value, "name": f"{name}{suffix}"})
    return groups


def part_of(module_name: str, parts: Mapping[str, Sequence[str]], default: str) -> str:
    """The part whose module-name prefixes cover ``module_name`` (a prefix covers itself and its children)."""
    for part, prefixes in parts.items():
        if any(module_name == p or module_name.startswith(p + ".") for p in prefixes):
            return part
    return default


def parts_rule(
    parts: Mapping[str, Sequence[str]], base_lr: float, multipliers: Mapping[str, float], default: str
) -> Callable[[str], GroupRule]:
    """``rule_for(module_name)``: a part's rule trains at ``base_lr * multipliers.get(part, 1)``."""
    rules = {part: GroupRule(part, base_lr * float(multipliers.get(part, 1.0))) for part in parts}
    default_rule = GroupRule(default, base_lr)

    def rule_for(module_name: str) -> GroupRule:
        part = part_of(module_name, parts, default)
        return rules.get(part, default_rule)

    return rule_for


def count_parameters(
    model: nn.Module, label_of: Callable[[str], str], labels: Sequence[str] = ()
) -> OrderedDict[str, list[int]]:
    """``label -> [trainable, frozen]`` parameter counts, labelling each parameter by its full name.

    ``labels`` fixes the order of known labels (counted even when empty); others follow as first met.
    """
    counts: OrderedDict[str, list[int]] = OrderedDict((label, [0, 0]) for label in labels)
    for name, param in model.named_parameters():
        counts.setdefault(label_of(name), [0, 0])[0 if param.requires_grad else 1] += param.numel()
    return counts


def format_parameter_table(counts: Mapping[str, Sequence[int]], footer: Sequence[str] = ()) -> str:
    """An aligned text table ``part | trainable | frozen | total`` with a total row; empty parts are left out."""
    rows = [(label, tr, fr) for label, (tr, fr) in counts.items() if tr or fr]
    total_tr, total_fr = sum(r[1] for r in rows), sum(r[2] for r in rows)
    rows.append(("total", total_tr, total_fr))
    head = ("part", "trainable", "frozen", "total")
    cells = [head] + [(label, f"{tr:,}", f"{fr:,}", f"{tr + fr:,}") for label, tr, fr in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    lines = ["  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)) for row in cells]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join([*lines, *footer])
