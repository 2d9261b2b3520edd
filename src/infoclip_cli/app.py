"""The Typer application object and the helpers every command module shares."""

from __future__ import annotations

import typer
from rich.console import Console

#: progress, logs and messages go to stderr; results go to stdout so they can be piped
err_console = Console(stderr=True)
out_console = Console()


def note(line: str) -> None:
    """One informational line on stderr (``note: ...``)."""
    err_console.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)


def typer_factory(help: str, **kwargs: object) -> typer.Typer:
    """Every (sub)application is built with the same settings: help when called bare, no pretty tracebacks."""
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
        **kwargs,  # type: ignore[arg-type]
    )


app = typer_factory("infoclip: open-vocabulary semantic segmentation with CLIP and the InfoCLIP objective.")
