"""The built-in ``san`` adapter: SAN (CVPR'23, Side Adapter Network) re-implemented on open_clip and timm,
without detectron2, equal to the official code (MendelXu/SAN @ e19262d; docs/san-fidelity.md).

Presets (``configs/``): ``san-vit-b16`` (CLIP ViT-B/16, the paper's base), ``san-vit-l14-336`` (ViT-L/14
at 336) and ``san-tiny`` (a tiny random CLIP, for tests). The ``model:`` schema is documented in
``configs/san-vit-b16.yaml``.
"""

from __future__ import annotations

from typing import Any

from infoclip.adapters.contract import Adapter
from infoclip.adapters.hookspecs import hookimpl
from infoclip.adapters.san.config import PRESETS, default_model_config, preset_model_config, resolve_model_config
from infoclip.adapters.san.model import SAN, SANTeacher, build_model, build_teacher, parameter_table

SUMMARY = "SAN (CVPR'23): side-adapter network on a frozen open_clip CLIP (ViT-B/16, ViT-L/14@336)"


def _importers() -> dict[str, Any]:
    from infoclip.adapters.san.convert import import_official_checkpoint

    return {"official": import_official_checkpoint}


@hookimpl
def infoclip_register_adapters() -> list[Adapter]:
    from infoclip import __version__

    return [
        Adapter(
            name="san",
            summary=SUMMARY,
            build_model=build_model,
            build_teacher=build_teacher,
            configs=dict(PRESETS),
            importers=_importers(),
            version=__version__,
        )
    ]


__all__ = [
    "PRESETS",
    "SAN",
    "SANTeacher",
    "build_model",
    "build_teacher",
    "default_model_config",
    "parameter_table",
    "preset_model_config",
    "resolve_model_config",
]
