"""Dataset descriptions (``DatasetSpec``, ``SplitLayout``), the datasets root and the ignore label value.

This module imports nothing of infoclip but its error types, so that the hook specs, plugins and any layer
can name a dataset description without import circles (datasette's layering). Lookup by name is
``infoclip.data.registry``; reading is ``infoclip.data.dataset``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infoclip.errors import DatasetError

#: label value that marks pixels without ground truth, after reading any on-disk format
#: (255 in uint8 PNGs, 65535 in ADE-847's uint16 TIFFs, ...). -1 because 255 is a real class above 255 classes.
IGNORE_INDEX = -1
#: environment variables naming the datasets root, in the order they are consulted
ROOT_ENV_VARS: tuple[str, ...] = ("INFOCLIP_DATASETS", "DETECTRON2_DATASETS")
DEFAULT_ROOT = "datasets"
#: a split key that serves every requested split (custom datasets with a single images/labels pair)
ANY_SPLIT = "*"


def datasets_root() -> Path:
    """``$INFOCLIP_DATASETS``, else ``$DETECTRON2_DATASETS``, else ``./datasets`` (not checked for existence)."""
    for var in ROOT_ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return Path(value).expanduser()
    return Path(DEFAULT_ROOT)


def root_description() -> str:
    """Where the datasets root came from, for error messages."""
    for var in ROOT_ENV_VARS:
        if os.environ.get(var, "").strip():
            return f"${var}={datasets_root()}"
    return f"./{DEFAULT_ROOT} (set $INFOCLIP_DATASETS to use another folder)"


@dataclass(frozen=True)
class SplitLayout:
    """Where one split's images and labels live, relative to the dataset's base folder."""

    images: str
    labels: str


@dataclass(frozen=True)
class DatasetSpec:
    """A named semantic-segmentation dataset: on-disk layout, vocabulary and label conventions.

    Attributes:
        name: registered name (``"ade150"``), used by ``--dataset`` and ``get_dataset``.
        title: human-readable name with the paper's abbreviation (``"ADE20K-150 (A-150)"``).
        class_names: the vocabulary given to the model, in label-index order.
        splits: split name -> ``SplitLayout``; the key ``"*"`` serves any split name.
        ignore_value: the on-disk label value meaning "no ground truth" (255, 65535, 459, ...).
        image_suffixes: image file endings, lower case (files are paired with labels by name stem).
        label_suffix: label file ending (``.png`` or ``.tif``).
        shared_image_folder: the images folder also holds images of other splits or tasks (VOC's
            ``JPEGImages``), so images without a label are expected; otherwise each image needs a label.
        background_index: VOC-20b style scoring: predictions ``>= background_index`` become the background
            class ``background_index``, and labels hold ``0..background_index``. ``None`` for plain scoring.
        seen_classes: class names seen in training, for the seen/unseen split of ``evaluate`` (optional).
        aliases: other names accepted by ``get_dataset`` (detectron2 dataset names, paper abbreviations).
        prepare: how to produce the label folders from the official archives (shown when they are missing).
        sources: folders (relative to the base) whose presence means the raw data is there but not converted.
        base: folder the split paths are relative to; ``None`` = the datasets root at the time of use.
    """

    name: str
    title: str
    class_names: tuple[str, ...]
    splits: Mapping[str, SplitLayout]
    ignore_value: int = 255
    image_suffixes: tuple[str, ...] = (".jpg",)
    label_suffix: str = ".png"
    shared_image_folder: bool = False
    background_index: int | None = None
    seen_classes: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    prepare: str = ""
    sources: tuple[str, ...] = ()
    base: Path | None = None

    def __post_init__(self) -> None:
        if not self.class_names:
            raise DatasetError(f"dataset {self.name!r} has an empty vocabulary")
        if not self.splits:
            raise DatasetError(f"dataset {self.name!r} declares no split")
        if self.background_index is not None and not 0 < self.background_index <= len(self.class_names):
            raise DatasetError(f"dataset {self.name!r}: background_index must be in 1..{len(self.class_names)}")

    @property
    def eval_class_names(self) -> tuple[str, ...]:
        """The classes scored by the evaluator and held by the labels (VOC-20b: 20 classes + background)."""
        if self.background_index is None:
            return self.class_names
        return self.class_names[: self.background_index] + ("background",)

    @property
    def num_label_classes(self) -> int:
        """Number of valid label values (class indices ``0..num_label_classes-1``)."""
        return len(self.eval_class_names)

    def base_dir(self) -> Path:
        return self.base if self.base is not None else datasets_root()

    def layout(self, split: str) -> SplitLayout:
        if split in self.splits:
            return self.splits[split]
        if ANY_SPLIT in self.splits:
            return self.splits[ANY_SPLIT]
        raise DatasetError(
            f"dataset {self.name!r} has no split {split!r}; its splits: {', '.join(sorted(self.splits))}"
        )

    def folders(self, split: str) -> tuple[Path, Path]:
        """Absolute-or-relative (images folder, labels folder) of ``split``."""
        layout = self.layout(split)
        base = self.base_dir()
        return base / layout.images, base / layout.labels

    def label_hint(self) -> str:
        return self.prepare or "regenerate the label file"
