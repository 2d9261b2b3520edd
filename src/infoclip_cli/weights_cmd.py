"""``infoclip weights list`` / ``infoclip weights download NAME``: the named weights and their local cache."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from infoclip_cli.app import err_console, examples, note, out_console, typer_factory

weights_app = typer_factory("Named weights: list them, download them ahead of time.")


@weights_app.command("list", epilog=examples("infoclip weights list", "infoclip weights list --json"))
def list_weights(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the named weights --weights accepts: what each is, its size, published mIoU, and whether it is cached.

    "cached: ready" means the file is downloaded (and converted, for official checkpoints), so it works
    offline; "downloaded" means the conversion will run on first use; "no" means it will be downloaded.
    """
    from infoclip.adapters import adapters
    from infoclip.hub import file_url
    from infoclip.named_weights import default_name, registered_weights
    from infoclip.weights_resolver import cache_status

    entries = registered_weights()
    installed = adapters()
    default = default_name()
    rows = []
    for name in sorted(entries):
        entry = entries[name]
        rows.append(
            {
                "name": name,
                "default": name == default,
                "summary": entry.summary,
                "adapter": entry.adapter,
                "adapter_installed": entry.adapter in installed,
                "format": entry.format,
                "size_mb": entry.size_mb,
                "license": entry.license,
                "published_miou": entry.published_miou,
                "miou_source": entry.miou_source,
                "url": file_url(entry),
                "cached": cache_status(entry),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from infoclip.conversion import conversion_cache_dir
    from infoclip.hub import cache_dir

    table = Table(
        title="named weights (--weights NAME)",
        caption=f"downloads: {cache_dir()}; converted: {conversion_cache_dir()}",
    )
    table.add_column("name", no_wrap=True)
    table.add_column("what")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("A-150", justify="right", no_wrap=True)
    table.add_column("cached", no_wrap=True)
    for row in rows:
        what = row["summary"] + ("" if row["adapter_installed"] else f" (needs the {row['adapter']} adapter)")
        miou = row["published_miou"].get("A-150")
        table.add_row(
            row["name"] + (" (default)" if row["default"] else ""),
            Text(what),
            f"{row['size_mb']} MB" if row["size_mb"] else "?",
            f"{miou:.1f}" if miou is not None else "-",
            row["cached"],
        )
    out_console.print(table)


@weights_app.command(
    "download", epilog=examples("infoclip weights download catseg-b16 catseg-l14", "infoclip weights download hf:ORG/REPO/model.safetensors")
)
def download_weights(
    names: Annotated[list[str], typer.Argument(help="Names (infoclip weights list) or hf:ORG/REPO/FILE[@REV].")],
) -> None:
    """Download (and convert, for official checkpoints) named weights now, so later runs work offline.

    Asks the Hub whether the revision moved even when a copy is cached. Prints the path of each infoclip
    weights file on stdout.
    """
    from infoclip.weights_resolver import resolve_weights

    for name in names:
        resolved = resolve_weights(name, refresh=True, notify=note)
        err_console.print(
            f"{name}: {resolved.source}" + (f" -> {resolved.path}" if resolved.converted else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        typer.echo(str(resolved.path))


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
