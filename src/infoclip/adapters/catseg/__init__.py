"""The built-in ``catseg`` adapter: CAT-Seg (CVPR'24) re-implemented on open_clip, without detectron2.

Presets (``configs/``): ``catseg-vit-b16`` (CLIP ViT-B/16 at 384, the paper's base), ``catseg-vit-l14-336``
(ViT-L/14 at 336) and ``catseg-tiny`` (a tiny random CLIP, for tests). The ``model:`` schema is documented
in ``configs/catseg-vit-b16.yaml``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any


from infoclip.adapters.catseg.config import PRESETS, default_model_config, preset_model_config, resolve_model_config
from infoclip.adapters.catseg.model import CATSeg, CATSegTeacher, build_model, build_teacher, configure_lpam, parameter_table
from infoclip.adapters.contract import Adapter
from infoclip.adapters.hookspecs import hookimpl

SUMMARY = "CAT-Seg (CVPR'24): cost aggregation on a Q/V-fine-tuned open_clip CLIP (ViT-B/16, ViT-L/14@336)"


def _importers() -> dict[str, Any]:
    """Checkpoint importers for ``infoclip convert catseg`` (the official-checkpoint converter, when shipped)."""
    name = "infoclip.adapters.catseg.convert"
    if importlib.util.find_spec(name) is None:
        return {}
    convert = importlib.import_module(name)
    importer = getattr(convert, "import_official_checkpoint", None)
    return {"official": importer} if importer is not None else {}


@hookimpl
def infoclip_register_adapters() -> list[Adapter]:
    from infoclip import __version__

    return [
        Adapter(
            name="catseg",
            summary=SUMMARY,
            build_model=build_model,
            build_teacher=build_teacher,
            configs=dict(PRESETS),
            importers=_importers(),
            configure_lpam=configure_lpam,
            version=__version__,
        )
    ]


__all__ = [
    "CATSeg",
    "CATSegTeacher",
    "PRESETS",
    "build_model",
    "build_teacher",
    "default_model_config",
    "parameter_table",
    "preset_model_config",
    "resolve_model_config",
]

