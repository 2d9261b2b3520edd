"""The Typer application object and the helpers every command module shares."""

from __future__ import annotations

from collections.abc import Sequence

import typer
from rich.console import Console
from rich.table import Table

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


def folding_table(title: str, columns: Sequence[str], right: Sequence[str] = (), **kwargs: object) -> Table:
    """A table whose cells and headers fold onto more lines instead of ending in '…' when the terminal (or a
    pipe, 80 columns) is narrow: a name shown is always a whole name. ``right``: right-aligned (number) columns."""
    table = Table(title=title, **kwargs)  # type: ignore[arg-type]
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold")
    return table


def examples(*commands: str) -> str:
    """A help epilog of example commands, each printed exactly as written (click's ``\\b`` paragraphs are not
    rewrapped): a long command is split with shell line continuations so that it pastes as it is."""
    blocks = ["Examples:"]
    for command in commands:
        blocks.append("\b\n" + "\n".join("  " + line for line in command.splitlines()))
    return "\n\n".join(blocks)
