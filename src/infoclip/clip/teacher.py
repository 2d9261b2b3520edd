"""The frozen CLIP that an InfoCLIP teacher runs: built like the student's, pretrained weights loaded, no
parameter trainable, always in eval mode, placed on the student's device. Adapters subclass ``FrozenCLIPTeacher``
and implement ``forward(images, class_names) -> DenseEmbeddings`` the way their framework runs its CLIP."""

from __future__ import annotations

from typing import Any

from torch import nn

from infoclip.clip.loading import build_clip, load_clip_weights


def frozen_clip(name: str, pretrained: str | None, init_seed: int | None) -> nn.Module:
    """``build_clip(name, init_seed)`` with ``pretrained`` loaded (a tag or a file; may download). With
    ``pretrained=None`` it is the seeded random init, i.e. exactly the student's CLIP as it was built."""
    clip_model = build_clip(name, init_seed=init_seed)
    if pretrained:
        load_clip_weights(clip_model, name, pretrained)
    return clip_model


class FrozenCLIPTeacher(nn.Module):
    """Holds ``clip_model`` frozen (no gradients) and in eval mode whatever ``train`` is asked; a text
    encoder kept as ``text_encoder`` (anything with ``clear()``) drops its cache when the module moves.

    Args:
        clip_model: the CLIP to freeze.
        text_encoder: the class-name encoder of the framework (its cache is cleared by ``to``/``half``...).
    """

    def __init__(self, clip_model: nn.Module, text_encoder: Any) -> None:
        super().__init__()
        self.clip_model = clip_model
        self.clip_model.requires_grad_(False)
        self.text_encoder = text_encoder
        super().train(False)

    def train(self, mode: bool = True) -> FrozenCLIPTeacher:
        """The teacher stays in eval mode whatever is asked."""
        return super().train(False)

    def _apply(self, fn, *args, **kwargs):  # noqa: ANN001 - nn.Module's signature
        self.text_encoder.clear()
        return super()._apply(fn, *args, **kwargs)

    def on_device_of(self, student: nn.Module | None) -> FrozenCLIPTeacher:
        """``self`` moved to the device of ``student``'s parameters (unchanged without a student or parameters)."""
        param = next(student.parameters(), None) if student is not None else None
        return self.to(param.device) if param is not None else self
