"""SAN's open-vocabulary classifier: frozen CLIP text embeddings of the class names (template ensemble)
plus one learnable background row (official ``LearnableBgOvClassifier``, san-reference.md §1.7)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from infoclip.adapters.inputs import check_class_names
from infoclip.clip import encode_text, get_tokenizer
from infoclip.errors import InputError

_CACHE_SIZE = 8


def san_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every template filled with every raw class name (no synonym split), class-major: T * P strings."""
    prompts = []
    for name in class_names:
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"class names must be non-empty strings, got {name!r}")
        prompts.extend(template.format(name) for template in templates)
    return prompts


class TemplateTextEncoder:
    """Class-name embeddings of a frozen CLIP text tower: per-template L2-normalised, averaged over the
    templates, L2-normalised again; computed without autograd and cached per class list."""

    def __init__(self, clip_name: str, templates: Sequence[str]) -> None:
        self.tokenizer = get_tokenizer(clip_name)
        self.templates = list(templates)
        self.cache: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    def clear(self) -> None:
        self.cache.clear()

    @torch.no_grad()
    def __call__(self, clip_model: nn.Module, class_names: Sequence[str]) -> torch.Tensor:
        """(T, D) float L2-normalised text embeddings of ``class_names``."""
        key = tuple(check_class_names(class_names))
        device = clip_model.token_embedding.weight.device
        cached = self.cache.get(key)
        if cached is not None and cached.device == device:
            self.cache.move_to_end(key)
            return cached
        tokens = self.tokenizer(san_prompts(key, self.templates)).to(device)
        text = F.normalize(encode_text(clip_model, tokens).float(), dim=-1).reshape(len(key), len(self.templates), -1)
        text = F.normalize(text.mean(dim=1), dim=-1)
        self.cache[key] = text
        if len(self.cache) > _CACHE_SIZE:
            self.cache.popitem(last=False)
        return text


def classifier_weights(text: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """(T, D) text rows + (1, D) background row -> (T + 1, D) L2-normalised classifier (background last)."""
    return F.normalize(torch.cat([text, background.to(text.dtype)], dim=0), dim=-1)
