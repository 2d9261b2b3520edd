"""Regression tests of issue #18 for dataset descriptions: a YAML alias bomb in ``dataset.yaml``."""

from __future__ import annotations

import pytest

from infoclip.data.custom import load_custom_spec
from infoclip.errors import DatasetError
from tests.memory_limit import refusal_under_limit


def alias_bomb() -> str:
    """A YAML list of nine levels, each nine aliases of the one before: 9^9 = 387 million strings once
    expanded, about 400 bytes on disk (a "billion laughs" file)."""
    levels = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(8):
        levels.append(f"&{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]")
    return "[" + ", ".join(levels) + "]"


def _write(folder, name_line):
    folder.mkdir()
    (folder / "dataset.yaml").write_text(
        f"{name_line}\nclasses: [cat, sky]\nimages: images\nlabels: labels\n", encoding="utf-8"
    )
    return folder


def test_an_alias_bomb_in_the_name_is_refused_quickly_and_in_bounded_memory(tmp_path):
    folder = _write(tmp_path / "ds", f"name: {alias_bomb()}")
    assert (folder / "dataset.yaml").stat().st_size < 1000
    message = refusal_under_limit("infoclip.data.custom.load_custom_spec", "infoclip.errors.DatasetError", str(folder),
                                  timeout=60)  # fmt: skip
    assert "expands to more than" in message


@pytest.mark.parametrize("line", ["name: [a, b]", "title: {x: 1}", "name: 12"])
def test_names_and_titles_must_be_text(tmp_path, line):
    folder = _write(tmp_path / "ds", line)
    with pytest.raises(DatasetError, match="must be a text"):
        load_custom_spec(folder)


def test_a_huge_description_file_is_refused(tmp_path):
    folder = _write(tmp_path / "ds", "name: big")
    (folder / "dataset.yaml").write_text("name: big\n# " + "x" * 1_100_000 + "\nclasses: [a]\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="a dataset description is at most"):
        load_custom_spec(folder)


def test_an_ordinary_description_still_loads(tmp_path):
    folder = _write(tmp_path / "ds", "name: kitchens\ntitle: Kitchens (K)")
    spec = load_custom_spec(folder)
    assert spec.name == "kitchens" and spec.title == "Kitchens (K)" and spec.class_names == ("cat", "sky")
