"""A dataset split on disk: images paired with labels by file-name stem, decoded on access."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infoclip.data.readers import SizeMismatchError, read_image, read_label
from infoclip.data.spec import DatasetSpec, root_description
from infoclip.errors import DatasetError


@dataclass
class Sample:
    """One image with its label.

    Attributes:
        image: (H, W, 3) uint8 RGB, EXIF orientation applied.
        label: (H, W) int64 class indices into the dataset's ``eval_class_names``; -1 where ignored.
        name: the file-name stem shared by image and label (``ADE_val_00000001``).
    """

    image: np.ndarray
    label: np.ndarray
    name: str
    image_path: Path | None = None
    label_path: Path | None = None


@dataclass
class Pairing:
    """The result of matching an images folder with a labels folder by file-name stem (sorted by stem)."""

    pairs: list[tuple[str, Path, Path]] = field(default_factory=list)
    images_without_labels: list[Path] = field(default_factory=list)
    labels_without_images: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)


def _list_by_stem(folder: Path, suffixes: tuple[str, ...]) -> tuple[dict[str, Path], list[Path]]:
    """Files of ``folder`` (not recursive) ending in one of ``suffixes``, keyed by stem; plus duplicate stems."""
    found: dict[str, Path] = {}
    duplicates: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            lower = name.lower()
            suffix = next((s for s in suffixes if lower.endswith(s)), None)
            if suffix is None or name.startswith(".") or not entry.is_file():
                continue
            stem = name[: -len(suffix)]
            if stem in found:
                duplicates.append(Path(entry.path))
            else:
                found[stem] = Path(entry.path)
    return found, duplicates


def pair_files(images_dir: Path, labels_dir: Path, image_suffixes: tuple[str, ...], label_suffix: str) -> Pairing:
    """Pair ``images_dir`` and ``labels_dir`` by stem, the way detectron2's ``load_sem_seg`` does.

    Both folders must exist (checked by the caller, which knows how to word the error).
    """
    images, dup_images = _list_by_stem(images_dir, tuple(s.lower() for s in image_suffixes))
    labels, dup_labels = _list_by_stem(labels_dir, (label_suffix.lower(),))
    pairing = Pairing(duplicates=sorted(dup_images + dup_labels))
    for stem in sorted(labels):
        if stem in images:
            pairing.pairs.append((stem, images[stem], labels[stem]))
        else:
            pairing.labels_without_images.append(labels[stem])
    pairing.images_without_labels = [images[s] for s in sorted(set(images) - set(labels))]
    return pairing


def missing_folder_message(spec: DatasetSpec, kind: str, folder: Path) -> str:
    """One line saying which folder of which dataset is missing and how to produce it."""
    hint = f"; {spec.prepare}" if spec.prepare else ""
    where = f" (datasets root: {root_description()})" if spec.base is None else ""
    return f"{spec.title}: {kind} folder not found: {folder}{where}{hint}"


class SpecDataset:
    """What every dataset split answers from its ``DatasetSpec``: name, vocabularies and ignore value."""

    spec: DatasetSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def class_names(self) -> list[str]:
        """The vocabulary to give the model (VOC-20b: all 59 names)."""
        return list(self.spec.class_names)

    @property
    def eval_class_names(self) -> list[str]:
        """The classes the labels hold and the evaluator scores (VOC-20b: 20 classes + background)."""
        return list(self.spec.eval_class_names)

    @property
    def ignore_value(self) -> int:
        return self.spec.ignore_value


class SegmentationDataset(SpecDataset):
    """One split of a dataset: ``len(ds)``, ``ds[i] -> Sample``; files are decoded on access.

    Construction lists both folders and pairs them by stem, failing early with one line naming a file
    when a label has no image, or, unless the images folder is shared with other splits (VOC, Pascal
    Context), when an image has no label. Reading a sample raises ``DatasetError`` naming the file when
    it cannot be decoded, its size differs from its image, or it holds values outside the vocabulary.
    Picklable (paths only), so it can feed ``torch.utils.data.DataLoader`` workers.
    """

    def __init__(self, spec: DatasetSpec, split: str = "val") -> None:
        self.spec = spec
        self.split = split
        self.images_dir, self.labels_dir = spec.folders(split)
        for kind, folder in (("labels", self.labels_dir), ("images", self.images_dir)):
            if not folder.is_dir():
                raise DatasetError(missing_folder_message(spec, kind, folder))
        pairing = pair_files(self.images_dir, self.labels_dir, spec.image_suffixes, spec.label_suffix)
        check_hint = f"run `infoclip data check {spec.name}` for the full list"
        if pairing.duplicates:
            raise DatasetError(
                f"{spec.title}: two files share the name stem of {pairing.duplicates[0]}; keep one per stem"
            )
        if pairing.labels_without_images:
            first, n = pairing.labels_without_images[0], len(pairing.labels_without_images)
            raise DatasetError(
                f"{spec.title}: label {first} has no image in {self.images_dir} ({n} such labels); "
                f"add the image or remove the label; {check_hint}"
            )
        if pairing.images_without_labels and not spec.shared_image_folder:
            first, n = pairing.images_without_labels[0], len(pairing.images_without_labels)
            raise DatasetError(
                f"{spec.title}: image {first} has no label in {self.labels_dir} ({n} such images); "
                f"add its label or remove the image; {check_hint}"
            )
        if not pairing.pairs:
            raise DatasetError(
                f"{spec.title}: no labels ending in {spec.label_suffix} in {self.labels_dir}"
                + (f"; {spec.prepare}" if spec.prepare else "")
            )
        self._pairs = pairing.pairs

    def __len__(self) -> int:
        return len(self._pairs)

    def __repr__(self) -> str:
        return f"SegmentationDataset({self.name!r}, split={self.split!r}, {len(self)} images, {len(self.class_names)} classes)"

    def files(self, index: int) -> tuple[str, Path, Path]:
        """(stem, image path, label path) of sample ``index``."""
        return self._pairs[index]

    def read_label(self, index: int) -> np.ndarray:
        """(H, W) int64 label of sample ``index`` (-1 = ignore), without decoding the image."""
        _, _, label_path = self._pairs[index]
        return read_label(label_path, self.spec.num_label_classes, self.spec.ignore_value, self.spec.label_hint())

    def __getitem__(self, index: int) -> Sample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        stem, image_path, label_path = self._pairs[index]
        image = read_image(image_path)
        label = self.read_label(index)
        if label.shape != image.shape[:2]:
            raise SizeMismatchError(label_path, label.shape, image_path, image.shape[:2])
        return Sample(image=image, label=label, name=stem, image_path=image_path, label_path=label_path)
