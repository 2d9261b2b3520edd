"""``infoclip data check``: is a dataset laid out as infoclip expects, and are its files sound?

For one split it lists both folders, pairs them by stem and reads every label (and every image header,
or the whole image with ``decode_images``), collecting every problem instead of stopping at the first:
images without labels, labels without images, unreadable files, label values outside the vocabulary,
and labels whose size differs from their image's.

A panoptic dataset (``coco-panoptic``) is checked against its JSON as well: entries without a PNG, PNGs without
an entry, and PNG segment ids that the image's entry does not list (reported as values outside the vocabulary).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infoclip.data.dataset import missing_folder_message, pair_files
from infoclip.data.readers import UnreadableFileError, image_size, read_image, read_raw_label, to_class_indices
from infoclip.data.panoptic import PanopticDatasetSpec, read_annotation_entries, read_segment_ids
from infoclip.data.registry import DatasetSpec
from infoclip.errors import DatasetError

OK, BROKEN, MISSING = "ok", "broken", "missing"
ProgressFn = Callable[[int, int], None]


@dataclass
class CheckReport:
    """What ``check_dataset`` found for one split. ``status``: ``ok``, ``broken`` or ``missing``."""

    name: str
    title: str
    split: str
    images_dir: Path
    labels_dir: Path
    status: str = OK
    message: str = ""
    num_images: int = 0
    num_labels: int = 0
    num_pairs: int = 0
    num_checked: int = 0
    unlabelled_images_expected: bool = False
    images_without_labels: list[Path] = field(default_factory=list)
    labels_without_images: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    bad_values: list[tuple[Path, list[int]]] = field(default_factory=list)
    size_mismatches: list[tuple[Path, str]] = field(default_factory=list)
    #: panoptic datasets: JSON entries (PNG file names) without a PNG, and PNGs that no entry names
    entries_without_labels: list[str] = field(default_factory=list)
    labels_without_entries: list[Path] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        return self.status == BROKEN

    def problems(self, per_kind: int = 3) -> list[str]:
        """One line per problem file (at most ``per_kind`` of each kind, then a count of the rest)."""
        lines: list[str] = []

        def add(kind: str, items: list[Any], fmt: Callable[[Any], str]) -> None:
            for item in items[:per_kind]:
                lines.append(f"{kind}: {fmt(item)}")
            if len(items) > per_kind:
                lines.append(f"{kind}: ... and {len(items) - per_kind} more")

        if self.message:
            lines.append(self.message)
        if not self.unlabelled_images_expected:
            add("image without label", self.images_without_labels, str)
        add("label without image", self.labels_without_images, str)
        add("duplicate stem", self.duplicates, str)
        add("unreadable", self.unreadable, lambda item: f"{item[0]} ({item[1]})")
        add("values outside vocabulary", self.bad_values, lambda item: f"{item[0]} ({_values(item[1])})")
        add("size mismatch", self.size_mismatches, lambda item: f"{item[0]} ({item[1]})")
        add("annotation entry without PNG", self.entries_without_labels, lambda item: f"{self.labels_dir / item}")
        add("PNG without annotation entry", self.labels_without_entries, str)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "status": self.status,
            "message": self.message,
            "images_dir": str(self.images_dir),
            "labels_dir": str(self.labels_dir),
            "images": self.num_images,
            "labels": self.num_labels,
            "pairs": self.num_pairs,
            "checked": self.num_checked,
            "unlabelled_images_expected": self.unlabelled_images_expected,
            "images_without_labels": [str(p) for p in self.images_without_labels],
            "labels_without_images": [str(p) for p in self.labels_without_images],
            "duplicates": [str(p) for p in self.duplicates],
            "unreadable": [{"file": str(p), "reason": r} for p, r in self.unreadable],
            "bad_values": [{"file": str(p), "values": v} for p, v in self.bad_values],
            "size_mismatches": [{"file": str(p), "detail": d} for p, d in self.size_mismatches],
            "entries_without_labels": list(self.entries_without_labels),
            "labels_without_entries": [str(p) for p in self.labels_without_entries],
        }


def _values(values: list[int]) -> str:
    shown = ", ".join(map(str, values[:6]))
    return f"values {shown}" + (f" +{len(values) - 6} more" if len(values) > 6 else "")


def check_dataset(
    spec: DatasetSpec,
    split: str = "val",
    *,
    limit: int | None = None,
    decode_images: bool = False,
    progress: ProgressFn | None = None,
) -> CheckReport:
    """Check one split of ``spec`` on disk; never raises for problems in the data, it reports them.

    Args:
        limit: check the first ``limit`` pairs only (listing and pairing still cover every file).
        decode_images: decode every image fully (catches truncated JPEGs) instead of reading headers.
        progress: called as ``progress(done, total)`` after each pair.
    """
    images_dir, labels_dir = spec.folders(split)
    report = CheckReport(spec.name, spec.title, split, images_dir, labels_dir)
    report.unlabelled_images_expected = spec.shared_image_folder
    missing = [(kind, d) for kind, d in (("labels", labels_dir), ("images", images_dir)) if not d.is_dir()]
    panoptic = isinstance(spec, PanopticDatasetSpec)
    if panoptic and not spec.annotation_file(split).is_file():
        missing.insert(0, ("annotation", spec.annotation_file(split)))
    if missing:
        kind, folder = missing[0]
        report.status = MISSING
        report.message = missing_folder_message(spec, kind, folder)
        if kind == "annotation":
            report.message = report.message.replace("annotation folder not found", "annotation file not found")
        raw = [spec.base_dir() / s for s in spec.sources if (spec.base_dir() / s).exists()]
        if raw:
            report.message += f" (raw data found at {raw[0]}: it needs converting)"
        return report
    pairing = pair_files(images_dir, labels_dir, spec.image_suffixes, spec.label_suffix)
    report.num_pairs = len(pairing.pairs)
    report.num_labels = report.num_pairs + len(pairing.labels_without_images)
    report.num_images = report.num_pairs + len(pairing.images_without_labels)
    report.images_without_labels = pairing.images_without_labels
    report.labels_without_images = pairing.labels_without_images
    report.duplicates = pairing.duplicates
    listed: dict[str, set[int]] | None = None
    if panoptic:
        try:
            entries = read_annotation_entries(spec, spec.annotation_file(split))
        except DatasetError as exc:
            report.status, report.message = BROKEN, str(exc)
            return report
        listed = {file_name: {s.id for s in segments} for _, _, file_name, segments in entries}
        on_disk = {path.name: path for _, _, path in pairing.pairs} | {p.name: p for p in pairing.labels_without_images}
        report.entries_without_labels = sorted(name for name in listed if name not in on_disk)
        report.labels_without_entries = sorted(path for name, path in on_disk.items() if name not in listed)
    pairs = pairing.pairs if limit is None else pairing.pairs[:limit]
    for done, (_, image_path, label_path) in enumerate(pairs, start=1):
        if listed is None:
            _check_pair(spec, image_path, label_path, decode_images, report)
        else:
            _check_panoptic_pair(listed.get(label_path.name), image_path, label_path, decode_images, report)
        report.num_checked = done
        if progress is not None:
            progress(done, len(pairs))
    if not pairing.pairs and not report.message:
        report.message = f"no labels ending in {spec.label_suffix} in {labels_dir}"
    problems = (
        report.labels_without_images
        or report.duplicates
        or report.unreadable
        or report.bad_values
        or report.size_mismatches
        or report.entries_without_labels
        or report.labels_without_entries
        or (report.images_without_labels and not spec.shared_image_folder)
        or not pairing.pairs
    )
    report.status = BROKEN if problems else OK
    return report


def _read_pair(
    read: Callable[[Path], Any], image_path: Path, label_path: Path, decode_images: bool, report: CheckReport
) -> tuple[Any, tuple[int, int] | None]:
    """The label read by ``read`` and the image's (H, W); ``None`` for what cannot be read (reported)."""
    try:
        raw = read(label_path)
    except UnreadableFileError as exc:
        report.unreadable.append((label_path, exc.reason))
        raw = None
    try:
        image_hw = read_image(image_path).shape[:2] if decode_images else image_size(image_path)
    except UnreadableFileError as exc:
        report.unreadable.append((image_path, exc.reason))
        image_hw = None
    return raw, image_hw


def _check_panoptic_pair(
    listed: set[int] | None, image_path: Path, png_path: Path, decode_images: bool, report: CheckReport
) -> None:
    ids, image_hw = _read_pair(read_segment_ids, image_path, png_path, decode_images, report)
    if ids is None:
        return
    if listed is not None:  # a PNG without an entry is reported once, as such
        unlisted = sorted(int(v) for v in set(np.unique(ids).tolist()) - listed - {0})
        if unlisted:
            report.bad_values.append((png_path, unlisted))
    _check_size(ids, image_hw, png_path, report)


def _check_pair(spec: DatasetSpec, image_path: Path, label_path: Path, decode_images: bool, report: CheckReport) -> None:
    raw, image_hw = _read_pair(read_raw_label, image_path, label_path, decode_images, report)
    if raw is None:
        return
    _, bad = to_class_indices(raw, spec.num_label_classes, spec.ignore_value)
    if bad:
        report.bad_values.append((label_path, bad))
    _check_size(raw, image_hw, label_path, report)


def _check_size(raw: Any, image_hw: tuple[int, int] | None, label_path: Path, report: CheckReport) -> None:
    if image_hw is not None and tuple(raw.shape) != tuple(image_hw):
        report.size_mismatches.append(
            (label_path, f"label {raw.shape[1]}x{raw.shape[0]}, image {image_hw[1]}x{image_hw[0]} (WxH)")
        )

