"""The built-in dataset plugin: COCO-Stuff-171 and the six OVSS benchmarks in CAT-Seg's on-disk layouts, and COCO
panoptic 2017 (``coco-panoptic``, detectron2's layout, ``infoclip.data.panoptic``).

Layouts, label formats and ignore values follow CAT-Seg's ``datasets/prepare_*.py`` and
``cat_seg/data/datasets/register_*.py`` (see ``docs``/README "Datasets"), all relative to the datasets
root (``$INFOCLIP_DATASETS``, else ``$DETECTRON2_DATASETS``, else ``./datasets``).
"""

from __future__ import annotations

import functools

from infoclip.data.panoptic import coco_panoptic_spec
from infoclip.data.spec import DatasetSpec, SplitLayout
from infoclip.hookspecs import hookimpl
from infoclip.data.vocab import load_vocabulary

#: the six zero-shot benchmarks in the column order of the CAT-Seg / InfoCLIP tables (`--dataset all`)
BENCHMARKS: tuple[str, ...] = ("ade847", "pc459", "ade150", "pc59", "voc20", "voc20b")

_VOC2010 = "VOCdevkit/VOC2010"
_VOC2012 = "VOCdevkit/VOC2012"
_PC_PREPARE_DOC = "see the README section 'Datasets' for the conversion from the official archives"


@functools.lru_cache(maxsize=1)
def builtin_specs() -> tuple[DatasetSpec, ...]:
    """The eight built-in dataset descriptions (vocabularies read once from the shipped JSON files)."""
    voc_prepare = (
        f"unpack VOCtrainval_11-May-2012.tar and SegmentationClassAug.zip into {_VOC2012}, "
        "then run `infoclip data prepare voc20`"
    )
    return (
        DatasetSpec(
            name="coco171",
            title="COCO-Stuff-171",
            class_names=tuple(load_vocabulary("coco")),
            splits={
                "train": SplitLayout("coco-stuff/images/train2017", "coco-stuff/annotations_detectron2/train2017"),
                "val": SplitLayout("coco-stuff/images/val2017", "coco-stuff/annotations_detectron2/val2017"),
            },
            aliases=("coco-stuff", "cocostuff171", "coco-stuff-171", "coco_2017_train_stuff_all_sem_seg"),
            prepare=(
                "unpack train2017.zip and val2017.zip into coco-stuff/images and stuffthingmaps_trainval2017.zip "
                "into coco-stuff/annotations, then run `infoclip data prepare coco171`"
            ),
            sources=("coco-stuff/annotations",),
        ),
        DatasetSpec(
            name="ade150",
            title="ADE20K-150 (A-150)",
            class_names=tuple(load_vocabulary("ade150")),
            splits={
                "val": SplitLayout(
                    "ADEChallengeData2016/images/validation", "ADEChallengeData2016/annotations_detectron2/validation"
                )
            },
            aliases=("a-150", "ade20k-150", "ade20k_150_test_sem_seg"),
            prepare="unpack ADEChallengeData2016.zip, then run `infoclip data prepare ade150`",
            sources=("ADEChallengeData2016/annotations/validation",),
        ),
        DatasetSpec(
            name="ade847",
            title="ADE20K-847 (A-847)",
            class_names=tuple(load_vocabulary("ade847")),
            splits={
                "val": SplitLayout(
                    "ADE20K_2021_17_01/images_detectron2/validation",
                    "ADE20K_2021_17_01/annotations_detectron2/validation",
                )
            },
            ignore_value=65535,
            label_suffix=".tif",
            aliases=("a-847", "ade20k-847", "ade20k-full", "ade20k_full_sem_seg_freq_val_all"),
            prepare=(
                "convert ADE20K_2021_17_01 (index_ade20k.pkl) with CAT-Seg's datasets/prepare_ade20k_full.py; "
                + _PC_PREPARE_DOC
            ),
            sources=("ADE20K_2021_17_01/images/ADE/validation",),
        ),
        DatasetSpec(
            name="pc59",
            title="Pascal Context-59 (PC-59)",
            class_names=tuple(load_vocabulary("pc59")),
            splits={"val": SplitLayout(f"{_VOC2010}/JPEGImages", f"{_VOC2010}/annotations_detectron2/pc59_val")},
            shared_image_folder=True,
            aliases=("pc-59", "pascal-context-59", "context_59_test_sem_seg"),
            prepare=(
                f"convert {_VOC2010}/trainval_merged.json with CAT-Seg's datasets/prepare_pascal_context_59.py "
                "(needs the Detail API); " + _PC_PREPARE_DOC
            ),
            sources=(f"{_VOC2010}/trainval_merged.json",),
        ),
        DatasetSpec(
            name="pc459",
            title="Pascal Context-459 (PC-459)",
            class_names=tuple(load_vocabulary("pc459")),
            splits={"val": SplitLayout(f"{_VOC2010}/JPEGImages", f"{_VOC2010}/annotations_detectron2/pc459_val")},
            # CAT-Seg's metadata says 459 (= K); the converted labels hold 0..458 only.
            ignore_value=459,
            label_suffix=".tif",
            shared_image_folder=True,
            aliases=("pc-459", "pascal-context-459", "context_459_test_sem_seg"),
            prepare=(
                f"unpack VOCtrainval_03-May-2010.tar and trainval.tar.gz into {_VOC2010}, "
                "then run `infoclip data prepare pc459`"
            ),
            sources=(f"{_VOC2010}/trainval",),
        ),
        DatasetSpec(
            name="voc20",
            title="Pascal VOC-20 (PAS-20)",
            class_names=tuple(load_vocabulary("voc20")),
            splits={"val": SplitLayout(f"{_VOC2012}/JPEGImages", f"{_VOC2012}/annotations_detectron2/val")},
            shared_image_folder=True,
            aliases=("pas-20", "voc-20", "voc_2012_test_sem_seg"),
            prepare=voc_prepare,
            sources=(f"{_VOC2012}/SegmentationClassAug", f"{_VOC2012}/SegmentationClass"),
        ),
        DatasetSpec(
            name="voc20b",
            title="Pascal VOC-20b (PAS-20b)",
            # 20 VOC names then 39 Pascal Context names that act as background proxies; the model predicts
            # over all 59 and predictions >= 20 count as background (CAT-Seg's VOCbEvaluator).
            class_names=tuple(load_vocabulary("voc20b")),
            splits={"val": SplitLayout(f"{_VOC2012}/JPEGImages", f"{_VOC2012}/annotations_detectron2_bg/val")},
            shared_image_folder=True,
            background_index=20,
            aliases=("pas-20b", "voc-20b", "voc_2012_test_background_sem_seg"),
            prepare=voc_prepare,
            sources=(f"{_VOC2012}/SegmentationClassAug", f"{_VOC2012}/SegmentationClass"),
        ),
        coco_panoptic_spec(),
    )


@hookimpl
def infoclip_register_datasets() -> list[DatasetSpec]:
    """The built-in datasets: ``coco171``, ``ade150``, ``ade847``, ``pc59``, ``pc459``, ``voc20``, ``voc20b``,
    ``coco-panoptic``."""
    return list(builtin_specs())
