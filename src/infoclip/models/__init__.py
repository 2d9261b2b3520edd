"""The model factory: create, load, save and convert models by adapter, without the command line.

    >>> from infoclip.models import convert_checkpoint, create_model, list_presets, load_model, save_model  # doctest: +SKIP
    >>> model = create_model("catseg-vit-b16", pretrained=True)              # doctest: +SKIP
    >>> save_model(model, "b16.safetensors", {"note": "mine"})              # doctest: +SKIP
    >>> convert_checkpoint("catseg", "model_final.pth", "catseg_b16.safetensors")  # doctest: +SKIP
    >>> model, meta = load_model("catseg_b16.safetensors", device="cuda")    # doctest: +SKIP

``factory`` builds, saves (``save_model``: the one writer of weights files) and converts; ``loading`` reads
weights back through the weights resolver (names, ``hf:`` specs, files, official checkpoints).
"""

from infoclip.models.factory import (
    Preset,
    build_model,
    convert_checkpoint,
    create_model,
    find_preset,
    import_checkpoint,
    list_presets,
    save_model,
)
from infoclip.models.loading import load_model

__all__ = [
    "Preset",
    "build_model",
    "convert_checkpoint",
    "create_model",
    "find_preset",
    "import_checkpoint",
    "list_presets",
    "load_model",
    "save_model",
]
