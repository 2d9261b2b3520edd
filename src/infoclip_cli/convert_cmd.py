"""``infoclip convert ADAPTER SRC -o DST``: import a checkpoint of a framework's own code as infoclip weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from infoclip_cli.app import err_console, examples

EXAMPLES = examples(
    "infoclip convert catseg model_base.pth -o catseg_b16.safetensors",
    "infoclip convert catseg model_large.pth -o catseg_l14.safetensors --json",
)


def convert_checkpoint(
    adapter_name: str, source: Path, output: Path, importer: str | None = None, force: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Run an adapter's checkpoint importer and write the result as an infoclip weights file (atomically).

    The imported state is checked against the adapter's model for that config (built on the meta device, so
    nothing is allocated) before anything is written: every key present, none extra, every shape right.

    Returns:
        ``(output, summary)``; the summary holds the adapter, importer, CLIP tag, tensor and parameter counts.

    Raises:
        InputError: the output exists (without ``force``), is the source, or is not ``*.safetensors``.
        AdapterError: unknown adapter, or it has no (such) importer.
        CheckpointError: the importer refused the source, or its result does not fit the model.
    """
    from infoclip.conversion import import_checkpoint
    from infoclip.errors import InputError
    from infoclip.weights import save_weights

    if output.suffix != ".safetensors":
        raise InputError(f"{output}: infoclip weights are safetensors; name the output *.safetensors")
    if output.exists() and output.resolve() == source.resolve():
        raise InputError(f"{output} is the source checkpoint; write the weights to another file")
    if output.exists() and not force:
        raise InputError(f"{output} exists; pass --force to overwrite it")
    state, meta, importer = import_checkpoint(source, adapter_name, importer)
    save_weights(output, state, meta)
    return output, {
        "adapter": meta.adapter,
        "importer": importer,
        "source": str(source),
        "clip_tag": meta.clip_tag,
        "tensors": len(state),
        "parameters": int(sum(v.numel() for v in state.values())),
    }


def convert_command(
    adapter: Annotated[str, typer.Argument(help="Adapter whose framework wrote the checkpoint (catseg).")],
    source: Annotated[Path, typer.Argument(help="Checkpoint of the framework's official code (e.g. model_base.pth).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write (*.safetensors).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")] = False,
    importer: Annotated[str | None, typer.Option("--importer", help="Importer to use when the adapter has several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout instead of the path.")] = False,
) -> None:
    """Convert an official checkpoint into infoclip weights (safetensors with architecture metadata).

    Not needed to use one: --weights model_base.pth converts on first use and caches the result.

    The architecture is detected from the tensor shapes (catseg: ViT-B/16 or ViT-L/14@336); anything else is
    refused with the keys that do not fit. The output path is printed on stdout, a summary on stderr.
    """
    err_console.print(f"converting {source} ({adapter}) ...", markup=False, highlight=False, soft_wrap=True)
    path, summary = convert_checkpoint(adapter, source, output, importer=importer, force=force)
    if as_json:
        typer.echo(json.dumps({"output": str(path), **summary}, indent=2))
        return
    err_console.print(
        f"{summary['adapter']} ({summary['importer']} importer): CLIP {summary['clip_tag'] or '-'}, "
        f"{summary['parameters']:,} parameters in {summary['tensors']} tensors -> {path}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("convert", epilog=EXAMPLES)(convert_command)
