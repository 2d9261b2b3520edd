"""A toy adapter used by the plugin tests: a real (if trivial) OVSS model that honours the contract.

It segments by cosine similarity between a 1x1-conv embedding of each pixel and a learned per-word
embedding of each class name, so every contract method does real work on tiny tensors.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infoclip import hookimpl
from infoclip.adapters import Adapter, DenseEmbeddings, OVSSModel, TrainOutput

DIM = 8
GRID = 4


class ToyModel(OVSSModel):
    adapter_name = "toy"

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        self.pixel = nn.Conv2d(3, DIM, 1)
        self.words = nn.Embedding(64, DIM)

    def _text(self, class_names: Sequence[str]) -> torch.Tensor:
        ids = torch.tensor([zlib.crc32(n.encode()) % 64 for n in class_names])
        return F.normalize(self.words(ids), dim=-1)

    def _dense(self, images: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(images / 255.0, GRID)
        return self.pixel(x).flatten(2).transpose(1, 2)  # (B, GRID*GRID, DIM)

    def forward_train(self, images, class_names, lpam=None):  # noqa: ANN001
        dense, text = self._dense(images), self._text(class_names)
        alignment = lpam(dense, text) if lpam is not None else F.normalize(dense, dim=-1) @ text.T
        logits = alignment.transpose(1, 2).reshape(images.shape[0], len(class_names), GRID, GRID)
        return TrainOutput(logits, DenseEmbeddings(dense, (GRID, GRID), text), alignment if lpam else None)

    def task_loss(self, logits, labels):  # noqa: ANN001
        up = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        return F.cross_entropy(up, labels, ignore_index=-1)

    @torch.no_grad()
    def predict(self, image, class_names, protocol="sliding"):  # noqa: ANN001
        logits = self.forward_train(image[None], class_names).logits
        up = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return up[0].softmax(0).float()


class ToyTeacher(nn.Module):
    def __init__(self, student: ToyModel) -> None:
        super().__init__()
        import copy

        self.frozen = copy.deepcopy(student).eval().requires_grad_(False)

    @torch.no_grad()
    def forward(self, images, class_names):  # noqa: ANN001
        return self.frozen.forward_train(images, class_names).embeddings


@hookimpl
def infoclip_register_adapters():
    return [
        Adapter(
            name="toy",
            summary="toy adapter for the plugin tests",
            build_model=lambda cfg: ToyModel(cfg),
            build_teacher=lambda cfg, student: ToyTeacher(student),
            version="0.1",
        )
    ]
