"""Library errors speak the library's language; the command line adds the flags.

A library message names public arguments (``parameter``, and backticked ``mentions``), never a ``--flag``;
``infoclip_cli.errors.command_line_message`` shows them as flags. A source scan keeps flags out of the
library's raises.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from infoclip import errors
from infoclip.errors import CheckpointError, ConfigError, DatasetError, InfoclipError, InputError
from infoclip_cli.errors import command_line_message, flag_of

LIBRARY = Path(__file__).resolve().parents[2] / "src" / "infoclip"

#: a command-line flag inside a text (not an em-dash ``--`` or a ``---`` rule)
FLAG = re.compile(r"(?<![\w-])--[a-z][\w-]*")

#: (module, flag) pairs a library raise may hold, because they are no hint at an infoclip flag
NOT_FLAG_HINTS = {
    # torchrun's own launcher option: the way to start one process per GPU, which no infoclip argument sets
    ("training/distributed.py", "--nproc_per_node"),
    # inside the full command that regenerates a shipped asset (a maintainer's fix, not an argument of the call)
    ("miniature/tiny_clip.py", "--output"),
    ("miniature/tiny_clip.py", "--architecture"),
}

ERROR_NAMES = {name for name, value in vars(errors).items() if isinstance(value, type) and issubclass(value, Exception)}


def _texts(node: ast.AST) -> str:
    return "".join(sub.value for sub in ast.walk(node) if isinstance(sub, ast.Constant) and isinstance(sub.value, str))


def _error_messages(tree: ast.AST) -> list[tuple[int, str]]:
    """The message texts of every ``raise`` and of every infoclip error built elsewhere (returned, yielded)."""
    def builds_error(node: ast.AST) -> bool:
        return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ERROR_NAMES

    found = []
    for node in ast.walk(tree):
        if builds_error(node):
            found.append((node.lineno, _texts(node)))
        elif isinstance(node, ast.Raise) and node.exc is not None and not builds_error(node.exc):
            found.append((node.lineno, _texts(node.exc)))  # a message built beforehand, or another exception type
    return found


def test_no_library_raise_names_a_command_line_flag():
    offenders = []
    for path in sorted(LIBRARY.rglob("*.py")):
        module = path.relative_to(LIBRARY).as_posix()
        for line, text in _error_messages(ast.parse(path.read_text(encoding="utf-8"))):
            flags = {flag for flag in FLAG.findall(text) if (module, flag) not in NOT_FLAG_HINTS}
            if flags:
                offenders.append(f"{module}:{line}: {', '.join(sorted(flags))}")
    assert not offenders, (
        "library errors name the public argument (parameter=..., backticked mentions), and the CLI shows its flag:\n"
        + "\n".join(offenders)
    )


def test_the_scan_sees_flags_in_raises_and_built_errors():
    tree = ast.parse(
        "def f():\n"
        "    raise InputError(f'{x} exists; pass --force')\n"
        "def g():\n"
        "    return InputError('give --classes ' + 'names')\n"
        "def h():\n"
        "    raise InputError('a range -- not a flag', parameter='device')\n"
    )
    flagged = [FLAG.findall(text) for _, text in _error_messages(tree)]
    assert [f for f in flagged if f] == [["--force"], ["--classes"]]


def test_allowlisted_flags_are_still_there():
    """An allowlist entry whose text is gone would silently allow the flag elsewhere in that module: drop it."""
    for module, flag in NOT_FLAG_HINTS:
        texts = [text for _, text in _error_messages(ast.parse((LIBRARY / module).read_text(encoding="utf-8")))]
        assert any(flag in text for text in texts), (module, flag)


def _raised(call) -> InfoclipError:  # noqa: ANN001 - a zero-argument callable
    with pytest.raises(InfoclipError) as info:
        call()
    assert not FLAG.search(str(info.value)), f"the library message names a flag: {info.value}"
    return info.value


def _run_folder(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("adapter: catseg\n", encoding="utf-8")
    return run


def test_class_list_errors_name_the_classes_argument(tmp_path):
    from infoclip.segmentation.classes import parse_classes, resolve_classes

    empty = _raised(lambda: parse_classes("  "))
    assert isinstance(empty, InputError) and empty.parameter == "classes"
    assert command_line_message(empty) == (
        'the class list is empty: give names like --classes "cat,sofa" or a file as --classes @names.txt'
    )
    blank = _raised(lambda: parse_classes("cat,,sofa"))
    assert blank.parameter == "classes"
    assert command_line_message(blank).startswith("--classes 'cat,,sofa' has 1 empty or blank class name(s)")
    listed = _raised(lambda: parse_classes(["cat", "Cat"]))
    assert listed.parameter == "classes" and command_line_message(listed).startswith("--classes: class list repeats")
    both = _raised(lambda: resolve_classes("cat", "ade150"))
    assert both.parameter == "classes" and both.mentions == ("vocab",)
    assert 'either as --classes "cat,sofa"' in command_line_message(both) and "or as --vocab NAME" in command_line_message(both)


def test_clip_spec_errors_name_the_clip_choice():
    from infoclip.segmentation.baseline import parse_clip_spec

    malformed = _raised(lambda: parse_clip_spec("ViT-B-16"))
    assert isinstance(malformed, InputError) and malformed.parameter == "clip"
    assert command_line_message(malformed).startswith("--clip: a CLIP is named MODEL:TAG such as ViT-B-16:openai")
    unknown = _raised(lambda: parse_clip_spec("ViT-Q-99:openai"))
    assert unknown.parameter == "clip" and "unknown CLIP architecture 'ViT-Q-99'" in str(unknown)


def test_run_folder_errors_name_the_trainer_arguments(tmp_path):
    from infoclip.training.run_config import prepare_run_config

    run = _run_folder(tmp_path)
    both = _raised(lambda: prepare_run_config(run, "catseg-tiny", resume=True, overwrite=True))
    assert isinstance(both, ConfigError) and (both.parameter, both.mentions) == ("resume", ("overwrite",))
    assert command_line_message(both).startswith("--resume continues a run and --overwrite starts it again")
    taken = _raised(lambda: prepare_run_config(run, "catseg-tiny"))
    assert (taken.parameter, taken.mentions) == ("run_dir", ("resume", "overwrite"))
    assert command_line_message(taken) == (
        f"{run} already holds a training run; pass --resume to continue it, --overwrite to start it again from "
        "scratch, or choose another --output-dir"
    )
    no_config = _raised(lambda: prepare_run_config(tmp_path / "fresh", None))
    assert no_config.parameter == "config" and command_line_message(no_config).startswith("--config: a new run needs a config")
    stopped = _raised(lambda: prepare_run_config(run, None, resume=True))
    assert isinstance(stopped, CheckpointError) and command_line_message(stopped).endswith("start it again with --overwrite")
    nothing = _raised(lambda: prepare_run_config(tmp_path / "empty", None, resume=True))
    assert command_line_message(nothing).endswith("holds no training checkpoint; start the run without --resume")


def test_adapter_mismatch_names_the_adapter_argument(tmp_path):
    from infoclip.training.run_config import resolve_run_config

    config = tmp_path / "run.yaml"
    config.write_text("adapter: catseg\n", encoding="utf-8")
    mismatch = _raised(lambda: resolve_run_config(config, adapter="san"))
    assert isinstance(mismatch, ConfigError) and mismatch.parameter == "adapter"
    assert command_line_message(mismatch).startswith("--adapter: adapter san does not match adapter: catseg in")


def test_data_and_miniature_folders_name_their_arguments(tmp_path):
    from infoclip.data.custom import load_custom_spec
    from infoclip.data.prepare import staged_folder
    from infoclip.miniature import prepare_output_dir

    target = tmp_path / "labels"
    target.mkdir()
    (target / "a.png").write_bytes(b"")

    def stage() -> None:
        with staged_folder(target, overwrite=False):
            pass

    full = _raised(stage)
    assert isinstance(full, DatasetError) and full.parameter == "overwrite"
    assert command_line_message(full).startswith(f"--overwrite: {target} already exists and is not empty")
    undescribed = _raised(lambda: load_custom_spec(tmp_path))
    assert undescribed.parameter == "dataset"
    assert command_line_message(undescribed).startswith(f"--dataset: {tmp_path} has no dataset.yaml")
    assert command_line_message(undescribed).endswith("or give its --images, --labels and --classes")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    not_folder = _raised(lambda: prepare_output_dir(a_file))
    assert command_line_message(not_folder) == f"--output-dir: {a_file} is a file; give a folder"
    (tmp_path / "results.json").write_text("{}", encoding="utf-8")
    earlier = _raised(lambda: prepare_output_dir(tmp_path))
    assert (earlier.parameter, earlier.mentions) == ("output_dir", ("force",))
    assert command_line_message(earlier).endswith("pass --force to replace it or choose another --output-dir")


def test_the_command_line_shows_only_the_arguments_an_error_names():
    plain = InputError("out.safetensors exists; allow overwriting it to replace it", parameter="force")
    assert command_line_message(plain) == "--force: out.safetensors exists; allow overwriting it to replace it"
    assert command_line_message(InputError("no parameter here")) == "no parameter here"
    keys = DatasetError("data.yaml needs `images` and `labels` folders")  # YAML keys, not arguments
    assert command_line_message(keys) == "data.yaml needs `images` and `labels` folders"
    valued = InputError("give `limit=5` or `device=cpu`, not `precision`", parameter="limit", mentions=("device",))
    assert command_line_message(valued) == "give --limit 5 or --device cpu, not `precision`"
    assert flag_of("run_dir") == "--output-dir" and flag_of("overrides") == "--set" and flag_of("image_limit") == "--image-limit"
