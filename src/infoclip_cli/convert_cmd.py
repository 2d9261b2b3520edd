"""``infoclip convert ADAPTER SRC -o DST``: import a checkpoint of a framework's own code as infoclip weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from infoclip_cli.app import err_console, examples

EXAMPLES = examples(
    "infoclip convert catseg model_base.pth -o catseg_b16.safetensors",
    "infoclip convert catseg model_large.pth -o catseg_l14.safetensors --json",
)


def convert_command(
    adapter: Annotated[str, typer.Argument(help="Adapter whose framework wrote the checkpoint (catseg, san).")],
    source: Annotated[Path, typer.Argument(help="Checkpoint of the framework's official code (e.g. model_base.pth).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write (*.safetensors).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")] = False,
    importer: Annotated[str | None, typer.Option("--importer", help="Importer to use when the adapter has several.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout instead of the path.")] = False,
) -> None:
    """Convert an official checkpoint into infoclip weights (safetensors with architecture metadata).

    Not needed to use one: --weights model_base.pth converts on first use and caches the result.

    The architecture is detected from the tensor shapes (catseg, san: ViT-B/16 or ViT-L/14@336); anything else is
    refused with the keys that do not fit. The output path is printed on stdout, a summary on stderr.
    """
    err_console.print(f"converting {source} ({adapter}) ...", markup=False, highlight=False, soft_wrap=True)
    from infoclip.models import convert_checkpoint

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
