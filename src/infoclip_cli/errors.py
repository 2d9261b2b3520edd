"""The one place where library errors become one-line messages and exit codes."""

from __future__ import annotations

import os
import re
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


#: library arguments whose flag is not the name with dashes (``image_limit`` -> ``--image-limit``)
FLAGS = {"run_dir": "--output-dir", "overrides": "--set", "clip_spec": "--clip", "selection": "--select-lambda"}

#: an argument named in a library message: `name` or `name=value`
_NAMED_ARGUMENT = re.compile(r"`([A-Za-z_]\w*)(?:=([^`]*))?`")


def flag_of(parameter: str) -> str:
    """The command-line flag of a library argument: ``image_limit`` -> ``--image-limit``, ``run_dir`` -> ``--output-dir``."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def command_line_message(exc: BaseException) -> str:
    """The first line of ``exc``'s message with the library's argument names shown as flags.

    The error's ``parameter`` and ``mentions`` are the arguments it names: `` `resume=True` `` becomes
    ``--resume``, `` `classes="cat,sofa"` `` becomes ``--classes "cat,sofa"``; other backticked words (a YAML
    key, a command) stay. When the message does not name ``parameter`` itself, its flag goes in front:
    ``--force: out.safetensors exists; ...``.
    """
    text = one_line(exc)
    parameter = getattr(exc, "parameter", None)
    named = {name for name in (parameter, *getattr(exc, "mentions", ())) if name}

    def as_flag(match: re.Match[str]) -> str:
        name, value = match.groups()
        if name not in named:
            return match.group(0)
        return flag_of(name) if value in (None, "True") else f"{flag_of(name)} {value}"

    shown = _NAMED_ARGUMENT.sub(as_flag, text)
    names_parameter = any(m.group(1) == parameter for m in _NAMED_ARGUMENT.finditer(text))
    return f"{flag_of(parameter)}: {shown}" if parameter and not names_parameter else shown


def report(exc: BaseException) -> int:
    """Print ``exc`` as ``error: <command_line_message>`` on stderr with the debug hint; return the exit code (1).

    Library messages never name flags themselves: the flags come from the error's ``parameter`` and ``mentions``.
    """
    print(f"error: {command_line_message(exc)}", file=sys.stderr)
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
