"""infoclip: open-vocabulary semantic segmentation with CLIP, and the InfoCLIP objective (AAAI 2026).

The library imports without typer or rich. Heavy parts (models, the ``Segmenter``) load on first use.

    >>> from infoclip import Segmenter                      # doctest: +SKIP
    >>> seg = Segmenter.from_pretrained("model.safetensors")  # doctest: +SKIP
    >>> result = seg.predict("cat.jpg", ["cat", "sofa"])      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from infoclip._version import __version__
from infoclip.hookspecs import hookimpl

__all__ = ["Segmenter", "SegmentationResult", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    if name in ("Segmenter", "SegmentationResult"):
        from infoclip.segmentation import segmenter

        return getattr(segmenter, name)
    raise AttributeError(f"module 'infoclip' has no attribute {name!r}")
