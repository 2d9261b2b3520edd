"""Training: the CAT-Seg recipe with the InfoCLIP objective, resumable, multi-GPU through torchrun; export.

    >>> from infoclip.training import prepare_run_config, train       # doctest: +SKIP
    >>> config, _ = prepare_run_config("runs/b16", "catseg-vit-b16", overrides=["solver.iterations=1000"])
    >>> summary = train(config, "runs/b16")
    >>> export_checkpoint("runs/b16", "b16.safetensors")

Parts: ``run_config`` (defaults <- preset/YAML <- ``--set``), ``optim`` (param groups, cosine schedule,
full-model clipping), ``augment`` (CAT-Seg's training mapper), ``data_stream`` (seeded, position-addressed data
order), ``checkpoint`` (atomic files + ``last_checkpoint``), ``run_log`` (CSV, TensorBoard, plot),
``distributed`` (torchrun environment), ``engine`` (the loop), ``export`` (inference weights).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Trainer",
    "TrainSummary",
    "export_checkpoint",
    "prepare_run_config",
    "resolve_run_config",
    "train",
    "training_defaults",
]

_LAZY = {
    "Trainer": "infoclip.training.engine",
    "TrainSummary": "infoclip.training.engine",
    "prepare_run_config": "infoclip.training.run_config",
    "train": "infoclip.training.engine",
    "export_checkpoint": "infoclip.training.export",
    "resolve_run_config": "infoclip.training.run_config",
    "training_defaults": "infoclip.training.run_config",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `import infoclip.training.augment` (DataLoader workers) does not import the whole engine.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'infoclip.training' has no attribute {name!r}")
