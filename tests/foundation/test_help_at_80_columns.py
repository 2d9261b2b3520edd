"""Help and tables in an 80-column terminal (or a pipe): every command shows examples that paste as they are,
and no table cuts a name short."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from infoclip_cli.main import app

ROOT = typer.main.get_command(app)


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = []
    for name, command in group.commands.items():
        here = (*path, name)
        if hasattr(command, "commands"):  # a group (typer may bring its own click)
            if command.params:  # a group with options of its own runs by itself
                found.append((here, command))  # `infoclip miniature`
            found.extend(_commands(command, here))
        else:
            found.append((here, command))
    return found


COMMANDS = _commands(ROOT)


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    return result.output


def _examples(text: str) -> list[str]:
    """The example commands of a help text, continuation lines joined."""
    lines = text.split("Examples:", 1)[1].splitlines()
    commands, current = [], ""
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        current += stripped
        if current.endswith("\\"):
            current = current[:-1]
        else:
            commands.append(current)
            current = ""
    return commands


def _options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_examples_that_paste_as_they_are(path, command):
    text = _help(path)
    assert "Examples:" in text, f"infoclip {' '.join(path)} --help has no examples"
    example_block = text.split("Examples:", 1)[1]
    assert all(len(line) <= 80 for line in example_block.splitlines()), "an example line is wider than 80"
    examples = _examples(text)
    assert examples
    for example in examples:
        argv = shlex.split(example, comments=True)
        if argv[0] == "torchrun":
            argv = ["infoclip", *argv[argv.index("infoclip_cli") + 1 :]]
        assert argv[0] == "infoclip" and tuple(argv[1 : 1 + len(path)]) == path, example
        known = _options(command)
        for token in argv[1 + len(path) :]:
            if token.startswith("-"):
                assert token.split("=")[0] in known, f"{example}: {token} is not an option of {' '.join(path)}"


def _table_output(args: list[str]) -> str:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"}, terminal_width=80)
    return result.output


def test_tables_fold_names_instead_of_cutting_them_at_80_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("INFOCLIP_DATASETS", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "80")
    for args in (["adapters", "list"], ["data", "check"], ["data", "list"], ["weights", "list"]):
        text = _table_output(args)
        assert "…" not in text, f"infoclip {' '.join(args)} truncates a cell:\n{text}"
        table = [line for line in text.splitlines() if line[:1] in "┏┃┡│└" or line.startswith(" ")]
        assert all(len(line) <= 80 for line in table), text
    listing = _table_output(["adapters", "list"])
    joined = "".join(line.split("│")[1].strip() for line in listing.splitlines() if line.startswith("│"))
    assert "infoclip.adapters.catseg" in joined, "the folded plugin name reads whole, column by column"
    check = _table_output(["data", "check"])
    assert "coco171" in check and "missing" in check, "dataset names and states stay on one line"
