"""``infoclip segment``: segment your own images with your own class names, and see the result."""

from __future__ import annotations

import errno
import glob
import json
import re
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from infoclip.runtime import DEFAULT_PRECISION, PRECISIONS, check_device_word
from infoclip_cli.app import err_console, examples, note, out_console
from infoclip_cli.options import Classes, Device
from infoclip_cli import prediction_options as opt

EXAMPLES = examples(
    'infoclip segment photo.jpg --classes "cat,sofa,floor"   # model: catseg-b16',
    "infoclip segment photos/ --vocab ade150 --weights catseg-l14 \\\n    -o out/ --save-probs",
    'infoclip segment photo.jpg -c "cat,sofa" \\\n    --weights model_base.pth   # an official checkpoint, converted once',
    "infoclip segment photo.jpg --classes @names.txt --clip ViT-B-16:openai",
)

_GLOB_CHARS = set("*?[")
_TABLE_ROWS = 10


#: --weights and --clip, as every command that runs a segmentation model takes them
WeightsOption = Annotated[
    str | None,
    typer.Option(
        "--weights", "-w",
        help="Segmentation weights: a name (`infoclip weights list`; downloaded once), hf:ORG/REPO/FILE[@REV], "
        "an infoclip .safetensors file or an official checkpoint (converted once). Default: catseg-b16.",
    ),
]
ClipOption = Annotated[
    str | None,
    typer.Option(
        help="No weights: run the training-free dense-CLIP baseline of this CLIP, MODEL:TAG (e.g. ViT-B-16:openai), "
        "MODEL:/path/to/clip_weights or MODEL:none (random, for testing).",
    ),
]


#: ``--precision`` choices, the words of ``infoclip.runtime.PRECISIONS``
Precision = Enum("Precision", {word: word for word in PRECISIONS}, type=str)


def collect_images(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand files, folders (their image files, not recursive) and glob patterns into image paths.

    Returns ``(paths, problems)``: paths in the order given (folders and globs sorted), each file once;
    one problem line per input that yields nothing.
    """
    from infoclip.segmentation.images import IMAGE_EXTENSIONS

    paths: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        try:
            key = path.resolve()
        except (RuntimeError, OSError) as exc:  # a symbolic-link loop (RuntimeError before Python 3.13)
            problems.append(f"{path}: cannot follow this path ({_why_unresolvable(exc)})")
            return
        if key not in seen:
            seen.add(key)
            paths.append(path)

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                problems.append(f"{path}: folder holds no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            for p in found:
                add(p)
        elif path.exists() or path.is_symlink():  # a dangling or looping link is reported by add()/the reader
            add(path)
        elif not (_GLOB_CHARS & set(item)):
            problems.append(f"{path}: image not found")  # reported at once; the other images still run
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                problems.append(f"{item}: no file matches this pattern")
            for p in files:
                add(p)
    return paths, problems


def _why_unresolvable(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "symbolic link loop"
    return getattr(exc, "strerror", None) or str(exc)


#: what each ``save`` option writes besides the label map and the summary (SegmentationResult.save's kinds)
_OPTIONAL_OUTPUTS = ("overlay", "probs")


def mixing_outputs(folder: Path, planned: dict[str, Path], settings: dict[str, object], writes: set[str]) -> list[str]:
    """What an earlier ``segment`` run left in ``folder`` that this run would leave mixed with its own outputs.

    Args:
        folder: the output folder.
        planned: output stem -> image path of this run.
        settings: summary fields that must agree (classes, weights, protocol, template).
        writes: the optional output kinds this run writes (``"overlay"``, ``"probs"``).

    Returns:
        One short description per kind of mix (empty when nothing would mix).
    """
    others, different, stale = [], [], []
    for summary in sorted(folder.glob("*.json")):
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict) or "classes" not in data:
            continue  # not a segment summary
        stem = summary.stem
        if stem not in planned:
            others.append(stem)
            continue
        if data.get("image") != str(planned[stem]):
            different.append(f"{stem} (another image)")
            continue
        changed = [key for key, value in settings.items() if data.get(key) != value]
        if changed:
            different.append(f"{stem} ({', '.join(changed)})")
        stale.extend(
            name for kind, name in data["outputs"].items() if kind in _OPTIONAL_OUTPUTS and kind not in writes
        )

    def some(items: list[str]) -> str:
        return ", ".join(items[:3]) + (f" (+{len(items) - 3} more)" if len(items) > 3 else "")

    lines = []
    if others:
        lines.append(f"outputs of {len(others)} other image(s): {some(others)}")
    if different:
        lines.append(f"outputs made with other settings that this run replaces: {some(different)}")
    if stale:
        lines.append(f"files of an earlier run this run does not rewrite: {some(stale)}")
    return lines


def output_stems(paths: Sequence[Path]) -> list[str]:
    """One output stem per image: the file stem, with ``-2``, ``-3``... when two images share a stem."""
    counts: dict[str, int] = {}
    stems = []
    taken = set()
    for path in paths:
        stem = path.stem or "image"
        n = counts.get(stem, 0)
        candidate = stem if n == 0 else f"{stem}-{n + 1}"
        while candidate in taken:
            n += 1
            candidate = f"{stem}-{n + 1}"
        counts[stem] = n + 1
        taken.add(candidate)
        stems.append(candidate)
    return stems


def result_table(result, colours) -> Group:  # noqa: ANN001 - SegmentationResult, (T, 3) uint8
    """A small table of the classes present, largest share first."""
    from infoclip.segmentation.classes import display_name
    from infoclip.segmentation.outputs import BACKGROUND_GREY

    height, width = result.labels.shape
    kind = "training-free CLIP baseline" if result.is_baseline else "model"
    title = f"{result.extra.get('image_path', result.name)}  {width}x{height}, {result.protocol}, {kind}, {result.seconds:.2f} s"
    table = Table()
    table.add_column("", width=2)
    table.add_column("class")
    table.add_column("share", justify="right")
    shares = sorted(((s, i) for i, s in enumerate(result.shares.values()) if s > 0), reverse=True)
    for share, index in shares[:_TABLE_ROWS]:
        if index < len(result.classes):
            r, g, b = (int(c) for c in colours[index])
            name = display_name(result.classes[index].split("|")[0])
        else:  # the background share, after the classes (a background threshold)
            (r, g, b), name = BACKGROUND_GREY, "(background)"
        table.add_row(Text("  ", style=f"on rgb({r},{g},{b})"), Text(name), f"{100 * share:.1f}%")
    if len(shares) > _TABLE_ROWS:
        rest = sum(s for s, _ in shares[_TABLE_ROWS:])
        table.add_row("", Text(f"+ {len(shares) - _TABLE_ROWS} more classes"), f"{100 * rest:.1f}%")
    return Group(Text(title, style="bold"), table)


def segment(
    images: Annotated[
        list[str], typer.Argument(help="Image files, folders (their images) or glob patterns such as 'photos/*.jpg'.")
    ],
    classes: Classes = None,
    vocab: Annotated[
        str | None, typer.Option(help="A shipped vocabulary instead of --classes: ade150, ade847, coco, pc59, pc459, voc20, voc20b, or one an adapter contributes.")
    ] = None,
    weights: WeightsOption = None,
    clip: ClipOption = None,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for the outputs.")] = Path("segment_output"),
    device: Device = "auto",
    precision: Annotated[
        Precision, typer.Option(help="fp32; bf16 (autocast, CPU or GPU); fp16 (GPU only).")
    ] = Precision(DEFAULT_PRECISION),
    protocol: Annotated[
        str | None,
        typer.Option(metavar="PROTOCOL", help="The model's evaluation protocol (default: its published one). CAT-Seg: "
                     "sliding (overlapping windows + a global view) or whole (one view)."),
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Prompt template with {} for the class name (default: 'A photo of a {} in the scene').")
    ] = None,
    save_probs: Annotated[
        bool, typer.Option("--save-probs", help="Also write <stem>_probs.npy: float32 (classes, height, width) scores, "
                           "4 bytes per class per pixel (157 MB for 512x512 with 150 classes; --probs-dtype float16 halves it). CAT-Seg's are per-class "
                           "sigmoid scores (they do not sum to 1 over the classes); SAN's are its semantic map before the "
                           "argmax; <stem>.json says which.")
    ] = False,
    probs_dtype: Annotated[
        str, typer.Option("--probs-dtype", help="dtype of --save-probs files: float32 (default) or float16 (half the size).")
    ] = "float32",
    indexed_png: Annotated[
        bool, typer.Option("--indexed-png", help="Write the label map as a palette PNG (same values, overlay colours; <= 255 classes).")
    ] = False,
    rle: Annotated[
        bool, typer.Option("--rle", help="Also write COCO RLE masks: <stem>_rle.json and sem_seg_predictions.json (detectron2's layout).")
    ] = False,
    templates: opt.TemplatesFlag = "trained",
    synonym_rule: opt.SynonymRuleFlag = "max",
    split_synonyms: opt.SplitSynonymsFlag = False,
    background_threshold: opt.BackgroundFlag = None,
    expand_vocab: opt.ExpandVocabFlag = None,
    tta: opt.TTAFlag = "none",
    text_cache: opt.TextCacheFlag = False,
    text_cache_dir: opt.TextCacheDirFlag = None,
    overlay: Annotated[bool, typer.Option("--overlay/--no-overlay", help="Write <stem>_overlay.png.")] = True,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Opacity of the class colours in the overlay.")] = 0.5,
    max_pixels: Annotated[
        int | None,
        typer.Option(
            "--max-pixels", min=1, metavar="N",
            help="Refuse images larger than N pixels (width x height) before decoding them; default 64000000, "
            "or the INFOCLIP_MAX_PIXELS environment variable.",
        ),
    ] = None,
) -> None:
    """Segment images with your own class names.

    Per image it writes into --output-dir: <stem>.png, the label map (pixel value = index of the class in the
    list; uint8, or uint16 above 255 classes), <stem>_overlay.png (colours over the image, with a legend),
    <stem>.json (classes, pixel shares, weights, protocol) and, with --save-probs, <stem>_probs.npy. It prints
    one table per image. An image that cannot be read, is larger than --max-pixels or does not fit in memory is
    reported by name and skipped while the others run; the exit code is then 1. A warning says when the output
    folder already holds outputs of another run that would mix with this one's.
    """
    # Everything that can be checked without torch is checked first: a usage error answers at once.
    from infoclip.errors import InputError
    from infoclip.segmentation.classes import resolve_classes

    set_pixel_limit(max_pixels)
    class_names = resolve_classes(classes, vocab)
    if expand_vocab is not None:
        from infoclip.segmentation.background import expansion_names

        try:  # an unknown vocabulary or an "other" class fails before torch is imported
            expansion_names(expand_vocab, class_names)
        except InputError as exc:
            raise InputError(f"--expand-vocab: {exc}") from exc
    check_model_choice(weights, clip)
    if template is not None and template.count("{}") != 1:
        raise InputError(f"--template must contain {{}} exactly once, e.g. 'a photo of a {{}}.', got {template!r}")
    check_device_word(device)
    paths, problems = collect_images(images)
    for line in problems:
        err_console.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
    if not paths:
        raise InputError("no image to segment: " + "; ".join(problems))

    from infoclip.segmentation.overlay import palette
    from infoclip.runtime import check_precision, resolve_device
    from infoclip.segmentation.segmenter import check_output_dir

    check_precision(precision.value, resolve_device(device))
    options = opt.build_options(templates, synonym_rule, split_synonyms, background_threshold, expand_vocab, tta)
    if probs_dtype not in ("float32", "float16"):
        raise InputError(f"--probs-dtype must be float32 or float16, not {probs_dtype!r}")
    from infoclip.segmentation.synonyms import expand_synonyms

    try:
        expand_synonyms(class_names, split_synonyms)
    except InputError as exc:
        raise InputError(f"--classes: {exc}") from exc
    cache_dir = opt.text_cache_folder(text_cache, text_cache_dir)
    if weights is None and clip is None:
        weights = announce_default_weights()
    created = not Path(output_dir).exists()
    folder = check_output_dir(output_dir)  # before the (slow) model load: a bad folder fails fast
    stems = output_stems(paths)
    inputs = {p.resolve() for p in paths}
    for stem in stems:
        for suffix in (".png", "_overlay.png", ".json", "_probs.npy", "_rle.json"):
            if (folder / f"{stem}{suffix}").resolve() in inputs:
                raise InputError(f"{folder / (stem + suffix)} would overwrite an input image; choose another --output-dir")

    try:
        segmenter = load_segmenter(
            weights, clip, device, precision.value, protocol, template, options=options, text_cache=cache_dir
        )
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # leave no trace of a run that never started
        raise

    settings = {"classes": class_names, "weights": segmenter.source, "protocol": segmenter.protocol, "template": segmenter.template,
                "options": options.describe()}
    writes = {kind for kind, on in (("overlay", overlay), ("probs", save_probs)) if on}
    mixed = mixing_outputs(folder, dict(zip(stems, map(str, paths))), settings, writes)
    if mixed:
        err_console.print(
            f"warning: {folder} already holds segment outputs of another run ({'; '.join(mixed)}); the folder will "
            "mix both runs: use a new --output-dir to keep them apart",
            markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip
    colours = palette(len(class_names) + (1 if expand_vocab else 0))
    rle_records: list[dict] = []
    failures: list[str] = []
    failures.extend(problems)
    progress = _progress(len(paths))
    with progress, opt.one_line_warnings():
        task = progress.add_task("segmenting", total=len(paths))
        for path, stem in zip(paths, stems):
            try:
                result = segmenter.predict(path, class_names)
                if save_probs:
                    size = result.probs.nbytes // (2 if probs_dtype == "float16" else 1)
                    _announce_probs(progress.console, size, folder / f"{stem}_probs.npy")
                result.save(
                    folder, stem=stem, save_probs=save_probs, overlay=overlay, alpha=alpha, probs_dtype=probs_dtype,
                    indexed=indexed_png, rle=rle,
                )
                if rle:
                    rle_records.extend(result.to_coco_rle())
            except InputError as exc:
                failures.append(str(exc).splitlines()[0] + _max_pixels_hint(exc))
                progress.console.print(f"error: {failures[-1]}", markup=False, highlight=False, soft_wrap=True)
            except (MemoryError, RuntimeError) as exc:
                if not _out_of_memory(exc):
                    raise
                # one image too large for this machine must not stop the rest of the batch
                failures.append(f"{path}: out of memory while segmenting it; try --protocol whole or a smaller image")
                progress.console.print(f"error: {failures[-1]}", markup=False, highlight=False, soft_wrap=True)
            else:
                out_console.print(result_table(result, colours))
            progress.advance(task)
    done = len(paths) - (len(failures) - len(problems))
    if rle:
        import json

        from infoclip.io_utils import atomic_write_text

        atomic_write_text(folder / "sem_seg_predictions.json", json.dumps(rle_records) + "\n")
    err_console.print(f"wrote the outputs of {done} image(s) to {folder}", markup=False, highlight=False, soft_wrap=True)
    if failures:
        err_console.print(f"error: {len(failures)} input(s) failed (listed above)", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)


#: --save-probs files at least this large are announced before they are written
LARGE_PROBS_BYTES = 10_000_000


def _announce_probs(console: Any, size: int, path: Path) -> None:
    if size >= LARGE_PROBS_BYTES:
        console.print(f"note: writing {size / 1e6:.0f} MB of per-class scores to {path}", markup=False,
                      highlight=False, soft_wrap=True)  # fmt: skip


def check_model_choice(weights: str | None, clip: str | None) -> None:
    """--weights or --clip, not both; --clip as MODEL:TAG (the commands that run a model share these rules)."""
    from infoclip.errors import InputError

    if weights is not None and clip is not None:
        raise InputError(
            "give either --weights (segmentation weights: a name, hf:ORG/REPO/FILE or a file) or --clip MODEL:TAG "
            "(training-free baseline), not both"
        )
    if clip is not None and not all(part.strip() for part in clip.partition(":")):
        raise InputError(
            f"--clip expects MODEL:TAG such as ViT-B-16:openai (or MODEL:/path/to/weights, or MODEL:none for "
            f"random weights), got {clip!r}"
        )


def load_segmenter(
    weights: str | None, clip: str | None, device: str, precision: str = "fp32", protocol: str | None = None,
    template: str | None = None, options=None, text_cache: Path | None = None,  # noqa: ANN001 - SegmentOptions
):  # noqa: ANN201 - a Segmenter (imported lazily)
    """The ``Segmenter`` of --clip, or of --weights (default: the announced default model), with its notes."""
    from infoclip.segmentation.segmenter import Segmenter

    if clip is not None:
        segmenter = Segmenter.from_clip(clip, device, precision, protocol, template, options, text_cache)
        note(f"no segmentation weights given: this is the training-free dense-CLIP baseline of {clip}")
        return segmenter
    if weights is None:
        weights = announce_default_weights()
    return Segmenter.from_pretrained(weights, device, precision, protocol, template, options, text_cache, notify=note)


def announce_default_weights() -> str:
    """The default weights name, announced in one line (what it is, and that it downloads once)."""
    from infoclip.named_weights import default_name, registered_weights

    name = default_name()
    entry = registered_weights()[name]
    note(
        f"no --weights given: using the default model {name}, {entry.summary} "
        f"({entry.size_mb} MB, downloaded once; other models: infoclip weights list)"
    )
    return name


def set_pixel_limit(max_pixels: int | None) -> None:
    """``--max-pixels``: the library's pixel limit (``INFOCLIP_MAX_PIXELS``), for this process and its workers."""
    import os

    from infoclip.segmentation.images import MAX_PIXELS_ENV

    if max_pixels is not None:
        os.environ[MAX_PIXELS_ENV] = str(max_pixels)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: Python's, CUDA's, or torch's CPU allocator (a RuntimeError)."""
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def _max_pixels_hint(exc: BaseException) -> str:
    from infoclip.segmentation.images import MAX_PIXELS_ENV

    return " (or pass --max-pixels N)" if MAX_PIXELS_ENV in str(exc) else ""


def _progress(total: int):  # noqa: ANN202
    """The shared progress bar on stderr for more than one image; a silent stand-in otherwise."""
    from infoclip_cli.progress import progress_bar

    return progress_bar(disable=total <= 1, console=err_console)


def register(app: typer.Typer) -> None:
    app.command("segment", epilog=EXAMPLES)(segment)
