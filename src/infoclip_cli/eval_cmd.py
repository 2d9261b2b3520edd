"""``infoclip eval``: score weights on the OVSS benchmarks (or a custom dataset) with the published protocol."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from infoclip_cli.app import err_console, examples, note, out_console
from infoclip_cli.options import CLASSES_HELP, Device
from infoclip_cli.progress import stderr_progress
from infoclip_cli import prediction_options as opt

EXAMPLES = examples(
    "infoclip eval --weights catseg-b16 --dataset all",
    "infoclip eval --weights b16.safetensors --dataset ade150 --output-dir eval/",
    "infoclip eval --clip ViT-B-16:openai --dataset path/to/kitchens",
)

if TYPE_CHECKING:
    from infoclip.data import SegmentationDataset
    from infoclip.evaluation import EvalResult

ALL = "all"
SUMMARY_FILE = "summary.json"


def short_title(title: str, fallback: str) -> str:
    """The paper abbreviation in a title such as ``"ADE20K-150 (A-150)"``, else ``fallback``."""
    match = re.search(r"\(([^()]+)\)\s*$", title)
    return match.group(1) if match else fallback


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _formula_caption(result: EvalResult) -> str:
    m = result.metrics
    return escape(f"mIoU formula: {m['miou_formula']}: {m['miou_formula_description']}")


def _single_result_tables(result: EvalResult, top: int) -> list[str | Table]:
    """Detailed view of one dataset: a heading line, headline metrics, seen/unseen split, best and worst classes."""
    m = result.metrics
    heading = escape(f"{result.title}, {result.split} split: {result.num_images} images, {result.protocol} protocol")
    headline = Table()
    for column in ("mIoU", "fwIoU", "mAcc", "pAcc", "classes in GT", "s/image"):
        headline.add_column(column, justify="right")
    per_image = result.seconds / result.num_images if result.num_images else math.nan
    headline.add_row(
        _fmt(m["mIoU"]), _fmt(m["fwIoU"]), _fmt(m["mAcc"]), _fmt(m["pAcc"]),
        f"{m['classes_in_ground_truth']}/{m['num_classes']}", _fmt(per_image, 3),
    )
    tables: list[str | Table] = [f"[bold]{heading}[/bold]", headline, _formula_caption(result)]
    split = m.get("seen_unseen")
    if split:
        su = Table(title="seen / unseen classes")
        for column in ("seen classes", "mIoU seen", "unseen classes", "mIoU unseen", "hIoU"):
            su.add_column(column, justify="right")
        su.add_row(str(split["seen_classes"]), _fmt(split["mIoU_seen"]), str(split["unseen_classes"]),
                   _fmt(split["mIoU_unseen"]), _fmt(split["hIoU"]))
        tables.append(su)
    best, worst = result.best_and_worst(top)
    if best:
        classes = Table(title=f"best and worst classes (IoU; {m['classes_in_ground_truth']} classes in the ground truth)")
        for column, justify in (("best", "left"), ("IoU", "right"), ("worst", "left"), ("IoU ", "right")):
            classes.add_column(column, justify=justify)  # type: ignore[arg-type]
        for i in range(max(len(best), len(worst))):
            b = best[i] if i < len(best) else None
            w = worst[i] if i < len(worst) else None
            classes.add_row(
                escape(b["name"]) if b else "", _fmt(b["iou"]) if b else "", escape(w["name"]) if w else "",
                _fmt(w["iou"]) if w else "",
            )
        tables.append(classes)
    return tables


def _multi_result_tables(results: list[EvalResult], protocol: str) -> list[str | Table]:
    """One row per dataset, then the one-row mIoU summary in the given (paper) order."""
    has_split = any(r.metrics.get("seen_unseen") for r in results)
    table = Table(title=f"evaluation ({protocol} protocol)")
    columns = ["dataset", "images", "mIoU", "fwIoU", "mAcc", "pAcc"] + (["hIoU"] if has_split else []) + ["best", "worst"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("dataset", "best", "worst") else "right")
    for r in results:
        m = r.metrics
        best, worst = r.best_and_worst(1)
        row = [escape(r.title), str(r.num_images), _fmt(m["mIoU"]), _fmt(m["fwIoU"]), _fmt(m["mAcc"]), _fmt(m["pAcc"])]
        if has_split:
            row.append(_fmt(m["seen_unseen"]["hIoU"]) if m.get("seen_unseen") else "-")
        row += [escape(f"{best[0]['name']} {best[0]['iou']:.1f}") if best else "-",
                escape(f"{worst[0]['name']} {worst[0]['iou']:.1f}") if worst else "-"]
        table.add_row(*row)
    summary = Table(title=f"mIoU ({results[0].formula} formula)")
    for r in results:
        summary.add_column(escape(short_title(r.title, r.dataset)), justify="right")
    summary.add_row(*(_fmt(r.miou, 1) for r in results))
    return [table, summary, _formula_caption(results[0])]


def _check_weights_argument(text: str) -> None:
    """The checks of a --weights argument that need no download and no conversion (a missing file, an unknown
    name), so that they come before the datasets are opened."""
    from infoclip.named_weights import get_named_weights, is_hf_spec
    from infoclip.weights_resolver import looks_like_path, resolve_weights

    local = Path(text).expanduser()
    if local.is_file() or is_hf_spec(text):
        return
    if local.is_dir() or looks_like_path(text):
        resolve_weights(text)  # not a file: refused at once, before any download or conversion
    get_named_weights(text)  # refuses an unknown name


def _open_datasets(
    names: list[str], split: str, images: Optional[Path], labels: Optional[Path], classes: Optional[str],
    ignore_value: int,
) -> list[SegmentationDataset]:
    from infoclip.data import custom_spec, get_dataset, read_class_file
    from infoclip.data.builtin import BENCHMARKS
    from infoclip.errors import DatasetError, InputError
    from infoclip.segmentation.classes import parse_classes
    from infoclip_cli.errors import one_line

    expanded: list[str] = []
    for name in names:
        expanded.extend(BENCHMARKS if name.lower() == ALL else [name])
    datasets, failed = [], []
    for name in expanded:
        try:
            datasets.append(get_dataset(name, split))
        except DatasetError as exc:  # every missing dataset is listed, each with its own steps
            if len(expanded) == 1:
                raise
            failed.append(name)
            err_console.print(f"error: {one_line(exc)}", markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise DatasetError(f"{len(failed)} of {len(expanded)} dataset(s) cannot be opened (listed above): "
                           f"{', '.join(failed)}")  # fmt: skip
    ad_hoc = (images, labels, classes)
    if any(v is not None for v in ad_hoc):
        if not all(v is not None for v in ad_hoc):
            raise InputError("a custom dataset needs all of --images, --labels and --classes")
        names = read_class_file(classes) if Path(classes).is_file() else parse_classes(classes)
        spec = custom_spec(name="custom", classes=names, images=images, labels=labels, ignore_value=ignore_value)
        datasets.append(get_dataset(spec, split))
    if not datasets:
        raise InputError("nothing to evaluate: give --dataset NAME (or `all`), or --images/--labels/--classes")
    seen: set[str] = set()
    for ds in datasets:
        if ds.name in seen:
            raise InputError(f"dataset {ds.name!r} is given twice")
        seen.add(ds.name)
    return datasets


def eval_command(
    weights: Annotated[
        Optional[str],
        typer.Option("--weights", "-w", help="Weights to evaluate: a name (`infoclip weights list`), hf:ORG/REPO/FILE, "
                     "an infoclip .safetensors file or an official checkpoint (converted once)."),
    ] = None,
    clip: Annotated[
        Optional[str],
        typer.Option("--clip", help="Instead of --weights: score the training-free dense-CLIP baseline of "
                     "MODEL:TAG (ViT-B-16:openai, MODEL:/path/to/weights)."),
    ] = None,
    dense_clip: Annotated[
        bool,
        typer.Option("--dense-clip", help="With --weights: score the weights' own (fine-tuned) CLIP training-free, "
                     "exactly as --clip scores a pretrained one (dense patch embeddings against the class prompts)."),
    ] = False,
    dataset: Annotated[
        Optional[list[str]],
        typer.Option("--dataset", "-d", help="Registered dataset (ade150, pc59, ...), `all` (the six benchmarks), "
                     "or a custom dataset folder holding dataset.yaml. Repeatable."),
    ] = None,
    split: Annotated[str, typer.Option(help="Dataset split.")] = "val",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N images of each dataset.")] = None,
    protocol: Annotated[Optional[str], typer.Option(help="sliding or whole; default: the model's published protocol "
                                                    "(CAT-Seg: sliding, SAN: whole).", show_default=False)] = None,
    miou_formula: Annotated[
        str, typer.Option("--miou-formula", help="present (mean over classes in the ground truth; CAT-Seg's "
                          "published numbers) or d2-v0.6 (predicted-but-absent classes count as 0).")
    ] = "present",
    seen: Annotated[
        Optional[str],
        typer.Option(help="Seen (training) vocabulary for a seen/unseen split with harmonic mean: a shipped "
                     "vocabulary name (coco) or a class file."),
    ] = None,
    output_dir: Annotated[
        Optional[Path], typer.Option("--output-dir", "-o", help="Write <dataset>/metrics.json, per_class.csv and summary.json here.")
    ] = None,
    device: Device = "auto",
    images: Annotated[Optional[Path], typer.Option(help="Custom dataset: images folder.")] = None,
    labels: Annotated[Optional[Path], typer.Option(help="Custom dataset: labels folder (same stems as the images).")] = None,
    classes: Annotated[
        Optional[str],
        typer.Option("--classes", "-c", metavar="CLASSES", help="Custom dataset: " + CLASSES_HELP + " A bare file path still works."),
    ] = None,
    ignore_value: Annotated[int, typer.Option(help="Custom dataset: label value meaning 'no ground truth'.")] = 255,
    top: Annotated[int, typer.Option(min=0, help="How many best and worst classes to show.")] = 5,
    templates: opt.TemplatesFlag = "trained",
    synonym_rule: opt.SynonymRuleFlag = "max",
    split_synonyms: opt.SplitSynonymsFlag = False,
    background_threshold: opt.BackgroundFlag = None,
    expand_vocab: opt.ExpandVocabFlag = None,
    tta: opt.TTAFlag = "none",
    text_cache: opt.TextCacheFlag = False,
    text_cache_dir: opt.TextCacheDirFlag = None,
    max_pixels: Annotated[
        Optional[int],
        typer.Option(
            "--max-pixels", min=1, metavar="N",
            help="Refuse images and labels larger than N pixels (width x height) before decoding them; default "
            "64000000, or the INFOCLIP_MAX_PIXELS environment variable.",
        ),
    ] = None,
) -> None:
    """Evaluate weights (or, with --clip, the training-free dense-CLIP baseline) on datasets with the CAT-Seg
    protocol; print mIoU tables, write metrics JSON/CSV."""
    from infoclip.data.vocab import resolve_classes
    from infoclip.errors import InputError
    from infoclip.evaluation import MIOU_FORMULAS, evaluate
    from infoclip.io_utils import atomic_write_text
    from infoclip.models import load_model
    from infoclip.runtime import check_device_word, resolve_device
    from infoclip_cli.segment_cmd import set_pixel_limit

    set_pixel_limit(max_pixels)
    check_device_word(device)  # before any dataset is opened: a typo fails fast
    if miou_formula not in MIOU_FORMULAS:
        raise InputError(f"--miou-formula must be one of {', '.join(MIOU_FORMULAS)}, not {miou_formula!r}")
    # what is evaluated is checked before where: a missing weights file is the first thing to hear about
    if (weights is None) == (clip is None):
        raise InputError(
            "give either --weights (a name such as catseg-b16, hf:ORG/REPO/FILE or a file) or --clip MODEL:TAG "
            "(the training-free baseline)"
        )
    if dense_clip and weights is None:
        raise InputError("--dense-clip scores the CLIP inside --weights; give --weights (with --clip, the baseline is already training-free)")
    if weights is not None:
        _check_weights_argument(str(weights))
    datasets = _open_datasets(list(dataset or []), split, images, labels, classes, ignore_value)
    seen_classes = resolve_classes(seen) if seen is not None else None
    options = opt.build_options(templates, synonym_rule, split_synonyms, background_threshold, expand_vocab, tta)
    cache_dir = opt.text_cache_folder(text_cache, text_cache_dir)
    if clip is not None:
        from infoclip.segmentation.baseline import DenseCLIPBaseline
        from infoclip.segmentation.segmenter import baseline_identity

        model = DenseCLIPBaseline.from_spec(clip).to(resolve_device(device))
        extra = {"clip": clip, "adapter": "dense-clip-baseline (training-free)", "prompt_templates": model.prompt_templates}
        identity = baseline_identity(clip)
    else:
        from infoclip.segmentation.segmenter import weights_identity

        model, meta = load_model(weights, resolve_device(device), notify=note)
        # the prompt templates are part of the protocol (ecosystem notes): recorded with the numbers
        recorded = {"prompt_templates": model.prompt_templates} if model.prompt_templates else {}
        extra = {"weights": str(weights), "adapter": meta.adapter, "clip_tag": meta.clip_tag, **recorded}
        identity = weights_identity(weights, meta.adapter, meta.clip_tag) if cache_dir is not None else {}
        if dense_clip:
            from infoclip.segmentation.baseline import DenseCLIPBaseline

            model = DenseCLIPBaseline.from_model(model)
            extra = {**extra, "adapter": f"dense-clip-baseline of the {meta.adapter} weights' CLIP (training-free)",
                     "prompt_templates": model.prompt_templates}
            identity = {**identity, "dense_clip": True} if identity else {}
    if cache_dir is not None:
        from infoclip.segmentation.text_cache import TextEmbeddingCache

        model.text_embedding_cache = TextEmbeddingCache(cache_dir, {**identity, "precision": "fp32"})
    if not options.is_default:
        from infoclip.segmentation.templates import resolve_templates

        resolved_templates = resolve_templates(options.templates)
        if resolved_templates is not None:  # what the model prompts with is part of the numbers
            extra.update(prompt_templates=resolved_templates)
    results = []
    with stderr_progress() as new_task, opt.one_line_warnings():
        for ds in datasets:
            result = evaluate(
                model, ds, protocol, limit=limit, miou_formula=miou_formula, seen_classes=seen_classes,
                progress=new_task(f"{ds.name} ({min(limit or len(ds), len(ds))} images)"), extra=extra,
                options=options,
            )
            results.append(result)
            if output_dir is not None:
                result.write(output_dir / result.dataset)
    protocol = results[0].protocol  # the one evaluate resolved (the model's published one by default)
    tables = _single_result_tables(results[0], top) if len(results) == 1 else _multi_result_tables(results, protocol)
    for item in tables:
        out_console.print(item, soft_wrap=isinstance(item, str))
    if output_dir is not None:
        payload = {
            **extra,
            "options": options.describe(),
            "protocol": protocol,
            "miou_formula": miou_formula,
            "split": split,
            "limit": limit,
            "datasets": [
                {"dataset": r.dataset, "title": r.title, "num_images": r.num_images,
                 **{k: r.to_json()[k] for k in ("mIoU", "fwIoU", "mAcc", "pAcc", "mIoU_by_formula", "seen_unseen")}}
                for r in results
            ],
        }
        atomic_write_text(output_dir / SUMMARY_FILE, json.dumps(payload, indent=2) + "\n")
        err_console.print(f"metrics written to {output_dir}")


def register(app: typer.Typer) -> None:
    app.command("eval", epilog=EXAMPLES)(eval_command)
