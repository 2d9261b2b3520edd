"""Dataset descriptions (``DatasetSpec``), the datasets root, and name -> dataset lookup.

Named datasets come from plugins through the ``infoclip_register_datasets`` hook; the seven OVSS
benchmarks are contributed by the built-in plugin ``infoclip.data.builtin``. ``get_dataset`` also accepts
the path of a custom dataset folder (one holding a ``dataset.yaml``, see ``infoclip.data.custom``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infoclip.errors import DatasetError

if TYPE_CHECKING:
    from infoclip.data.dataset import SegmentationDataset

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


def registered_datasets() -> dict[str, DatasetSpec]:
    """Every dataset contributed by plugins, by name (the seven benchmarks come from the built-in plugin)."""
    from infoclip.adapters.manager import collect_named

    return collect_named("infoclip_register_datasets", DatasetSpec, DatasetError, "dataset")


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_spec(name: str) -> DatasetSpec:
    """The registered dataset called ``name`` (or one of its aliases, case-insensitive)."""
    specs = registered_datasets()
    wanted = _normalise(name)
    for spec in specs.values():
        if wanted == _normalise(spec.name) or wanted in (_normalise(a) for a in spec.aliases):
            return spec
    raise DatasetError(
        f"unknown dataset {name!r}; registered datasets: {', '.join(specs) or 'none'}, "
        "or give the path of a folder holding a dataset.yaml"
    )


def resolve_spec(name_or_path: str | os.PathLike[str]) -> DatasetSpec:
    """A registered name, or the path of a custom dataset folder / its ``dataset.yaml``."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    looks_like_path = isinstance(name_or_path, os.PathLike) or os.sep in text or path.suffix in (".yaml", ".yml")
    if looks_like_path or (path.exists() and not _is_registered(text)):
        from infoclip.data.custom import load_custom_spec

        return load_custom_spec(path)
    return get_spec(text)


def _is_registered(name: str) -> bool:
    try:
        get_spec(name)
    except DatasetError:
        return False
    return True


def get_dataset(name_or_path: str | os.PathLike[str] | DatasetSpec, split: str = "val") -> SegmentationDataset:
    """Open a dataset split for reading.

    Args:
        name_or_path: a registered name (``ade150``, ``coco171`` ...), a custom dataset folder (holding a
            ``dataset.yaml``) or a ``DatasetSpec``.
        split: ``"val"`` (all benchmarks) or ``"train"`` (``coco171``, custom datasets).

    Raises:
        DatasetError: unknown name, missing folder, or images and labels that do not pair up.
    """
    from infoclip.data.dataset import SegmentationDataset

    spec = name_or_path if isinstance(name_or_path, DatasetSpec) else resolve_spec(name_or_path)
    return SegmentationDataset(spec, split)
