"""The model factory: create, save and convert models by adapter, without the command line.

    >>> from infoclip.models import convert_checkpoint, create_model, list_presets, load_model, save_model  # doctest: +SKIP
    >>> [p.name for p in list_presets()]                                     # doctest: +SKIP
    ['catseg-tiny', 'catseg-vit-b16', 'catseg-vit-l14-336']
    >>> model = create_model("catseg-vit-b16", pretrained=True)              # doctest: +SKIP
    >>> save_model(model, "b16.safetensors", source="my experiment")         # doctest: +SKIP
    >>> convert_checkpoint("catseg", "model_final.pth", "catseg_b16.safetensors")  # doctest: +SKIP
    >>> model, meta = load_model("catseg_b16.safetensors", device="cuda")    # doctest: +SKIP

``save_model`` is the one place that writes an infoclip weights file (``infoclip.weights`` holds the file
format); ``infoclip export``, ``convert``, the conversion cache, training and the miniature go through it, and
``infoclip.models.loading.load_model`` is how ``eval``, ``segment`` and ``Segmenter`` read one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from infoclip.adapters.contract import Adapter, OVSSModel
from infoclip.adapters.manager import adapters, get_adapter
from infoclip.errors import AdapterError, CheckpointError, ConfigError, InputError
from infoclip.weights import WeightsMeta, save_weights


@dataclass(frozen=True)
class Preset:
    """A shipped model preset: its name, the adapter that ships it, and its YAML file."""

    name: str
    adapter: str
    path: Path


def list_presets(adapter: str | None = None) -> list[Preset]:
    """The presets of every installed adapter (or of ``adapter``), sorted by name."""
    chosen = [get_adapter(adapter)] if adapter is not None else list(adapters().values())
    return sorted((Preset(name, a.name, Path(path)) for a in chosen for name, path in a.configs.items()), key=lambda p: p.name)


def find_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ConfigError: no installed adapter ships it (the message lists the presets).
    """
    presets = list_presets()
    for preset in presets:
        if preset.name == name:
            return preset
    raise ConfigError(f"no preset {name!r}; presets: {', '.join(p.name for p in presets) or 'none'}")


def _adapter_and_model_config(
    preset_or_config: str | os.PathLike[str] | Mapping[str, Any], adapter: str | None
) -> tuple[Adapter, dict[str, Any]]:
    from infoclip.config import load_config

    if isinstance(preset_or_config, Mapping):
        config = dict(preset_or_config)
    else:
        text = str(preset_or_config)
        path = Path(text)
        if path.suffix in (".yaml", ".yml") or path.is_file():
            config = load_config(path)
        else:
            config = load_config(find_preset(text).path)
    if "model" in config and ("adapter" in config or adapter is not None):
        name = adapter or config["adapter"]
        if adapter is not None and config.get("adapter", adapter) != adapter:
            raise ConfigError(f"the config is for adapter {config['adapter']!r}, not {adapter!r}")
        return get_adapter(str(name)), dict(config["model"] or {})
    if adapter is None:
        raise ConfigError("a bare model config needs its adapter: pass adapter=NAME, or give a config with adapter: and model:")
    return get_adapter(adapter), config


def build_model(adapter: str | Adapter, model_config: Mapping[str, Any] | None) -> OVSSModel:
    """``adapter.build_model(model_config)``, checked to honour the contract (an ``OVSSModel``).

    Raises:
        AdapterError: unknown adapter, or its builder returned something else.
    """
    chosen = get_adapter(adapter) if isinstance(adapter, str) else adapter
    model = chosen.build_model(dict(model_config or {}))
    if not isinstance(model, OVSSModel):
        raise AdapterError(f"adapter {chosen.name!r} built a {type(model).__name__}, not an infoclip OVSSModel")
    return model


def create_model(
    preset_or_config: str | os.PathLike[str] | Mapping[str, Any],
    adapter: str | None = None,
    *,
    pretrained: bool = False,
    device: str | torch.device = "cpu",
) -> OVSSModel:
    """A model from a preset name (``"catseg-vit-b16"``), a YAML file, or a config mapping.

    Args:
        preset_or_config: a preset, a run-config YAML / mapping (``adapter:`` and ``model:``), or a bare
            ``model:`` mapping together with ``adapter``.
        adapter: the adapter for a bare model config (or a check of the config's own).
        pretrained: load the pretrained weights a training run starts from (``OVSSModel.load_pretrained``;
            may download). Without it the model keeps its seeded random initialisation.
        device: where to put the model.

    Raises:
        ConfigError: unknown preset, or a config without its adapter.
        AdapterError: unknown adapter.
        WeightsNotFoundError: ``pretrained`` weights that are not available.
    """
    chosen, model_config = _adapter_and_model_config(preset_or_config, adapter)
    model = build_model(chosen, model_config)
    if pretrained:
        model.load_pretrained()
    return model.to(device)


def save_model(
    model: OVSSModel,
    path: str | os.PathLike[str],
    extra_metadata: Mapping[str, Any] | None = None,
    *,
    classes: list[str] | tuple[str, ...] = (),
    source: str = "",
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model``'s inference weights with their metadata, atomically (the only writer of weights files).

    The metadata is the model's own: adapter, ``model_config()``, ``clip_tag``, plus ``classes`` (the training
    vocabulary), ``source`` (where the weights come from) and ``extra_metadata`` (JSON-ready values, kept
    under ``extra``).

    Args:
        state_dict: the tensors to write instead of ``model.inference_state_dict()`` (``convert`` writes the
            imported state of a model built on the meta device).

    Raises:
        AdapterError: the model does not name its adapter.
        InputError: ``path`` does not end in ``.safetensors``.
    """
    if not model.adapter_name:
        raise AdapterError(f"{type(model).__name__} does not name its adapter (adapter_name); it cannot be saved")
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InputError(f"{path}: infoclip weights are safetensors; name the file *.safetensors")
    meta = WeightsMeta(
        adapter=model.adapter_name,
        config=model.model_config(),
        clip_tag=model.clip_tag,
        classes=list(classes),
        source=source,
        extra=dict(extra_metadata or {}),
    )
    return save_weights(path, state_dict if state_dict is not None else model.inference_state_dict(), meta)


def import_checkpoint(
    source: str | os.PathLike[str], adapter: str, importer: str | None = None
) -> tuple[dict[str, torch.Tensor], OVSSModel, str]:
    """Run ``adapter``'s checkpoint importer on ``source``; returns ``(state_dict, model, importer name)``.

    ``model`` is the adapter's model for the imported config, built on the meta device (nothing allocated),
    and the state is checked to fit it: every key present, none extra, every shape right. ``save_model(model,
    path, state_dict=state)`` then writes it.

    Raises:
        AdapterError: unknown adapter, or it has no (such) importer.
        CheckpointError: the importer refused the source, or its result does not fit the model.
    """
    chosen = get_adapter(adapter)
    if not chosen.importers:
        raise AdapterError(f"adapter {chosen.name!r} has no checkpoint importer")
    if importer is None:
        if len(chosen.importers) > 1:
            raise AdapterError(
                f"adapter {chosen.name!r} has several importers ({', '.join(sorted(chosen.importers))}); choose one",
                parameter="importer",
            )
        importer = next(iter(chosen.importers))
    if importer not in chosen.importers:
        raise AdapterError(
            f"adapter {chosen.name!r} has no importer {importer!r}; importers: {', '.join(sorted(chosen.importers))}",
            parameter="importer",
        )
    try:
        state, config = chosen.importers[importer](Path(source))
    except CheckpointError:
        own = _own_file_hint(Path(source))
        if own is None:
            raise
        raise CheckpointError(own) from None
    with torch.device("meta"):
        model = build_model(chosen, config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    misfits = sorted(set(expected) ^ set(state)) + sorted(k for k in expected if k in state and tuple(state[k].shape) != expected[k])
    if misfits:
        raise CheckpointError(f"the {importer} importer of {chosen.name} produced weights that do not fit its model: {', '.join(misfits[:3])}")
    return state, model, importer


def _own_file_hint(source: Path) -> str | None:
    """What to do instead when ``source`` is one of infoclip's own training files (a run or its checkpoint)."""
    from infoclip.training.checkpoint import read_checkpoint

    try:
        iteration = read_checkpoint(source).get("iteration")
    except (CheckpointError, OSError):
        return None
    return (
        f"{source} is an infoclip training {'run' if source.is_dir() else 'checkpoint'} (iteration {iteration}), not "
        f"an official checkpoint; make inference weights from it with `infoclip export {source} -o weights.safetensors`"
    )


def convert_checkpoint(
    adapter: str,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    importer: str | None = None,
    force: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Import a checkpoint of a framework's own code (``import_checkpoint``) and save it as infoclip weights.

    Returns:
        ``(output, summary)``; the summary holds the adapter, importer, CLIP tag, tensor and parameter counts.

    Raises:
        InputError: the output exists (without ``force``), is the source, or is not ``*.safetensors``.
        AdapterError: unknown adapter, or it has no (such) importer.
        CheckpointError: the importer refused the source, or its result does not fit the model.
    """
    source, output = Path(source), Path(output)
    if output.suffix != ".safetensors":
        raise InputError(f"{output}: infoclip weights are safetensors; name the output *.safetensors")
    if output.exists() and output.resolve() == source.resolve():
        raise InputError(f"{output} is the source checkpoint; write the weights to another file")
    if output.exists() and not force:
        raise InputError(f"{output} exists; allow overwriting it to replace it", parameter="force")
    state, model, importer = import_checkpoint(source, adapter, importer)
    save_model(model, output, source=f"infoclip convert {model.adapter_name} {source.name}", state_dict=state)
    return output, {
        "adapter": model.adapter_name,
        "importer": importer,
        "source": str(source),
        "clip_tag": model.clip_tag,
        "tensors": len(state),
        "parameters": int(sum(v.numel() for v in state.values())),
    }
