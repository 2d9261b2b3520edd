"""``infoclip export``: a training run or checkpoint -> inference weights (.safetensors with metadata)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from infoclip_cli.app import examples, out_console

EXAMPLES = examples(
    "infoclip export runs/b16 -o b16.safetensors",
    "infoclip export runs/b16/checkpoints/checkpoint_0040000.pt \\\n    -o b16_40k.safetensors",
)


def export_command(
    source: Annotated[Path, typer.Argument(help="A run folder (its last checkpoint) or a checkpoints/*.pt file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write (*.safetensors).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Export inference weights: no teacher, no optimizer state, no LPAM unless it feeds the decoder."""
    from infoclip.training import export_checkpoint

    path, summary = export_checkpoint(source, output, force=force)
    if as_json:
        typer.echo(json.dumps({"output": str(path), **summary}, indent=2))
        return
    out_console.print(
        f"wrote {path}: {summary['adapter']} at iteration {summary['iteration']}, "
        f"{summary['parameters']:,} parameters in {summary['tensors']} tensors, {summary['classes']} training classes, "
        f"CLIP {summary['clip_tag'] or '-'}",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("export", epilog=EXAMPLES)(export_command)
