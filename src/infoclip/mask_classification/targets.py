"""Per-image targets of mask classification: binary masks with one class id each.

Panoptic training (FC-CLIP on COCO panoptic, :func:`panoptic_targets`) gives one mask per non-crowd segment.

Semantic training (SAN's and FC-CLIP's semantic mapper) turns a label map into one mask per class present, in
ascending class order. Ignored pixels (``IGNORE_INDEX``, -1; the crop padding included) belong to no mask: they are
negatives of every target mask, exactly as the official mappers build ``sem_seg_gt == class_id`` after dropping
the ignore value from the class list. An image whose pixels are all ignored has no target (zero masks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from infoclip.data.spec import IGNORE_INDEX

if TYPE_CHECKING:
    from infoclip.data.panoptic import PanopticSegment


@dataclass(frozen=True)
class MaskTargets:
    """The targets of one image.

    labels: (N,) int64 class ids in [0, num_classes).
    masks: (N, H, W) bool (or float in [0, 1]); N may be 0.
    """

    labels: torch.Tensor
    masks: torch.Tensor

    def __post_init__(self) -> None:
        if self.labels.dim() != 1 or self.labels.dtype != torch.int64:
            raise ValueError(f"target labels must be an int64 (N,) tensor; got {self.labels.dtype} {tuple(self.labels.shape)}")
        if self.masks.dim() != 3 or self.masks.shape[0] != self.labels.shape[0]:
            raise ValueError(
                f"target masks must be (N, H, W) with one mask per label; got {tuple(self.masks.shape)} for "
                f"{self.labels.shape[0]} labels"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> MaskTargets:
        return MaskTargets(self.labels.to(device), self.masks.to(device))


def semantic_targets(label_map: torch.Tensor, num_classes: int | None = None) -> MaskTargets:
    """One bool mask per class present in ``label_map`` (H, W) integer (-1 = ignore), classes ascending.

    With ``num_classes`` given, values outside [-1, num_classes) are refused.
    """
    if label_map.dim() != 2 or label_map.is_floating_point() or label_map.dtype == torch.bool:
        raise ValueError(f"semantic_targets needs an integer (H, W) label map; got {label_map.dtype} {tuple(label_map.shape)}")
    label_map = label_map.long()
    if num_classes is not None and label_map.numel():
        low, high = int(label_map.min()), int(label_map.max())
        if low < IGNORE_INDEX or high >= num_classes:
            raise ValueError(
                f"label map values must lie in [{IGNORE_INDEX}, {num_classes - 1}] ({IGNORE_INDEX} = ignore); "
                f"found {low}..{high}"
            )
    classes = torch.unique(label_map)
    classes = classes[classes != IGNORE_INDEX]
    masks = label_map.unsqueeze(0) == classes.view(-1, 1, 1)
    return MaskTargets(classes, masks)


def batch_semantic_targets(label_maps: torch.Tensor, num_classes: int | None = None) -> list[MaskTargets]:
    """:func:`semantic_targets` for each map of a (B, H, W) integer batch."""
    if label_maps.dim() != 3:
        raise ValueError(f"batch_semantic_targets needs (B, H, W) label maps; got {tuple(label_maps.shape)}")
    return [semantic_targets(label_map, num_classes) for label_map in label_maps]


def panoptic_targets(
    segment_ids: torch.Tensor,
    segments: Sequence[PanopticSegment],
    drop_empty: bool = False,
) -> MaskTargets:
    """One bool mask per non-crowd segment, in the given (JSON) order: FC-CLIP's COCO panoptic training targets.

    segment_ids: (H, W) integer segment id per pixel (after augmentation; 0 / unlisted ids = unlabelled).
    Crowd segments give no target, so their pixels (like unlabelled ones) are negatives of every mask. As in the
    official mapper, a listed segment absent from ``segment_ids`` (cropped away) still gives an all-False mask;
    ``drop_empty=True`` leaves such segments out.
    """
    if segment_ids.dim() != 2 or segment_ids.is_floating_point() or segment_ids.dtype == torch.bool:
        raise ValueError(f"panoptic_targets needs an integer (H, W) segment-id map; got {segment_ids.dtype} {tuple(segment_ids.shape)}")
    kept = [s for s in segments if not s.iscrowd]
    ids = torch.tensor([s.id for s in kept], dtype=torch.int64, device=segment_ids.device)
    labels = torch.tensor([s.category for s in kept], dtype=torch.int64, device=segment_ids.device)
    masks = segment_ids.long().unsqueeze(0) == ids.view(-1, 1, 1)
    if drop_empty:
        present = masks.flatten(1).any(1)
        labels, masks = labels[present], masks[present]
    return MaskTargets(labels, masks)


@dataclass(frozen=True)
class InstanceLabels:
    """A batch of instance (panoptic) training labels after augmentation, as the training loader yields them.

    segments: (B, H, W) int64, each pixel's segment as an index into its image's table (-1: unlabelled, padding).
    classes: (B, K) int64 class of each table slot; -1 for slots past an image's segment count.
    crowd: (B, K) bool, crowd segments (they give no target; their pixels are negatives of every mask).
    """

    segments: torch.Tensor
    classes: torch.Tensor
    crowd: torch.Tensor

    def __post_init__(self) -> None:
        if self.segments.dim() != 3 or self.classes.dim() != 2 or self.classes.shape != self.crowd.shape:
            raise ValueError(
                f"instance labels need segments (B, H, W) and classes, crowd (B, K); got {tuple(self.segments.shape)}, "
                f"{tuple(self.classes.shape)}, {tuple(self.crowd.shape)}"
            )

    @property
    def shape(self) -> torch.Size:
        """The shape of the segment map, (B, H, W)."""
        return self.segments.shape

    def to(self, device: torch.device | str, non_blocking: bool = False) -> InstanceLabels:
        return InstanceLabels(*(t.to(device, non_blocking=non_blocking) for t in (self.segments, self.classes, self.crowd)))

    def semantic(self) -> torch.Tensor:
        """(B, H, W) int64 class map (crowd pixels keep their class), -1 where unlabelled."""
        table = torch.cat([self.classes, self.classes.new_full((self.classes.shape[0], 1), IGNORE_INDEX)], 1)
        index = torch.where(self.segments < 0, table.shape[1] - 1, self.segments)
        return torch.gather(table, 1, index.flatten(1)).view_as(self.segments)

    def targets(self) -> list[MaskTargets]:
        """One ``MaskTargets`` per image: a mask per non-crowd segment in table order; a segment cropped away keeps
        its all-False mask, as in the official COCO panoptic mapper (:func:`panoptic_targets`)."""
        out = []
        for segments, classes, crowd in zip(self.segments, self.classes, self.crowd):
            slots = torch.nonzero((classes >= 0) & ~crowd).flatten()
            masks = segments.unsqueeze(0) == slots.view(-1, 1, 1)
            out.append(MaskTargets(classes[slots], masks))
        return out


def collate_instance_labels(items: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> InstanceLabels:
    """Stack per-image ``(segments (H, W), classes (K_i,), crowd (K_i,))`` into ``InstanceLabels`` (tables padded)."""
    width = max([1, *(int(c.shape[0]) for _, c, _ in items)])
    classes = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.int64)
    crowd = torch.zeros((len(items), width), dtype=torch.bool)
    for i, (_, c, k) in enumerate(items):
        classes[i, : c.shape[0]], crowd[i, : k.shape[0]] = c, k
    return InstanceLabels(torch.stack([s for s, _, _ in items]), classes, crowd)
