"""The one progress display of the command line: a rich bar on stderr with the same columns everywhere.

``progress_bar()`` is used by ``eval`` and ``data`` (one task per dataset, via ``stderr_progress``), ``segment``
(one task over the images) and ``train`` (iterations, with speed and loss columns).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from infoclip_cli.app import err_console


class SpeedColumn(ProgressColumn):
    """Iterations per second."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("  -- it/s" if speed is None else f"{speed:6.2f} it/s")


def progress_bar(
    *extra: ProgressColumn, speed: bool = False, disable: bool = False, console: Console | None = None, **kwargs: Any
) -> Progress:
    """description | bar | done/total | [it/s] | elapsed | ETA remaining | extra columns, on stderr (or ``console``)."""
    columns: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if speed:
        columns.append(SpeedColumn())
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), *extra]
    return Progress(*columns, console=console or err_console, transient=False, disable=disable, **kwargs)


@contextlib.contextmanager
def stderr_progress() -> Iterator[Callable[[str], Callable[[int, int], None]]]:
    """A progress display on stderr; yields ``new_task(description) -> progress(done, total)``."""
    with progress_bar() as progress:

        def new_task(description: str) -> Callable[[int, int], None]:
            task_id = progress.add_task(escape(description), total=None)

            def update(done: int, total: int) -> None:
                progress.update(task_id, completed=done, total=total)

            return update

        yield new_task
