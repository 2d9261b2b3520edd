"""The training data stream: a seeded, position-addressed sequence of samples that resumes exactly.

The stream is an endless sequence of epochs; epoch ``e`` visits the dataset in the order of a permutation
seeded by ``(seed, e)``. Position ``p`` of the stream is therefore a pure function of the seed, and so is the
augmentation of the sample at ``p`` (its generator is seeded by ``(seed, p)``). An iteration consumes the
``batch_size`` positions ``[it * batch_size, (it + 1) * batch_size)``; with ``world_size`` processes and
``accumulation`` micro-steps, micro-step ``m`` of rank ``r`` takes the slice of width
``per_step = batch_size / (world_size * accumulation)`` starting at ``it * batch_size + (m * world_size + r) * per_step``.

Consequences: the union of what all ranks see in an iteration is the same global batch whatever the
number of processes, accumulation steps or loader workers, and resuming at iteration ``k`` only needs ``k``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from infoclip.errors import ConfigError, DatasetError
from infoclip.mask_classification.targets import InstanceLabels, collate_instance_labels
from infoclip.training.augment import TrainAugmentation
from infoclip.training.interrupt import ignore_in_worker

_ORDER_STREAM = 0
_AUGMENT_STREAM = 1


@dataclass(frozen=True)
class StreamLayout:
    """How a global batch splits over processes and accumulation micro-steps."""

    batch_size: int
    world_size: int = 1
    rank: int = 0
    accumulation: int = 1

    def __post_init__(self) -> None:
        parts = self.world_size * self.accumulation
        if self.batch_size % parts:
            raise ConfigError(
                f"solver.batch_size {self.batch_size} must be divisible by processes x grad_accumulation "
                f"({self.world_size} x {self.accumulation} = {parts})"
            )

    @property
    def per_step(self) -> int:
        """Images per process per micro-step."""
        return self.batch_size // (self.world_size * self.accumulation)

    def positions(self, iteration: int, micro_step: int) -> range:
        """Stream positions this rank processes in ``micro_step`` of ``iteration``."""
        start = iteration * self.batch_size + (micro_step * self.world_size + self.rank) * self.per_step
        return range(start, start + self.per_step)


class EpochOrder:
    """Dataset index at each stream position: a fresh seeded permutation per epoch."""

    def __init__(self, length: int, seed: int) -> None:
        if length < 1:
            raise DatasetError("the training dataset is empty")
        self.length = length
        self.seed = seed
        self._epoch = -1
        self._perm: np.ndarray | None = None

    def __call__(self, position: int) -> int:
        epoch, offset = divmod(position, self.length)
        if epoch != self._epoch:
            self._perm = np.random.default_rng([self.seed, _ORDER_STREAM, epoch]).permutation(self.length)
            self._epoch = epoch
        assert self._perm is not None
        return int(self._perm[offset])


class PositionBatches:
    """Endless batch sampler: lists of ``(position, dataset_index)`` for this rank, from ``start_iteration``."""

    def __init__(self, layout: StreamLayout, order: EpochOrder, start_iteration: int = 0) -> None:
        self.layout = layout
        self.order = order
        self.start_iteration = start_iteration

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        iteration = self.start_iteration
        while True:
            for micro in range(self.layout.accumulation):
                yield [(p, self.order(p)) for p in self.layout.positions(iteration, micro)]
            iteration += 1


def sample_generator(seed: int, position: int) -> np.random.Generator:
    """The augmentation generator of the sample at ``position``."""
    return np.random.default_rng([seed, _AUGMENT_STREAM, position])


class AugmentedDataset(Dataset):
    """Wrap a segmentation dataset: ``ds[(position, index)] -> (image (3,S,S) float 0-255, label (S,S) int64)``.

    With ``instance_targets`` (a panoptic dataset for a model whose loss takes segments), the label is
    ``(segments (S,S) int64 slot per pixel, classes (K,) int64, crowd (K,) bool)``: the slot map is augmented as a
    second label plane, so segments move exactly with the image and the class plane.
    """

    def __init__(self, dataset: Any, augmentation: TrainAugmentation, seed: int, instance_targets: bool = False) -> None:
        self.dataset = dataset
        self.augmentation = augmentation
        self.seed = seed
        self.instance_targets = instance_targets

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, Any]:
        position, index = key
        sample = self.dataset[index]
        label = np.asarray(sample.label)
        if self.instance_targets:
            label = np.stack([label, sample.slot_map()], axis=-1)
        image, label = self.augmentation(np.asarray(sample.image), label, sample_generator(self.seed, position))
        image = torch.from_numpy(image).permute(2, 0, 1).float()
        if not self.instance_targets:
            return image, torch.from_numpy(label)
        classes = torch.tensor([s.category for s in sample.segments], dtype=torch.int64)
        crowd = torch.tensor([s.iscrowd for s in sample.segments], dtype=torch.bool)
        return image, (torch.from_numpy(np.ascontiguousarray(label[..., 1])), classes, crowd)


def _collate(items: Sequence[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, torch.Tensor | InstanceLabels]:
    images = torch.stack([i for i, _ in items])
    if isinstance(items[0][1], tuple):
        return images, collate_instance_labels([lab for _, lab in items])
    return images, torch.stack([lab for _, lab in items])


def build_train_loader(
    dataset: Any,
    augmentation: TrainAugmentation,
    layout: StreamLayout,
    seed: int,
    start_iteration: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    instance_targets: bool = False,
) -> DataLoader:
    """An endless loader of this rank's micro-batches, resuming at ``start_iteration``.

    Yields ``(images (b,3,S,S) float32 in [0,255], labels (b,S,S) int64 with -1 ignore)`` with
    ``b = layout.per_step`` (labels are ``InstanceLabels`` with ``instance_targets``); ``grad_accumulation``
    consecutive items make one iteration.
    """
    sampler = PositionBatches(layout, EpochOrder(len(dataset), seed), start_iteration)
    return DataLoader(
        AugmentedDataset(dataset, augmentation, seed, instance_targets),
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        # Its own generator: creating the loader's iterator must not draw from the global RNG (exact resume).
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=ignore_in_worker if num_workers > 0 else None,
    )


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: what ``taskset``, cgroups cpusets or Slurm allow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def worker_count(requested: int) -> int:
    """Loader workers for a ``data.num_workers`` request: at most one per available CPU (more only contend, and
    torch warns about them)."""
    return max(0, min(int(requested), available_cpus()))
