"""Datasets: the seven OVSS benchmark layouts, custom datasets, COCO panoptic, and their class vocabularies.

    >>> from infoclip.data import get_dataset                      # doctest: +SKIP
    >>> ds = get_dataset("ade150")          # $INFOCLIP_DATASETS/ADEChallengeData2016/...
    >>> sample = ds[0]                      # Sample(image HxWx3 uint8, label HxW int64 (-1 = ignore), name)
    >>> ds.class_names[:3]
    ['wall', 'building', 'sky']
"""

from infoclip.data.custom import custom_spec, load_custom_spec
from infoclip.data.dataset import Sample, SegmentationDataset
from infoclip.data.panoptic import PanopticDataset, PanopticSample, coco_panoptic_spec
from infoclip.data.registry import get_dataset, get_spec, registered_datasets
from infoclip.data.spec import IGNORE_INDEX, DatasetSpec, SplitLayout, datasets_root
from infoclip.data.vocab import load_vocabulary, read_class_file

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
