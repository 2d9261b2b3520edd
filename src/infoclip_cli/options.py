"""Option definitions shared by the commands, so that ``segment``, ``eval`` and ``train`` spell, document and
accept them the same way (one place for metavars and help; the values are ``infoclip.runtime``'s)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from infoclip.runtime import DEVICE_CHOICES

DEVICE_HELP = f"Device: {', '.join(DEVICE_CHOICES)} (auto: CUDA when available, else CPU)."
CLASSES_HELP = "Class names: 'cat,sofa,floor', or @names.txt (one per line) / @names.json (a JSON list)."

#: ``--device DEVICE`` (default ``auto``)
Device = Annotated[str, typer.Option("--device", metavar="DEVICE", help=DEVICE_HELP)]
#: ``--classes CLASSES`` / ``-c`` in the forms of ``infoclip.segmentation.classes.parse_classes``
Classes = Annotated[Optional[str], typer.Option("--classes", "-c", metavar="CLASSES", help=CLASSES_HELP)]
