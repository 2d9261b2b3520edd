"""Class lists for segmentation: parsing, shipped vocabularies, and validation.

Three ways to give classes (``infoclip segment --classes/--vocab`` and ``Segmenter.predict`` share them):

* inline, comma separated: ``"cat, sofa,floor"`` -> ``["cat", "sofa", "floor"]`` (surrounding spaces dropped);
* a file, ``"@names.txt"`` or ``"@names.json"``: a ``.json`` file holds a JSON list of strings; any other file
  holds one class per line (blank lines and lines starting with ``#`` are skipped). Inside a file a name may
  itself contain commas: CAT-Seg reads ``"building, edifice"`` as synonyms and encodes the first one;
* a shipped vocabulary by name (``ade150``, ``ade847``, ``coco``, ``pc59``, ``pc459``, ``voc20``, ``voc20b``): the
  dataset's class list exactly as the benchmark uses it (its JSON list, never split on commas, entries unchanged
  so that results match the published protocol, e.g. ADE-150's ``"bed "`` keeps its trailing space).

Every list is validated: empty or blank names and duplicates (compared case-insensitively with spaces collapsed,
as CLIP's tokenizer sees them) are refused with an ``InputError`` naming them, and so are two names of a list
you give whose first synonyms are equal (the prompt uses only the first one).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from infoclip.errors import InputError

# addressed from the top package: resources.files("infoclip.data") would import the data package (numpy,
# PIL, the readers), which costs half a second before a usage error can be reported
_VOCAB_PACKAGE = "infoclip"
_VOCAB_FOLDER = "data/vocab"


@dataclass(frozen=True)
class Vocabulary:
    """A class vocabulary a plugin contributes (``infoclip_register_vocabularies``): its name and class strings."""

    name: str
    classes: tuple[str, ...]
    summary: str = ""


def contributed_vocabularies() -> dict[str, Vocabulary]:
    """Vocabularies contributed by plugins, by name."""
    from infoclip.plugins import collect_named

    return collect_named("infoclip_register_vocabularies", Vocabulary, InputError, "vocabulary")


def packaged_vocabularies() -> list[str]:
    """Names of the vocabularies in infoclip's own package data, sorted (reading them loads no plugin, no torch)."""
    folder = resources.files(_VOCAB_PACKAGE).joinpath(_VOCAB_FOLDER)
    return sorted(entry.name[: -len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json"))


def shipped_vocabularies() -> list[str]:
    """Names of the class vocabularies shipped with infoclip (``ade150``, ``ade847``, ...) and contributed by
    plugins (adapters' own lists), sorted."""
    files = packaged_vocabularies()
    contributed = contributed_vocabularies()
    clash = sorted(set(files) & set(contributed))
    if clash:
        raise InputError(f"a plugin contributes vocabulary {clash[0]!r}, the name of a shipped one; rename it")
    return sorted({*files, *contributed})


def load_vocabulary(name: str) -> list[str]:
    """The class list of a shipped vocabulary, exactly as stored (see the module docstring).

    Raises:
        InputError: no vocabulary has that name (the message lists the shipped ones).
    """
    if name in packaged_vocabularies():  # without loading plugins: usage errors answer before torch is imported
        text = resources.files(_VOCAB_PACKAGE).joinpath(_VOCAB_FOLDER, f"{name}.json").read_text(encoding="utf-8")
        return validate_class_names(json.loads(text), source=f"vocabulary {name}")
    known = shipped_vocabularies()
    if name not in known:
        raise InputError(f"unknown vocabulary {name!r}; shipped vocabularies: {', '.join(known)}")
    return validate_class_names(list(contributed_vocabularies()[name].classes), source=f"vocabulary {name}")


def _normalised(name: str) -> str:
    return " ".join(name.split()).lower()


def display_name(name: str) -> str:
    """The name to show for a class: its first synonym, without surrounding spaces (``"building, edifice"`` -> ``"building"``)."""
    return name.split(",")[0].strip() or name.strip()


def _prompted(name: str) -> str:
    """What the prompt encodes of a name: its first ``", "``-separated synonym (``infoclip.clip.dense.class_prompts``),
    normalised as CLIP's tokenizer sees it."""
    return _normalised(name.split(", ")[0])


@functools.lru_cache(maxsize=1)
def _shipped_lists() -> frozenset[tuple[str, ...]]:
    folder = resources.files(_VOCAB_PACKAGE).joinpath(_VOCAB_FOLDER)
    return frozenset(
        tuple(json.loads(entry.read_text(encoding="utf-8"))) for entry in folder.iterdir() if entry.name.endswith(".json")
    )


def validate_class_names(names: Sequence[object], source: str = "class list", parameter: str | None = None) -> list[str]:
    """Check a class list and return it as a new list of str.

    Args:
        names: the class names, in label order (label i is ``names[i]``).
        source: where the list came from, for the error message (``"class list"``, a file path, ...).
        parameter: the public argument the list was given as (``"classes"``), recorded on the error.

    Names whose first synonyms are equal (``"building, edifice"`` and ``"building, house"``) get the same
    prompt, so they would compete as one class: they are refused too, except in a shipped benchmark vocabulary
    exactly as shipped (ADE-847 has such pairs, and the published protocol keeps them).

    Raises:
        InputError: the list is empty, an entry is not a string, a name is empty or blank (named by position),
            or names or their first synonyms repeat (named, with their positions).
    """
    if isinstance(names, str):
        raise InputError(f"{source}: expected a list of class names, got one string {names!r}", parameter=parameter)
    names = list(names)
    if not names:
        raise InputError(f"{source} is empty: give at least one class name", parameter=parameter)
    not_strings = [f"#{i + 1} ({type(n).__name__})" for i, n in enumerate(names) if not isinstance(n, str)]
    if not_strings:
        raise InputError(f"{source}: class names must be strings; these are not: {', '.join(not_strings[:5])}", parameter=parameter)
    blank = [i + 1 for i, n in enumerate(names) if not n.strip()]  # type: ignore[union-attr]
    if blank:
        where = ", ".join(f"#{i}" for i in blank[:10])
        raise InputError(f"{source} has {len(blank)} empty or blank class name(s) at position {where}; remove them", parameter=parameter)
    positions: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        positions.setdefault(_normalised(name), []).append(i + 1)  # type: ignore[arg-type]
    repeated = [(key, pos) for key, pos in positions.items() if len(pos) > 1]
    if repeated:
        details = "; ".join(f"{key!r} at #{', #'.join(map(str, pos))}" for key, pos in repeated[:5])
        more = f" (+{len(repeated) - 5} more)" if len(repeated) > 5 else ""
        raise InputError(f"{source} repeats class names (compared ignoring case and spaces): {details}{more}", parameter=parameter)
    prompts: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        prompts.setdefault(_prompted(name), []).append(i)  # type: ignore[arg-type]
    shared = [pos for pos in prompts.values() if len(pos) > 1]
    if shared and tuple(names) not in _shipped_lists():  # type: ignore[arg-type]
        details = "; ".join(" and ".join(f"{names[i]!r} (#{i + 1})" for i in pos) for pos in shared[:3])
        more = f" (+{len(shared) - 3} more)" if len(shared) > 3 else ""
        raise InputError(
            f"{source}: classes share their first synonym, which is the only one the prompt uses, so they would "
            f"compete as one class: {details}{more}; reword or merge them",
            parameter=parameter,
        )
    return [str(n) for n in names]


def _read_class_file(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"class file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read class file {path}: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"class file {path} is not valid JSON ({exc})") from exc
        if not isinstance(data, list):
            raise InputError(f"class file {path} must hold a JSON list of strings, not a {type(data).__name__}")
        return validate_class_names(data, source=f"class file {path}")
    lines = [line.strip() for line in text.splitlines()]
    return validate_class_names([line for line in lines if line and not line.startswith("#")], f"class file {path}")


def parse_classes(spec: str | Sequence[str]) -> list[str]:
    """Turn a class specification into a validated class list.

    Args:
        spec: ``"a,b,c"``, ``"@file.txt"`` / ``"@file.json"``, or an already split sequence of names
            (validated as it is, never split on commas).

    Raises:
        InputError: see ``validate_class_names``; a missing or unreadable class file.
    """
    if not isinstance(spec, str):
        return validate_class_names(spec, source="class list", parameter="classes")
    text = spec.strip()
    if text.startswith("@"):
        return _read_class_file(Path(text[1:]).expanduser())
    if not text:
        raise InputError(
            'the class list is empty: give names like `classes="cat,sofa"` or a file as `classes=@names.txt`',
            parameter="classes",
        )
    parts = [part.strip() for part in text.split(",")]
    return validate_class_names(parts, source=f"`classes={spec!r}`", parameter="classes")


def resolve_classes(classes: str | Sequence[str] | None = None, vocab: str | None = None) -> list[str]:
    """The class list from exactly one of ``classes`` (see ``parse_classes``) and ``vocab`` (a shipped name).

    Raises:
        InputError: both or neither given, or the list is invalid.
    """
    if (classes is None) == (vocab is None):
        raise InputError(
            'give the classes either as `classes="cat,sofa"` (or @file.txt / @file.json) or as `vocab=NAME` '
            f"(one of {', '.join(packaged_vocabularies())}, or one an adapter contributes), not both and not neither",
            parameter="classes",
            mentions=("vocab",),
        )
    if vocab is not None:
        return load_vocabulary(vocab)
    assert classes is not None
    return parse_classes(classes)
