"""``infoclip adapters list``: which adapters are installed, from where, with which hooks."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from infoclip_cli.app import examples, folding_table, out_console, typer_factory

adapters_app = typer_factory("Inspect the installed adapter plugins.")


@adapters_app.command("list", epilog=examples("infoclip adapters list", "infoclip adapters list --json"))
def list_adapters(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List plugins: name, version, where each comes from, the hooks it implements, the adapters, datasets and weights names it adds."""
    from infoclip.adapters import adapters, plugin_info

    rows = plugin_info()
    known = adapters()
    if as_json:
        payload = [
            {
                "plugin": r.name,
                "version": r.version,
                "source": r.source,
                "hooks": r.hooks,
                "adapters": [
                    {"name": a, "summary": known[a].summary, "configs": sorted(known[a].configs)}
                    for a in r.adapters
                    if a in known
                ],
                "datasets": r.datasets,
                "weights": r.weights,
            }
            for r in rows
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    table = folding_table("infoclip plugins", ("plugin", "version", "source", "hooks", "contributes"))
    for r in rows:
        parts = [f"adapter {a} ({', '.join(sorted(known[a].configs))})" if a in known else f"adapter {a}" for a in r.adapters]
        if r.datasets:
            parts.append(f"datasets {', '.join(r.datasets)}")
        if r.weights:
            parts.append(f"weights {', '.join(r.weights)}")
        table.add_row(r.name, r.version, r.source, "\n".join(r.hooks), "\n".join(parts) or "-")
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(adapters_app, name="adapters")
