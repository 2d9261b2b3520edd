"""``infoclip data prepare``: the label conversions that need nothing beyond numpy, Pillow and tifffile.

Each conversion reproduces CAT-Seg's ``datasets/prepare_*.py`` output (same folders, values and formats):

* ``ade150``: ``annotations/<split>/*.png`` (0 = unlabelled, 1..150) -> ``annotations_detectron2/<split>``
  with ``x - 1`` and 0 -> 255.
* ``coco171``: ``coco-stuff/annotations/{train2017,val2017}`` (stuffthingmaps, COCO ids - 1 in 0..181) ->
  ``annotations_detectron2`` with the 171 used ids renumbered 0..170 and everything else 255.
* ``voc20`` / ``voc20b`` (one conversion): ``SegmentationClassAug`` ids of ``ImageSets/Segmentation/val.txt``
  -> ``annotations_detectron2/val`` (0 -> 255, 1..20 -> 0..19) and ``annotations_detectron2_bg/val``
  (0 -> 20); label maps with no class left (all 255) are not written, as in CAT-Seg.
* ``pc459``: ``trainval/<id>.mat`` ``LabelMap`` of the ids in ``pascalcontext_val.txt`` -> ``LabelMap - 1`` as
  uint16 TIFF in ``annotations_detectron2/pc459_val`` (reading ``.mat`` needs scipy).

ADE-847 and PC-59 need the official index pickle and the Detail API respectively; the README gives their
commands. Outputs are built in a hidden sibling folder and renamed into place at the end, so an interrupted
run never leaves a half-filled label folder (which would silently shrink a benchmark).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from infoclip.data.readers import read_raw_label
from infoclip.data.registry import datasets_root
from infoclip.errors import DatasetError

ProgressFn = Callable[[int, int], None]

#: COCO category ids (0-based, as in the stuffthingmaps) that COCO-Stuff does not use: 11 thing ids
#: that were dropped from COCO (street sign, hat, shoe, eye glasses, plate, mirror, window, desk, door,
#: blender, hair brush). The remaining 171 of 0..181 become trainIds 0..170 in increasing order.
COCO_UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
COCO_NUM_IDS = 182

#: what to run for the datasets whose conversion needs tools infoclip does not ship
EXTERNAL = {
    "ade847": (
        "ADE-847 labels are built from ADE20K_2021_17_01/index_ade20k.pkl by CAT-Seg's "
        "datasets/prepare_ade20k_full.py (it resizes images and labels); run that script, see the README"
    ),
    "pc59": (
        "PC-59 labels are built from VOC2010/trainval_merged.json with the Detail API by CAT-Seg's "
        "datasets/prepare_pascal_context_59.py; run that script, see the README"
    ),
}


@dataclass
class PreparedFolder:
    """One output folder of a conversion."""

    path: Path
    written: int
    skipped: int = 0
    skipped_reason: str = ""
    note: str = ""


def coco_id_to_train_id() -> np.ndarray:
    """(256,) uint8 lookup table: stuffthingmaps value -> COCO-Stuff-171 trainId, 255 for unused values."""
    table = np.full(256, 255, dtype=np.uint8)
    used = [i for i in range(COCO_NUM_IDS) if i not in COCO_UNUSED_IDS]
    table[used] = np.arange(len(used), dtype=np.uint8)
    return table


def voc_to_train_id(background: int) -> np.ndarray:
    """(256,) uint8 lookup table for VOC masks: 1..20 -> 0..19, 0 -> ``background`` (255 or 20), rest 255."""
    table = np.full(256, 255, dtype=np.uint8)
    table[1:21] = np.arange(20, dtype=np.uint8)
    table[0] = background
    return table


def ade150_to_train_id() -> np.ndarray:
    """(256,) uint8 lookup table for ADE-150: ``x - 1`` with 0 (unlabelled) -> 255."""
    return (np.arange(256, dtype=np.int64) - 1).astype(np.uint8)


@contextlib.contextmanager
def staged_folder(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``target``; move it onto ``target`` only if the block succeeds."""
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise DatasetError(
            f"{target} already exists and is not empty; allow overwriting it to rebuild it", parameter="overwrite"
        )
    staging = target.parent / f".{target.name}.partial"
    old = target.parent / f".{target.name}.old"
    for stale in (staging, old):
        if stale.exists():
            shutil.rmtree(stale)
    staging.mkdir(parents=True)
    try:
        yield staging
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _map_folder(
    source: Path, target: Path, table: np.ndarray, overwrite: bool, progress: ProgressFn | None
) -> PreparedFolder:
    files = sorted(p for p in source.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not files:
        raise DatasetError(f"no .png labels in {source}; is the archive unpacked there?")
    with staged_folder(target, overwrite) as out:
        for done, path in enumerate(files, start=1):
            raw = read_raw_label(path)
            if raw.dtype != np.uint8:
                raise DatasetError(f"{path} is {raw.dtype}; expected an 8-bit label map from the official archive")
            Image.fromarray(table[raw]).save(out / path.name)
            if progress is not None:
                progress(done, len(files))
    return PreparedFolder(target, len(files))


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path}; unpack the official archive there (see the README 'Datasets')")
    return path


def _map_split_folders(
    dataset_dir: Path, splits: tuple[str, ...], table: np.ndarray, archive: str, overwrite: bool,
    progress: ProgressFn | None,
) -> list[PreparedFolder]:
    """``dataset_dir/annotations/<split>`` -> ``dataset_dir/annotations_detectron2/<split>`` through ``table``."""
    base = _require_dir(dataset_dir / "annotations", f"annotations folder (from {archive})")
    present = [s for s in splits if (base / s).is_dir()]
    if not present:
        raise DatasetError(f"{base} has none of {', '.join(s + '/' for s in splits)}; unpack {archive} there")
    out = dataset_dir / "annotations_detectron2"
    return [_map_folder(base / s, out / s, table, overwrite, progress) for s in present]


def prepare_ade150(root: Path, overwrite: bool = False, progress: ProgressFn | None = None) -> list[PreparedFolder]:
    return _map_split_folders(root / "ADEChallengeData2016", ("validation", "training"), ade150_to_train_id(),
                              "ADEChallengeData2016.zip", overwrite, progress)


def prepare_coco171(root: Path, overwrite: bool = False, progress: ProgressFn | None = None) -> list[PreparedFolder]:
    return _map_split_folders(root / "coco-stuff", ("val2017", "train2017"), coco_id_to_train_id(),
                              "stuffthingmaps_trainval2017.zip", overwrite, progress)


def _read_ids(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def prepare_voc(root: Path, overwrite: bool = False, progress: ProgressFn | None = None) -> list[PreparedFolder]:
    voc = _require_dir(root / "VOCdevkit" / "VOC2012", "VOC2012 folder")
    ids_file = voc / "ImageSets" / "Segmentation" / "val.txt"
    if not ids_file.is_file():
        raise DatasetError(f"{ids_file} not found; re-extract VOCtrainval_11-May-2012.tar")
    note = ""
    source = voc / "SegmentationClassAug"
    if not source.is_dir():
        source = _require_dir(voc / "SegmentationClass", "SegmentationClassAug (or SegmentationClass) folder")
        note = "SegmentationClassAug not found: used VOC2012/SegmentationClass (CAT-Seg uses SegmentationClassAug)"
    ids = _read_ids(ids_file.read_text(encoding="utf-8"))
    missing = [i for i in ids if not (source / f"{i}.png").is_file()]
    if missing:
        raise DatasetError(f"{source / (missing[0] + '.png')} not found ({len(missing)} of the val ids); re-extract it")
    outputs = [
        (voc / "annotations_detectron2" / "val", voc_to_train_id(255)),
        (voc / "annotations_detectron2_bg" / "val", voc_to_train_id(20)),
    ]
    results = []
    with staged_folder(outputs[0][0], overwrite) as plain, staged_folder(outputs[1][0], overwrite) as with_bg:
        counts = {plain: [0, 0], with_bg: [0, 0]}
        for done, image_id in enumerate(ids, start=1):
            raw = read_raw_label(source / f"{image_id}.png")
            for folder, (_, table) in zip((plain, with_bg), outputs):
                mapped = table[raw]
                if np.all(mapped == 255):
                    counts[folder][1] += 1
                    continue
                Image.fromarray(mapped).save(folder / f"{image_id}.png")
                counts[folder][0] += 1
            if progress is not None:
                progress(done, len(ids))
    for folder, (target, _) in zip((plain, with_bg), outputs):
        written, skipped = counts[folder]
        results.append(PreparedFolder(target, written, skipped, "no class left (all ignored), as CAT-Seg skips them", note))
    return results


def prepare_pc459(root: Path, overwrite: bool = False, progress: ProgressFn | None = None) -> list[PreparedFolder]:
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise DatasetError("reading Pascal Context .mat files needs scipy: pip install scipy") from exc
    import tifffile

    voc = _require_dir(root / "VOCdevkit" / "VOC2010", "VOC2010 folder")
    mats = _require_dir(voc / "trainval", "Pascal Context trainval folder (from trainval.tar.gz)")
    ids_file = voc / "pascalcontext_val.txt"
    # CAT-Seg asks users to copy its pascalcontext_val.txt into VOC2010/; infoclip ships the same list.
    shipped = resources.files("infoclip.data").joinpath("vocab", "pascalcontext_val.txt")
    ids = _read_ids((ids_file if ids_file.is_file() else shipped).read_text(encoding="utf-8"))
    present = [i for i in ids if (mats / f"{i}.mat").is_file()]
    if not present:
        raise DatasetError(f"none of the {len(ids)} Pascal Context val ids has a .mat file in {mats}")
    target = voc / "annotations_detectron2" / "pc459_val"
    with staged_folder(target, overwrite) as out:
        for done, image_id in enumerate(present, start=1):
            path = mats / f"{image_id}.mat"
            try:
                label_map = np.asarray(loadmat(str(path))["LabelMap"])
            except (OSError, ValueError, KeyError, NotImplementedError) as exc:
                raise DatasetError(f"cannot read LabelMap from {path} ({type(exc).__name__}: {exc})") from exc
            if label_map.ndim != 2 or label_map.min() < 0 or label_map.max() > 459:
                raise DatasetError(f"{path}: LabelMap must be a 2-D map of values 1..459")
            # LabelMap is 1-based; a 0 (unlabelled) would become the ignore value 459 = K.
            label = np.where(label_map == 0, 460, label_map).astype(np.int64) - 1
            tifffile.imwrite(out / f"{image_id}.tif", label.astype(np.uint16))
            if progress is not None:
                progress(done, len(present))
    return [PreparedFolder(target, len(present), len(ids) - len(present), "val ids without a .mat file")]


PREPARERS: dict[str, Callable[..., list[PreparedFolder]]] = {
    "ade150": prepare_ade150,
    "coco171": prepare_coco171,
    "voc20": prepare_voc,
    "voc20b": prepare_voc,
    "pc459": prepare_pc459,
}


def prepare(
    name: str, root: str | os.PathLike[str] | None = None, overwrite: bool = False, progress: ProgressFn | None = None
) -> list[PreparedFolder]:
    """Run the label conversion of the registered dataset ``name`` under ``root`` (default: datasets root).

    Raises:
        DatasetError: unknown name, a conversion that needs an external tool, missing sources, existing output.
    """
    from infoclip.data.registry import get_spec

    spec_name = get_spec(name).name
    if spec_name in EXTERNAL:
        raise DatasetError(EXTERNAL[spec_name])
    if spec_name not in PREPARERS:
        raise DatasetError(f"infoclip has no conversion for {spec_name!r}; convertible: {', '.join(PREPARERS)}")
    return PREPARERS[spec_name](Path(root) if root is not None else datasets_root(), overwrite, progress)
