"""Prompt template sets: which sentences a class name is put into before the text tower.

Shipped sets (``--templates NAME``), each a data file in ``template_sets/``:

* ``trained`` (the default): whatever template the model was trained with (CAT-Seg/InfoCLIP: the single
  ``"A photo of a {} in the scene"``). It changes nothing and reproduces the published numbers;
* ``imagenet80``: CLIP's 80 ImageNet templates;
* ``imagenet7``: CLIP's 7-template selection (CAT-Seg's ``IMAGENET_TEMPLATES_SELECT``);
* ``vild14``: ViLD's 14 templates (FC-CLIP's ``VILD_PROMPT``).

A file (``@my_templates.txt`` or a path) holds one template per line (``#`` comments, blank lines skipped).
A set of several templates is applied as CLIP does: each class embedding is the mean of its L2-normalised
prompt embeddings, re-normalised (``OVSSModel.set_prompt_templates(..., ensemble=True)`` in the adapters).
CAT-Seg and InfoCLIP fine-tune CLIP with their one template, so another set is a distribution shift: measure
it (docs/segment-options.md) before relying on it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from infoclip.errors import InputError

#: the name of the set that keeps the model's own (trained) templates
TRAINED = "trained"
_PACKAGE = "infoclip.segmentation"
_FOLDER = "template_sets"


def shipped_template_sets() -> list[str]:
    """Names of the shipped sets, ``trained`` first."""
    folder = resources.files(_PACKAGE).joinpath(_FOLDER)
    return [TRAINED] + sorted(e.name[: -len(".txt")] for e in folder.iterdir() if e.name.endswith(".txt"))


def parse_template_lines(text: str, source: str) -> list[str]:
    """Templates of a file's text: one per line, ``#`` comments and blank lines skipped, each with ``{}`` once.

    Raises:
        InputError: no template, or a line without exactly one ``{}`` (named by line number).
    """
    templates: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.count("{}") != 1:
            raise InputError(f"{source} line {number}: a template must contain {{}} exactly once, got {line!r}")
        templates.append(line.strip())
    if not templates:
        raise InputError(f"{source} holds no template; write one per line, e.g. 'a photo of a {{}}.'")
    return templates


def resolve_templates(spec: str | None) -> list[str] | None:
    """The templates of a set name or file (``@path`` or an existing path); ``None`` for ``trained``/``None``.

    Raises:
        InputError: an unknown set name (the shipped ones listed), an unreadable or invalid file.
    """
    if spec is None or spec == TRAINED:
        return None
    known = shipped_template_sets()
    if spec in known:
        text = resources.files(_PACKAGE).joinpath(_FOLDER, f"{spec}.txt").read_text(encoding="utf-8")
        return parse_template_lines(text, f"template set {spec}")
    path = Path(spec[1:] if spec.startswith("@") else spec)
    if spec.startswith("@") or path.suffix == ".txt" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read the template file {path}: {exc.strerror or exc}") from exc
        return parse_template_lines(text, str(path))
    raise InputError(f"unknown template set {spec!r}; choose one of {', '.join(known)} or give a file @templates.txt")
