"""``infoclip export``: a training checkpoint -> inference weights (safetensors with infoclip metadata).

What is written: the student's ``inference_state_dict()`` only. The frozen teacher, the optimizer state and the
LPAM are left out, unless the LPAM feeds the decoder (then it is a submodule of the model and part of its
inference weights). The metadata holds the architecture config, the CLIP tag, the training vocabulary and
``source = "infoclip export RUN@ITERATION"``; ``infoclip.weights.load_model`` rebuilds the model from it and
loads the weights strictly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from infoclip.errors import CheckpointError, InputError
from infoclip.training.checkpoint import read_checkpoint, resolve_checkpoint


def export_checkpoint(
    source: str | os.PathLike[str], output: str | os.PathLike[str], force: bool = False, card: bool = True
) -> tuple[Path, dict[str, Any]]:
    """Write the inference weights of a run's last checkpoint (or of one checkpoint file) to ``output``.

    Args:
        source: a run folder (its ``last_checkpoint``) or a ``checkpoints/*.pt`` file.
        output: the ``.safetensors`` file to write (atomically).
        force: overwrite ``output`` if it exists.
        card: also write the model card (``README.md`` beside ``output``, see ``infoclip.training.model_card``).

    Returns:
        ``(output path, summary)`` with the adapter, iteration, tensor count and class count.

    Raises:
        CheckpointError: ``source`` is not a training checkpoint, or its weights do not fit the model.
        InputError: ``output`` exists and ``force`` is false, or does not end in ``.safetensors``.
    """
    from infoclip.adapters import get_adapter
    from infoclip.weights import WeightsMeta, first_non_finite, load_state_strict, save_weights

    output = Path(output)
    if output.suffix != ".safetensors":
        raise InputError(f"{output}: exported weights are safetensors; name the output *.safetensors")
    if output.exists() and not force:
        raise InputError(f"{output} exists; pass --force to overwrite it")
    path = resolve_checkpoint(source)
    if path.suffix == ".safetensors":
        raise CheckpointError(f"{path} is already a weights file, not a training checkpoint; nothing to export")
    data = read_checkpoint(path)
    try:
        config, model_config = data["config"], data["model_config"]
        state, classes, iteration = data["model"], list(data["classes"]), int(data["iteration"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} is an incomplete training checkpoint (missing {exc})") from exc
    adapter = get_adapter(config["adapter"])
    model = adapter.build_model(model_config)
    load_state_strict(model, state, path)
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    meta = WeightsMeta(
        adapter=adapter.name,
        config=model.model_config(),
        clip_tag=model.clip_tag,
        classes=classes,
        source=f"infoclip export {run.name}@{iteration}",
    )
    weights = model.inference_state_dict()
    bad = first_non_finite(weights)
    if bad is not None:
        raise CheckpointError(
            f"{path} (iteration {iteration}) holds non-finite weights: {bad[0]} has {bad[1]} NaN/inf values; "
            "nothing exported; export an earlier checkpoint of the run"
        )
    save_weights(output, weights, meta)
    summary: dict[str, Any] = {
        "adapter": adapter.name,
        "checkpoint": str(path),
        "iteration": iteration,
        "tensors": len(weights),
        "parameters": int(sum(t.numel() for t in weights.values())),
        "classes": len(classes),
        "clip_tag": meta.clip_tag,
    }
    if card:
        from infoclip.training.model_card import write_model_card

        summary["card"] = str(write_model_card(output, run, config, meta.clip_tag, summary))
    return output, summary
