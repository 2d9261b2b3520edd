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
    card: Annotated[
        bool, typer.Option("--card/--no-card", help="Also write a Hub model card (README.md beside the weights).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Export inference weights: no teacher, no optimizer state, no LPAM unless it feeds the decoder.

    Beside them it writes README.md, a model card with Hugging Face front matter (library_name, pipeline_tag,
    base_model, datasets, license, model-index with the evaluations found in the run folder), so the folder
    can be pushed to the Hub as it is. An existing README.md that is not this file's card (a project's own, or
    another export's) is kept: the card then goes to <weights stem>.md.
    """
    from infoclip.training import export_checkpoint

    path, summary = export_checkpoint(source, output, force=force, card=card)
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
    if "card" in summary:
        out_console.print(f"model card: {summary['card']}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export", epilog=EXAMPLES)(export_command)
