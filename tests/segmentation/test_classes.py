"""Class lists: inline, files, shipped vocabularies; bad lists refused with the offending names."""

from __future__ import annotations

import json

import pytest

from infoclip.errors import InputError
from infoclip.segmentation.classes import (
    display_name,
    load_vocabulary,
    parse_classes,
    resolve_classes,
    shipped_vocabularies,
)


def test_inline_list_is_split_and_stripped():
    assert parse_classes(" cat, sofa ,floor") == ["cat", "sofa", "floor"]
    assert parse_classes("cat") == ["cat"]


def test_sequences_are_validated_not_split():
    assert parse_classes(["building, edifice", "sky"]) == ["building, edifice", "sky"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cat,,sofa", r"blank class name\(s\) at position #2"),
        ("cat,sofa,", r"at position #3"),
        ("  ", "the class list is empty"),
        ("cat, ,dog", r"at position #2"),
        ("cat,sofa,Cat", r"repeats class names .*'cat' at #1, #3"),
        ("big  dog,big dog", r"'big dog' at #1, #2"),
    ],
)
def test_bad_inline_lists_name_the_offenders(spec, message):
    with pytest.raises(InputError, match=message):
        parse_classes(spec)


def test_bad_sequences():
    with pytest.raises(InputError, match="is empty"):
        parse_classes([])
    with pytest.raises(InputError, match="must be strings"):
        parse_classes(["a", 3])


def test_text_and_json_files(tmp_path):
    (tmp_path / "names.txt").write_text("# my classes\ncat\n\nbuilding, edifice\n  sofa  \n", encoding="utf-8")
    assert parse_classes(f"@{tmp_path / 'names.txt'}") == ["cat", "building, edifice", "sofa"]
    (tmp_path / "names.json").write_text(json.dumps(["cat", "building, edifice"]), encoding="utf-8")
    assert parse_classes(f"@{tmp_path / 'names.json'}") == ["cat", "building, edifice"]


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="class file not found"):
        parse_classes(f"@{tmp_path / 'missing.txt'}")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        parse_classes(f"@{tmp_path / 'bad.json'}")
    (tmp_path / "dict.json").write_text('{"a": 1}', encoding="utf-8")
    with pytest.raises(InputError, match="JSON list of strings"):
        parse_classes(f"@{tmp_path / 'dict.json'}")
    (tmp_path / "dup.json").write_text('["cat", "dog", "cat"]', encoding="utf-8")
    with pytest.raises(InputError, match=r"dup\.json repeats class names.*'cat' at #1, #3"):
        parse_classes(f"@{tmp_path / 'dup.json'}")
    (tmp_path / "blank.json").write_text('["cat", " "]', encoding="utf-8")
    with pytest.raises(InputError, match=r"blank class name\(s\) at position #2"):
        parse_classes(f"@{tmp_path / 'blank.json'}")
    (tmp_path / "empty.txt").write_text("\n# nothing\n", encoding="utf-8")
    with pytest.raises(InputError, match="is empty"):
        parse_classes(f"@{tmp_path / 'empty.txt'}")


def test_shipped_vocabularies_are_their_json_lists():
    assert {"ade150", "ade847", "coco", "pc59", "pc459", "voc20", "voc20b"} <= set(shipped_vocabularies())
    ade847 = load_vocabulary("ade847")
    assert len(ade847) == 847 and "building, edifice" in ade847  # never split on commas
    ade150 = load_vocabulary("ade150")
    assert len(ade150) == 150 and "bed " in ade150  # kept exactly as the benchmark uses it
    assert len(load_vocabulary("coco")) == 171


def test_resolve_needs_exactly_one_source():
    assert resolve_classes(vocab="voc20")[:2] == ["aeroplane", "bicycle"]
    assert resolve_classes(classes="a,b") == ["a", "b"]
    with pytest.raises(InputError, match="not both and not neither"):
        resolve_classes()
    with pytest.raises(InputError, match="not both"):
        resolve_classes(classes="a", vocab="voc20")
    with pytest.raises(InputError, match="unknown vocabulary 'ade151'; shipped vocabularies: ade150, ade847"):
        resolve_classes(vocab="ade151")


def test_display_name_is_the_first_synonym():
    assert display_name("building, edifice") == "building"
    assert display_name("bed ") == "bed"
