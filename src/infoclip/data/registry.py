"""Name -> dataset lookup: named datasets from plugins, custom dataset folders, ``get_dataset``.

Named datasets come from plugins through the ``infoclip_register_datasets`` hook; the seven OVSS
benchmarks are contributed by the built-in plugin ``infoclip.data.builtin``. ``get_dataset`` also accepts
the path of a custom dataset folder (one holding a ``dataset.yaml``, see ``infoclip.data.custom``).
The descriptions themselves (``DatasetSpec``) are ``infoclip.data.spec``, re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

from infoclip.data.custom import load_custom_spec
from infoclip.data.dataset import SegmentationDataset
from infoclip.data.panoptic import PanopticDataset, PanopticDatasetSpec
from infoclip.data.spec import (
    ANY_SPLIT,
    DEFAULT_ROOT,
    ROOT_ENV_VARS,
    DatasetSpec,
    SplitLayout,
    datasets_root,
    root_description,
)
from infoclip.errors import DatasetError
from infoclip.plugins import collect_named

__all__ = [
    "ANY_SPLIT",
    "DEFAULT_ROOT",
    "ROOT_ENV_VARS",
    "DatasetSpec",
    "SplitLayout",
    "datasets_root",
    "get_dataset",
    "get_spec",
    "registered_datasets",
    "resolve_spec",
    "root_description",
]


def registered_datasets() -> dict[str, DatasetSpec]:
    """Every dataset contributed by plugins, by name (the seven benchmarks come from the built-in plugin)."""
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
        return load_custom_spec(path)
    return get_spec(text)


def _is_registered(name: str) -> bool:
    try:
        get_spec(name)
    except DatasetError:
        return False
    return True


def get_dataset(
    name_or_path: str | os.PathLike[str] | DatasetSpec, split: str = "val"
) -> SegmentationDataset | PanopticDataset:
    """Open a dataset split for reading.

    Args:
        name_or_path: a registered name (``ade150``, ``coco171`` ...), a custom dataset folder (holding a
            ``dataset.yaml``) or a ``DatasetSpec``.
        split: ``"val"`` (all benchmarks) or ``"train"`` (``coco171``, ``coco-panoptic``, custom datasets).

    A panoptic dataset (``coco-panoptic``) opens as a ``PanopticDataset``: its samples read like ``Sample`` (the
    semantic view in ``label``) and also carry their segments (instance training, FC-CLIP).

    Raises:
        DatasetError: unknown name, missing folder, or images and labels that do not pair up.
    """
    spec = name_or_path if isinstance(name_or_path, DatasetSpec) else resolve_spec(name_or_path)
    if isinstance(spec, PanopticDatasetSpec):
        return PanopticDataset(spec, split)
    return SegmentationDataset(spec, split)
