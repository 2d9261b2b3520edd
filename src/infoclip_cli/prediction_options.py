"""The prediction options ``segment`` and ``eval`` share (``infoclip.segmentation.options.SegmentOptions``):
their flag definitions, and one builder that names the offending flag in the one-line error."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

TemplatesFlag = Annotated[
    str,
    typer.Option(
        "--templates",
        help="Prompt template set: trained (the model's own, default), imagenet80, imagenet7, vild14, or a file "
        "@templates.txt (one per line); several templates are averaged as CLIP does.",
    ),
]
SynonymRuleFlag = Annotated[
    str, typer.Option("--synonym-rule", help="How a class's synonyms ('sofa|couch') are scored: max (default) or mean.")
]
SplitSynonymsFlag = Annotated[
    bool,
    typer.Option("--split-synonyms", help="Also treat ', ' in names (the benchmark vocabularies' synonyms) as synonyms."),
]
BackgroundFlag = Annotated[
    Optional[float],
    typer.Option(
        "--background-threshold",
        help="Pixels whose best score is below T (in [0, 1]) become background (label value 255, or 65535 in "
        "uint16 maps; grey in the overlay). Default: off.",
    ),
]
ExpandVocabFlag = Annotated[
    Optional[str],
    typer.Option(
        "--expand-vocab",
        help="Also score the names of coco, coco-stuff or ade150; pixels they win get one extra id, 'other'.",
    ),
]
TTAFlag = Annotated[
    str, typer.Option("--tta", help="Test-time augmentation: none (default), flip, or ms (scales 0.75/1/1.25, each flipped).")
]
TextCacheFlag = Annotated[
    bool,
    typer.Option(
        "--text-cache",
        help="Cache class text embeddings on disk (in --text-cache-dir) so a later run with the same weights, "
        "templates and classes skips the text tower.",
    ),
]
TextCacheDirFlag = Annotated[
    Optional[Path],
    typer.Option("--text-cache-dir", help="Folder of the text-embedding cache (default: $INFOCLIP_CACHE/text or ~/.cache/infoclip/text)."),
]


def build_options(
    templates: str, synonym_rule: str, split_synonyms: bool, background_threshold: float | None,
    expand_vocab: str | None, tta: str,
):  # noqa: ANN201 - SegmentOptions, imported lazily (fast --help)
    """``SegmentOptions`` from the flags; a bad value raises ``InputError`` naming its flag."""
    from infoclip.errors import InputError
    from infoclip.segmentation.background import check_threshold, expansion_names
    from infoclip.segmentation.options import SegmentOptions
    from infoclip.segmentation.synonyms import check_rule
    from infoclip.segmentation.templates import resolve_templates
    from infoclip.segmentation.tta import check_tta

    checks = (
        ("--templates", lambda: resolve_templates(templates)),
        ("--synonym-rule", lambda: check_rule(synonym_rule)),
        ("--background-threshold", lambda: check_threshold(background_threshold)),
        ("--expand-vocab", lambda: expand_vocab is None or expansion_names(expand_vocab, [])),
        ("--tta", lambda: check_tta(tta)),
    )
    for flag, check in checks:
        try:
            check()
        except InputError as exc:
            raise InputError(f"{flag}: {exc}") from exc
    return SegmentOptions(templates, synonym_rule, split_synonyms, background_threshold, expand_vocab, tta)


def text_cache_folder(enabled: bool, folder: Path | None) -> Path | None:
    """The cache folder when ``--text-cache`` (or a ``--text-cache-dir``) is given, else ``None``."""
    from infoclip.segmentation.text_cache import default_cache_dir

    if folder is not None:
        return folder
    return default_cache_dir() if enabled else None


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Show warnings raised inside as one ``warning: ...`` line each on stderr (not Python's two-line form)."""
    from infoclip_cli.app import err_console

    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        err_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous
