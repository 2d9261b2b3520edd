"""COCO panoptic annotations (panoptic JSON + RGB-encoded segment PNGs), as FC-CLIP trains on them.

Layout (detectron2's, relative to the datasets root)::

    coco/{train2017,val2017}/*.jpg                         images
    coco/annotations/panoptic_{train,val}2017.json         one entry per image: file_name, segments_info
    coco/panoptic_{train,val}2017/*.png                    segment id per pixel: id = R + 256·G + 256²·B

Every ``segments_info`` entry (``id``, ``category_id``, ``iscrowd``) names one segment of the PNG; id 0 (and any id
the entry does not list) is unlabelled. Category ids (1..200, with gaps) become the 133 contiguous class ids of the
shipped ``coco_panoptic`` vocabulary, in category-id order (detectron2's ``COCO_CATEGORIES``). Crowd segments are
kept in the sample but give no training target (FC-CLIP's ``COCO panoptic new baseline`` mapper skips them), so
their pixels belong to no target mask, like unlabelled pixels.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from infoclip.data.dataset import SpecDataset
from infoclip.data.readers import SizeMismatchError, UnreadableFileError, read_image
from infoclip.data.spec import IGNORE_INDEX, DatasetSpec, SplitLayout, root_description
from infoclip.errors import DatasetError


@dataclass(frozen=True)
class PanopticCategory:
    """One category of a panoptic vocabulary: its id in the JSON, whether it is a thing, and its name."""

    id: int
    isthing: bool
    name: str


@functools.lru_cache(maxsize=None)
def coco_panoptic_categories() -> tuple[PanopticCategory, ...]:
    """The 133 COCO panoptic categories (80 things, then 53 stuff), in category-id order = contiguous order."""
    text = resources.files("infoclip.data").joinpath("vocab", "coco_panoptic_categories.tsv").read_text(encoding="utf-8")
    categories = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            cid, isthing, name = line.split("\t")
            categories.append(PanopticCategory(int(cid), isthing == "1", name))
    return tuple(categories)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB panoptic PNG pixels -> (H, W) int64 segment ids, id = R + 256·G + 256²·B."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"panoptic PNG pixels must be (H, W, 3); got {rgb.shape}")
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W) segment ids (< 256³) -> (H, W, 3) uint8 RGB, the inverse of :func:`rgb_to_id`."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise ValueError("panoptic segment ids must lie in [0, 256^3)")
    return np.stack([ids % 256, (ids // 256) % 256, ids // (256 * 256)], axis=-1).astype(np.uint8)


def read_segment_ids(path: str | os.PathLike[str]) -> np.ndarray:
    """(H, W) int64 segment ids of a panoptic PNG."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}" if str(exc).strip() else type(exc).__name__
        raise UnreadableFileError(path, reason) from exc
    return rgb_to_id(rgb)


@dataclass(frozen=True)
class PanopticSegment:
    """One segment of an image: its id in the PNG, contiguous class id, crowd flag, thing flag."""

    id: int
    category: int
    iscrowd: bool
    isthing: bool


@dataclass
class PanopticSample:
    """One image with its panoptic annotation.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        segment_ids: (H, W) int64 segment id per pixel (0 = unlabelled).
        segments: the image's segments in JSON order (crowd ones included).
        name: the file-name stem (``000000000139``).
    """

    image: np.ndarray
    segment_ids: np.ndarray
    segments: list[PanopticSegment]
    name: str
    image_id: int = 0
    image_path: Path | None = None
    panoptic_path: Path | None = None

    def training_segments(self) -> list[PanopticSegment]:
        """The segments that become targets: every non-crowd one, in JSON order."""
        return [s for s in self.segments if not s.iscrowd]

    def semantic_label(self) -> np.ndarray:
        """(H, W) int64 class ids, -1 where unlabelled; crowd segments keep their class (detectron2's
        ``prepare_coco_semantic_annos_from_panoptic_annos.py``)."""
        return semantic_from_segments(self.segment_ids, self.segments)

    @functools.cached_property
    def label(self) -> np.ndarray:
        """The semantic view (:meth:`semantic_label`), so a panoptic sample reads like a ``Sample``."""
        return self.semantic_label()

    @property
    def label_path(self) -> Path | None:
        return self.panoptic_path

    def slot_map(self) -> np.ndarray:
        """(H, W) int64: each pixel's segment as an index into ``segments`` (JSON order), -1 for id 0 and any id
        the JSON does not list. Nearest-neighbour augmentation of this map moves whole segments, as detectron2
        resizes and crops the RGB-encoded PNG."""
        slots = np.full(self.segment_ids.shape, IGNORE_INDEX, dtype=np.int64)
        for index, segment in enumerate(self.segments):
            slots[self.segment_ids == segment.id] = index
        return slots


def semantic_from_segments(segment_ids: np.ndarray, segments: list[PanopticSegment]) -> np.ndarray:
    """(H, W) int64 class map from a segment-id map and its segments; -1 for pixels of no listed segment."""
    label = np.full(segment_ids.shape, IGNORE_INDEX, dtype=np.int64)
    for segment in segments:
        label[segment_ids == segment.id] = segment.category
    return label


@dataclass(frozen=True)
class PanopticSplit:
    """Where one split lives, relative to the dataset's base folder."""

    images: str
    annotations: str
    panoptic: str


@dataclass(frozen=True)
class PanopticDatasetSpec(DatasetSpec):
    """A panoptic dataset in the COCO format: a ``DatasetSpec`` whose labels are segment PNGs described by a JSON.

    ``splits`` pair the images folder with the panoptic PNG folder (``SplitLayout.labels``); ``annotations``
    names each split's JSON. ``class_names`` are the categories' names in table order (= contiguous ids), so
    every semantic consumer (``eval``, the CAT-Seg / SAN training path) reads the semantic view
    (:meth:`PanopticSample.semantic_label`) like any other dataset.
    """

    categories: tuple[PanopticCategory, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    def split(self, split: str) -> PanopticSplit:
        layout = self.layout(split)
        return PanopticSplit(layout.images, self.annotations[split], layout.labels)

    def annotation_file(self, split: str) -> Path:
        return self.base_dir() / self.split(split).annotations


def panoptic_spec(
    name: str, title: str, categories: Sequence[PanopticCategory], splits: Mapping[str, PanopticSplit], **kwargs: Any
) -> PanopticDatasetSpec:
    """A ``PanopticDatasetSpec`` from per-split (images, annotations JSON, PNG folder) layouts."""
    return PanopticDatasetSpec(
        name=name,
        title=title,
        class_names=tuple(c.name for c in categories),
        splits={s: SplitLayout(layout.images, layout.panoptic) for s, layout in splits.items()},
        categories=tuple(categories),
        annotations={s: layout.annotations for s, layout in splits.items()},
        **kwargs,
    )


def coco_panoptic_spec(base: Path | None = None) -> PanopticDatasetSpec:
    """COCO panoptic 2017 (133 classes) in detectron2's layout, under ``base`` (default: the datasets root)."""
    return panoptic_spec(
        "coco-panoptic",
        "COCO panoptic 2017 (133 classes)",
        coco_panoptic_categories(),
        {
            s: PanopticSplit(f"coco/{s}2017", f"coco/annotations/panoptic_{s}2017.json", f"coco/panoptic_{s}2017")
            for s in ("train", "val")
        },
        aliases=("coco_panoptic", "coco133", "coco_2017_train_panoptic", "openvocab_coco_2017_train_panoptic_with_sem_seg"),
        prepare=(
            "unpack {train,val}2017.zip into coco/ and panoptic_annotations_trainval2017.zip into coco/annotations, "
            "then unpack annotations/panoptic_{train,val}2017.zip into coco/"
        ),
        sources=("coco/annotations/panoptic_annotations_trainval2017.zip",),
        base=base,
    )


PanopticEntry = tuple[str, int, str, list[PanopticSegment]]
"""(file stem, image id, PNG file name, segments) of one JSON annotation."""


def read_annotation_entries(spec: PanopticDatasetSpec, path: Path) -> list[PanopticEntry]:
    """The entries of a panoptic JSON, category ids mapped to contiguous ids; ``DatasetError`` (one line) if it is
    unreadable, names categories outside ``spec``'s table, or has a malformed entry."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path} ({type(exc).__name__}: {exc}); re-extract the annotation file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DatasetError(f"{path} is not a COCO panoptic annotation file (no 'annotations' list)")
    contiguous = {c.id: i for i, c in enumerate(spec.categories)}
    things = {c.id: c.isthing for c in spec.categories}
    for category in data.get("categories") or []:
        known = contiguous.get(category.get("id"))
        if known is None or spec.categories[known].name != category.get("name"):
            raise DatasetError(
                f"{path}: category {category.get('id')} {category.get('name')!r} is not in the "
                f"{spec.title} category table; this file belongs to another dataset"
            )
    entries = []
    for index, annotation in enumerate(data["annotations"]):
        try:
            file_name = str(annotation["file_name"])
            image_id = int(annotation["image_id"])
            infos = annotation["segments_info"]
            segments = [
                PanopticSegment(int(s["id"]), contiguous[int(s["category_id"])], bool(s.get("iscrowd", 0)),
                                things[int(s["category_id"])])
                for s in infos
            ]
        except KeyError as exc:
            what = "unknown category id" if isinstance(exc.args[0], int) else "missing key"
            raise DatasetError(
                f"{path}: annotation {index} ({annotation.get('file_name', '?')}) has a {what} {exc.args[0]!r}; "
                "re-extract the annotation file"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: annotation {index} is malformed ({exc}); re-extract the annotation file") from exc
        entries.append((os.path.splitext(file_name)[0], image_id, file_name, segments))
    if not entries:
        raise DatasetError(f"{path} lists no annotation")
    return entries


class PanopticDataset(SpecDataset):
    """One split of a COCO-format panoptic dataset: ``len(ds)``, ``ds[i] -> PanopticSample``.

    Construction reads the JSON, checks its category table against the spec's and maps category ids to
    contiguous ids (one line naming the JSON and the first bad entry otherwise); images and PNGs are decoded on
    access. Picklable (paths and small records only).
    """

    spec: PanopticDatasetSpec

    def __init__(self, spec: PanopticDatasetSpec, split: str = "train") -> None:
        self.spec = spec
        self.split = split
        layout = spec.split(split)
        base = spec.base_dir()
        self.images_dir, self.panoptic_dir = base / layout.images, base / layout.panoptic
        self.json_path = base / layout.annotations
        where = f" (datasets root: {root_description()})" if spec.base is None else ""
        hint = f"; {spec.prepare}" if spec.prepare else ""
        if not self.json_path.is_file():
            raise DatasetError(f"{spec.title}: annotation file not found: {self.json_path}{where}{hint}")
        for kind, folder in (("panoptic PNG", self.panoptic_dir), ("images", self.images_dir)):
            if not folder.is_dir():
                raise DatasetError(f"{spec.title}: {kind} folder not found: {folder}{where}{hint}")
        self._entries = read_annotation_entries(spec, self.json_path)
        self._check_files()

    def _check_files(self) -> None:
        """Fail early, with one line, when JSON entries have no PNG or no image (``data check`` lists them all)."""
        pngs = {entry.name for entry in os.scandir(self.panoptic_dir)}
        images = {entry.name for entry in os.scandir(self.images_dir)}
        check = f"run `infoclip data check {self.spec.name} --split {self.split}` for the full list"
        for kind, folder, present, name in (
            ("panoptic PNG", self.panoptic_dir, pngs, lambda e: e[2]),
            ("image", self.images_dir, images, lambda e: e[0] + self.spec.image_suffixes[0]),
        ):
            missing = [name(e) for e in self._entries if name(e) not in present]
            if missing:
                raise DatasetError(
                    f"{self.spec.title}: {len(missing)} entries of {self.json_path.name} have no {kind} in {folder} "
                    f"(first: {missing[0]}); restore the missing files; {check}"
                )

    def read_label(self, index: int) -> np.ndarray:
        """(H, W) int64 semantic view of sample ``index`` (-1 = unlabelled), without decoding the image."""
        _, _, png_path = self.files(index)
        return semantic_from_segments(read_segment_ids(png_path), self.segments(index))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"PanopticDataset({self.name!r}, split={self.split!r}, {len(self)} images, {len(self.class_names)} classes)"

    def files(self, index: int) -> tuple[str, Path, Path]:
        """(stem, image path, panoptic PNG path) of sample ``index``."""
        stem, _, file_name, _ = self._entries[index]
        return stem, self.images_dir / f"{stem}{self.spec.image_suffixes[0]}", self.panoptic_dir / file_name

    def segments(self, index: int) -> list[PanopticSegment]:
        """The segments of sample ``index`` without decoding any file."""
        return list(self._entries[index][3])

    def __getitem__(self, index: int) -> PanopticSample:
        if not -len(self) <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        stem, image_path, png_path = self.files(index)
        image = read_image(image_path)
        segment_ids = read_segment_ids(png_path)
        if segment_ids.shape != image.shape[:2]:
            raise SizeMismatchError(png_path, segment_ids.shape, image_path, image.shape[:2])
        return PanopticSample(
            image=image,
            segment_ids=segment_ids,
            segments=self.segments(index),
            name=stem,
            image_id=self._entries[index][1],
            image_path=image_path,
            panoptic_path=png_path,
        )
