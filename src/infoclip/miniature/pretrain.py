"""Contrastive pretraining of the miniature CLIP on captioned texture images (no masks ever used).

The corpus is an endless stream of image-caption pairs from the procedural world, over the *whole*
vocabulary (seen and unseen classes alike: that is how a web-pretrained CLIP knows words it never sees a
mask of). A quarter of each batch (``closeup_fraction``) are close-ups of one texture captioned with its
name, the rest scenes of 2-4 textures captioned 'a photo of waves, bricks and dots.'.

Loss = CLIP's symmetric InfoNCE on the pooled embedding (identical captions in a batch count as positives of
each other) + ``dense_tag_weight`` x a multiple-instance loss on the dense tokens: those of CAT-Seg's dense last
block for the ViT CLIP (``architecture: infoclip-miniature-clip``), the per-pixel CLIP head of the last stage
(FC-CLIP's out-of-vocabulary readout) for the ConvNeXt CLIP (``infoclip-miniature-convnext``). Each token
takes a softmax over the vocabulary's prompts ('A photo of a {} in the scene'), a word's presence in the
image is the mean of its ``tag_topk`` strongest tokens, and a binary cross-entropy pulls it towards 1 for the
words the caption names and 0 for the others. Only image-level caption words are used,
never masks. The second term exists because, as measured in the feasibility notes, a CLS-only objective
leaves the patch tokens unaligned with text (dense zero-shot near chance) in the few thousand steps a CPU
can afford; the ViT's tokens share the CLS residual of CAT-Seg's dense path, so only their own features can
make them pick different words.

The schedule is a cosine tied to a time budget: by default the *CPU time* of this process (one torch thread,
so one core's worth of work), which gives the same number of steps on an idle or a shared machine;
``clock: wall`` ties it to wall-clock time instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infoclip.errors import ConfigError
from infoclip.miniature import tiny_clip
from infoclip.miniature.world import WorldSpec, caption, render_scene

#: the prompt CAT-Seg uses for every class (catseg-reference §1.3); zero-shot checks use it too
CATSEG_TEMPLATE = "A photo of a {} in the scene"


@dataclass
class PretrainSettings:
    """Settings of one pretraining run (the ``pretrain`` section of the miniature YAML)."""

    seconds: float = 720.0
    #: which miniature CLIP to pretrain (``infoclip.miniature.tiny_clip.ARCHITECTURES``)
    architecture: str = tiny_clip.MINIATURE_CLIP
    max_steps: int = 100_000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 50
    closeup_fraction: float = 0.25
    dense_tag_weight: float = 2.0
    tag_topk: int = 3
    seed: int = 0
    clock: str = "cpu"
    log_every: int = 50
    report_every: int = 0

    def __post_init__(self) -> None:
        if self.clock not in ("cpu", "wall"):
            raise ConfigError(f"pretrain.clock must be cpu or wall, not {self.clock!r}")
        if self.seconds <= 0 or self.batch_size < 2:
            raise ConfigError("pretrain.seconds must be positive and pretrain.batch_size at least 2")
        tiny_clip.check_architecture(self.architecture)

    @classmethod
    def from_dict(cls, data: dict) -> PretrainSettings:
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad miniature pretrain settings: {exc}") from exc


def caption_batch(
    spec: WorldSpec, batch_size: int, closeup_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """A pretraining batch over the whole vocabulary.

    Returns:
        images: (B, S, S, 3) uint8 RGB.
        captions: B strings.
        tags: (B, T) float32, 1 where the caption names vocabulary word t (image-level tags, no masks).
    """
    n_close = int(round(batch_size * closeup_fraction))
    index = {name: i for i, name in enumerate(spec.classes)}
    images, captions = [], []
    tags = np.zeros((batch_size, len(spec.classes)), np.float32)
    for i in range(batch_size):
        image, _, present = render_scene(spec, spec.classes, rng, n_regions=1 if i < n_close else None)
        images.append(image)
        captions.append(caption(present, rng))
        tags[i, [index[name] for name in present]] = 1.0
    return np.stack(images), captions, tags


def _soft_targets(captions: Sequence[str]) -> torch.Tensor:
    """(B, B) row-stochastic targets: identical captions are positives of each other."""
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    index = torch.tensor([ids[c] for c in captions])
    same = (index[:, None] == index[None, :]).float()
    return same / same.sum(1, keepdim=True)


def _symmetric_infonce(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, targets: torch.Tensor):
    logits = scale * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets.T))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 255]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


def pretrain_loss(model, images, tokens, captions, tags, class_tokens, settings):
    """The pretraining loss of one batch; returns (total, parts dict of detached terms).

    Args:
        images: (B, 3, S, S) float RGB in [0, 255] (world size; resized to the tower's own).
        tokens: (B, L) caption tokens; ``captions`` the B strings (for soft targets).
        tags: (B, T) float 0/1, which vocabulary words each caption names (image-level, no masks).
        class_tokens: (T, L) tokens of CAT-Seg's prompt for each vocabulary word.
    """
    pooled, dense = tiny_clip.encode_image_both(model.visual, tiny_clip.tower_inputs(model.visual, images))
    text = model.encode_text(tokens)
    scale = model.logit_scale.exp().clamp(max=100.0)
    targets = _soft_targets(captions)
    clip_loss = _symmetric_infonce(pooled, text, scale, targets)
    parts = {"clip": clip_loss.detach()}
    total = clip_loss
    if settings.dense_tag_weight > 0:
        # Multiple-instance loss on the dense tokens: each token picks one word of the vocabulary
        # (softmax), a word named by the caption must be picked strongly by a few tokens, a word not named
        # by any token. This is what aligns patch tokens (ViT) or last-stage pixels (ConvNeXt) with words.
        class_text = F.normalize(model.encode_text(class_tokens), dim=-1)
        probs = (scale * F.normalize(dense, dim=-1) @ class_text.T).softmax(-1)  # (B, N, T)
        k = min(settings.tag_topk, probs.shape[1])
        presence = probs.topk(k, dim=1).values.mean(1).clamp(1e-6, 1 - 1e-6)  # (B, T)
        tag_loss = F.binary_cross_entropy(presence, tags)
        parts["dense_tags"] = tag_loss.detach()
        total = total + settings.dense_tag_weight * tag_loss
    return total, parts


def _lr_factor(step: int, elapsed: float, settings: PretrainSettings) -> float:
    warm = min(1.0, (step + 1) / max(1, settings.warmup_steps))
    progress = min(1.0, max(elapsed / settings.seconds, step / settings.max_steps))
    return warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def pretrain_clip(
    spec: WorldSpec,
    settings: PretrainSettings,
    log: Callable[[str], None] = lambda s: None,
    init: str | Path | None = None,
    on_report: Callable[[torch.nn.Module, int], None] | None = None,
) -> torch.nn.Module:
    """Pretrain a miniature CLIP (``settings.architecture``) for ``settings.seconds`` of CPU (or wall-clock)
    time, or ``max_steps``.

    ``on_report(model, step)`` is called every ``settings.report_every`` steps (0: never), in eval mode.
    Returns the model in eval mode (fp32, CPU).
    """
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = tiny_clip.create_clip(init, settings.architecture)
    tokenizer = tiny_clip.tokenizer(model)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    class_tokens = tokenizer([CATSEG_TEMPLATE.format(name) for name in spec.classes])
    model.train()
    clock = time.process_time if settings.clock == "cpu" else time.monotonic
    start = clock()
    step = 0
    running: dict[str, float] = {}
    while step < settings.max_steps:
        elapsed = clock() - start
        if elapsed >= settings.seconds:
            break
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * _lr_factor(step, elapsed, settings)
        images, captions, tags = caption_batch(spec, settings.batch_size, settings.closeup_fraction, rng)
        loss, parts = pretrain_loss(
            model, to_tensor(images), tokenizer(captions), captions, torch.from_numpy(tags), class_tokens, settings
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        for key, value in parts.items():
            running[key] = running.get(key, 0.0) + float(value)
        if step % settings.log_every == 0:
            means = " ".join(f"{k} {v / settings.log_every:.3f}" for k, v in running.items())
            log(f"pretrain step {step} {clock() - start:.0f}s ({settings.clock}) {means} scale {model.logit_scale.exp():.1f}")
            running = {}
        if on_report is not None and settings.report_every and step % settings.report_every == 0:
            model.eval()
            on_report(model, step)
            model.train()
    model.eval()
    log(f"pretrain done: {step} steps in {clock() - start:.0f}s ({settings.clock} time)")
    return model


@dataclass
class ZeroShotReport:
    """Zero-shot quality of a miniature CLIP on held-out world samples (fractions in [0, 1])."""

    closeup_accuracy_seen: float
    closeup_accuracy_unseen: float
    dense_miou_seen: float
    dense_miou_unseen: float
    per_class_iou: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def class_text_embeddings(model, class_names: Sequence[str]) -> torch.Tensor:
    """(T, E) L2-normalised text embeddings of CAT-Seg's prompt for each class."""
    tokenizer = tiny_clip.tokenizer(model)
    prompts = [CATSEG_TEMPLATE.format(name.split(",")[0].strip()) for name in class_names]
    return F.normalize(model.encode_text(tokenizer(prompts)), dim=-1)


@torch.no_grad()
def zero_shot_report(model, spec: WorldSpec, n_images: int = 200, seed: int = 12345) -> ZeroShotReport:
    """Close-up classification accuracy (pooled embedding) and dense zero-shot mIoU (the dense embeddings of
    ``tiny_clip.encode_image_both``, scores upsampled bilinearly to pixels, argmax over the classes) on fresh
    scenes, each split into seen and unseen classes."""
    rng = np.random.default_rng(seed)
    text = class_text_embeddings(model, spec.classes)
    seen = set(spec.seen)
    correct = {True: [0, 0], False: [0, 0]}
    n_classes = len(spec.classes)
    inter = np.zeros(n_classes)
    union = np.zeros(n_classes)
    for start in range(0, n_images, 50):
        count = min(50, n_images - start)
        close_imgs, close_labels, scene_imgs, scene_labels = [], [], [], []
        for _ in range(count):
            img, lab, _ = render_scene(spec, spec.classes, rng, n_regions=1)
            close_imgs.append(img)
            close_labels.append(int(lab[0, 0]))
            img, lab, _ = render_scene(spec, spec.classes, rng)
            scene_imgs.append(img)
            scene_labels.append(lab)
        close = tiny_clip.tower_inputs(model.visual, to_tensor(np.stack(close_imgs)))
        pooled, _ = tiny_clip.encode_image_both(model.visual, close)
        pred = (F.normalize(pooled, dim=-1) @ text.T).argmax(1).numpy()
        for p, t in zip(pred, close_labels):
            bucket = correct[spec.classes[t] in seen]
            bucket[0] += int(p == t)
            bucket[1] += 1
        scenes = tiny_clip.tower_inputs(model.visual, to_tensor(np.stack(scene_imgs)))
        _, dense = tiny_clip.encode_image_both(model.visual, scenes)
        side = int(math.isqrt(dense.shape[1]))
        scores = (F.normalize(dense, dim=-1) @ text.T).transpose(1, 2).reshape(count, n_classes, side, side)
        scores = F.interpolate(scores, size=spec.image_size, mode="bilinear", align_corners=False)
        pred_maps = scores.argmax(1).numpy()
        labels = np.stack(scene_labels)
        for c in range(n_classes):
            p, t = pred_maps == c, labels == c
            inter[c] += np.logical_and(p, t).sum()
            union[c] += np.logical_or(p, t).sum()
    iou = {name: float(inter[i] / union[i]) for i, name in enumerate(spec.classes) if union[i] > 0}

    def mean_iou(names):
        values = [iou[n] for n in names if n in iou]
        return float(np.mean(values)) if values else float("nan")

    return ZeroShotReport(
        closeup_accuracy_seen=correct[True][0] / max(1, correct[True][1]),
        closeup_accuracy_unseen=correct[False][0] / max(1, correct[False][1]),
        dense_miou_seen=mean_iou(spec.seen),
        dense_miou_unseen=mean_iou(spec.unseen),
        per_class_iou=iou,
    )


def save_clip_weights(model: torch.nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the open_clip state dict as fp16 safetensors (loadable with open_clip's ``pretrained=path``)."""
    from safetensors.torch import save_file

    from infoclip.io_utils import atomic_write

    state = {k: v.detach().to(torch.float16).contiguous().clone() for k, v in model.state_dict().items()}
    return atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata=metadata or {}))
