"""Datasets: the seven OVSS benchmark layouts, custom datasets, COCO panoptic, and their class vocabularies.

    >>> from infoclip.data import get_dataset                      # doctest: +SKIP
    >>> ds = get_dataset("ade150")          # $INFOCLIP_DATASETS/ADEChallengeData2016/...
    >>> sample = ds[0]                      # Sample(image HxWx3 uint8, label HxW int64 (-1 = ignore), name)
    >>> ds.class_names[:3]
    ['wall', 'building', 'sky']
"""

#: label value that marks pixels without ground truth, after reading any on-disk format
#: (255 in uint8 PNGs, 65535 in ADE-847's uint16 TIFFs, ...). -1 because 255 is a real class above 255 classes.
IGNORE_INDEX = -1

from infoclip.data.custom import custom_spec, load_custom_spec  # noqa: E402
from infoclip.data.dataset import Sample, SegmentationDataset  # noqa: E402
from infoclip.data.panoptic import PanopticDataset, PanopticSample, coco_panoptic_spec  # noqa: E402
from infoclip.data.registry import (  # noqa: E402
    DatasetSpec,
    SplitLayout,
    datasets_root,
    get_dataset,
    get_spec,
    registered_datasets,
)
from infoclip.data.vocab import load_vocabulary, read_class_file  # noqa: E402

__all__ = [
    "IGNORE_INDEX",
    "DatasetSpec",
    "PanopticDataset",
    "PanopticSample",
    "Sample",
    "SegmentationDataset",
    "SplitLayout",
    "coco_panoptic_spec",
    "custom_spec",
    "datasets_root",
    "get_dataset",
    "get_spec",
    "load_custom_spec",
    "load_vocabulary",
    "read_class_file",
    "registered_datasets",
]
