"""The built-in ``fcclip`` adapter: FC-CLIP (NeurIPS'23) re-implemented on open_clip's ConvNeXt CLIP, without
detectron2 or compiled ops.

Presets (``configs/``): ``fcclip-convnext-l`` (the released ConvNeXt-L model, ``fcclip_cocopan.pth``) and
``fcclip-tiny`` (a tiny random ConvNeXt CLIP, for tests). The ``model:`` schema is documented in
``configs/fcclip-convnext-l.yaml``; FC-CLIP's own class lists with synonyms are in ``vocabularies``.
"""

from __future__ import annotations

from infoclip.adapters.contract import Adapter
from infoclip.adapters.fcclip.config import PRESETS, default_model_config, preset_model_config, resolve_model_config
from infoclip.adapters.fcclip.convert import import_official_checkpoint
from infoclip.adapters.fcclip.model import FCCLIP, FCCLIPTeacher, build_model, build_teacher, parameter_table
from infoclip.adapters.fcclip.vocabularies import VOCABULARIES, fcclip_vocabulary
from infoclip.adapters.hookspecs import hookimpl

@hookimpl
def infoclip_register_vocabularies() -> list:
    """FC-CLIP's prompt-engineered lists with synonyms, as ``fcclip-ade150``, ``fcclip-coco133``, ... (``--vocab``)."""
    from infoclip.segmentation.classes import Vocabulary

    return [
        Vocabulary(f"fcclip-{name}", tuple(fcclip_vocabulary(name)), "FC-CLIP's prompt-engineered class list with synonyms")
        for name in VOCABULARIES
    ]


SUMMARY = "FC-CLIP (NeurIPS'23): frozen ConvNeXt CLIP + Mask2Former decoder, in/out-vocabulary ensemble (ConvNeXt-L)"


@hookimpl
def infoclip_register_adapters() -> list[Adapter]:
    from infoclip import __version__

    return [
        Adapter(
            name="fcclip",
            summary=SUMMARY,
            build_model=build_model,
            build_teacher=build_teacher,
            configs=dict(PRESETS),
            importers={"official": import_official_checkpoint},
            version=__version__,
        )
    ]


__all__ = [
    "FCCLIP",
    "FCCLIPTeacher",
    "PRESETS",
    "VOCABULARIES",
    "build_model",
    "build_teacher",
    "default_model_config",
    "fcclip_vocabulary",
    "import_official_checkpoint",
    "parameter_table",
    "preset_model_config",
    "resolve_model_config",
]
