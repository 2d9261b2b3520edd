"""Reading a model back: ``load_model`` from a weights name, an ``hf:`` spec, a file or an official checkpoint."""

from __future__ import annotations

import os
from typing import Any

import torch

from infoclip.adapters.contract import OVSSModel
from infoclip.adapters.manager import get_adapter
from infoclip.models.factory import build_model
from infoclip.weights import WeightsMeta, check_header_fits, load_state_strict, read_weights, read_weights_header


def load_model(
    weights: str | os.PathLike[str], device: str | torch.device = "cpu", notify: Any = None
) -> tuple[OVSSModel, WeightsMeta]:
    """Build the model that weights describe and load them strictly (eval mode).

    ``weights`` is anything ``infoclip.weights_resolver.resolve_weights`` takes: a registered name
    (``catseg-b16``), ``hf:ORG/REPO/FILE[@REV]``, an infoclip ``.safetensors`` file or an official checkpoint
    (converted on first use, cached). ``notify(line)`` is told when a conversion starts. The file's tensor
    shapes are checked against its stored config (on the meta device) before anything is allocated.

    Raises:
        CheckpointError: the file is missing, not infoclip weights, or does not fit its architecture.
        AdapterError: the adapter that wrote it is not installed.
    """
    from infoclip.weights_resolver import resolve_weights

    path = resolve_weights(weights, notify=notify).path
    shapes, meta = read_weights_header(path)
    adapter = get_adapter(meta.adapter)
    check_header_fits(path, shapes, adapter.build_model, meta.config)
    state, _ = read_weights(path)
    model = build_model(adapter, meta.config)
    load_state_strict(model, state, path)
    return model.to(device).eval(), meta
