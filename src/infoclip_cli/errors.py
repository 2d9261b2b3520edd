"""The one place where library errors become one-line messages and exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from infoclip.errors import InfoclipError

DEBUG_ENV = "INFOCLIP_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def flag_of(parameter: str) -> str:
    """The command-line flag of a library parameter: ``image_limit`` -> ``--image-limit``."""
    return "--" + parameter.replace("_", "-")


def report(exc: BaseException) -> int:
    """Print ``exc`` as ``error: [--flag: ]<message>`` on stderr with the debug hint; return the exit code (1).

    The flag hint comes from the error's ``parameter`` (library messages never name flags themselves).
    """
    parameter = getattr(exc, "parameter", None)
    hint = f"{flag_of(parameter)}: " if parameter else ""
    print(f"error: {hint}{one_line(exc)}", file=sys.stderr)
    print(f"(set {DEBUG_ENV}=1 for the full traceback)", file=sys.stderr)
    return 1


def run_mapped(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; turn an ``InfoclipError`` (or a KeyboardInterrupt) into a message and ``SystemExit``.

    Unknown exceptions propagate unchanged: they are bugs, and their traceback is what a bug report needs.
    """
    try:
        return fn()
    except InfoclipError as exc:
        if debug_enabled():
            raise
        raise SystemExit(report(exc)) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
