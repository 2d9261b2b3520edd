"""Entry point of the ``infoclip`` command: composes one module per command and maps errors in one place."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from infoclip import __version__
from infoclip_cli.app import app
from infoclip_cli.errors import run_mapped

#: one module per command (or command group); each defines ``register(app)``
COMMAND_MODULES: tuple[str, ...] = (
    "infoclip_cli.segment_cmd",
    "infoclip_cli.demo_cmd",
    "infoclip_cli.train_cmd",
    "infoclip_cli.eval_cmd",
    "infoclip_cli.export_cmd",
    "infoclip_cli.convert_cmd",
    "infoclip_cli.weights_cmd",
    "infoclip_cli.data_cmd",
    "infoclip_cli.adapters_cmd",
    "infoclip_cli.miniature_cmd",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"infoclip {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """infoclip: open-vocabulary semantic segmentation with CLIP and the InfoCLIP objective."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console-script entry point: run the app with library errors mapped to one-line messages."""
    run_mapped(lambda: app(prog_name="infoclip"))


if __name__ == "__main__":
    main()
