"""``infoclip data list|check|prepare``: find, verify and convert the datasets ``infoclip eval`` and ``train`` read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from infoclip_cli.app import err_console, examples, folding_table, out_console, typer_factory
from infoclip_cli.eval_cmd import stderr_progress

data_app = typer_factory("Find, check and prepare datasets (root: $INFOCLIP_DATASETS, $DETECTRON2_DATASETS or ./datasets).")


@data_app.command("list", epilog=examples("infoclip data list", "infoclip data list --json"))
def list_datasets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered datasets, their folders, and whether they are present under the datasets root."""
    from infoclip.data import datasets_root, registered_datasets

    rows = []
    for spec in registered_datasets().values():
        for split in spec.splits:
            images_dir, labels_dir = spec.folders(split)
            rows.append({
                "name": spec.name, "title": spec.title, "split": split, "classes": len(spec.class_names),
                "ignore_value": spec.ignore_value, "images": str(images_dir), "labels": str(labels_dir),
                "present": images_dir.is_dir() and labels_dir.is_dir(),
            })
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = folding_table(f"datasets (root: {datasets_root()})",
                          ("name", "split", "classes", "ignore", "labels folder", "present"), right=("classes", "ignore"))
    for r in rows:
        table.add_row(escape(r["name"]), escape(r["split"]), str(r["classes"]), str(r["ignore_value"]), escape(r["labels"]),
                      "yes" if r["present"] else "no")
    out_console.print(table)


def _count_cell(count: int, expected: bool = False) -> str:
    if count == 0:
        return "0"
    return f"{count}*" if expected else f"[red]{count}[/red]"


@data_app.command("check", epilog=examples(
    "infoclip data check", "infoclip data check ade150 path/to/kitchens --split train --limit 100"
))
def check(
    names: Annotated[
        Optional[list[str]],
        typer.Argument(help="Registered datasets or custom dataset folders (default: every registered dataset)."),
    ] = None,
    split: Annotated[str, typer.Option(help="Split to check.")] = "val",
    limit: Annotated[Optional[int], typer.Option(min=1, help="Read only the first N image/label pairs.")] = None,
    decode_images: Annotated[bool, typer.Option("--decode-images", help="Decode whole images, not just headers.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full reports as JSON.")] = False,
) -> None:
    """Check layouts and files; exit 1 when a dataset is broken (or missing, when named explicitly).

    Reports images without labels, labels without images, unreadable files, label values outside the
    vocabulary and labels whose size differs from their image's.
    """
    from infoclip.data.check import MISSING, check_dataset
    from infoclip.data.registry import registered_datasets, resolve_spec

    specs = [resolve_spec(n) for n in names] if names else list(registered_datasets().values())
    reports = []
    with stderr_progress() as new_task:
        for spec in specs:
            if split not in spec.splits and "*" not in spec.splits:
                continue  # checking every dataset: skip those without this split
            reports.append(check_dataset(spec, split, limit=limit, decode_images=decode_images,
                                         progress=new_task(f"checking {spec.name}")))
    failed = [r for r in reports if r.broken or (names and r.status == MISSING)]
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        # two-line headers: the nine columns fit 80 characters
        counts = ("images", "labels", "no\nlabel", "no\nimage", "read\nerror", "bad\nvalue", "size\n≠")
        table = folding_table(
            f"dataset check ({split} split)", ("dataset", "status", *counts), right=counts,
            caption="* images without labels are expected where the image folder is shared (VOC, Pascal Context)",
        )
        for r in reports:
            colour = {"ok": "green", "broken": "red"}.get(r.status, "yellow")
            table.add_row(
                escape(r.name), f"[{colour}]{r.status}[/{colour}]", str(r.num_images), str(r.num_labels),
                _count_cell(len(r.images_without_labels), r.unlabelled_images_expected),
                _count_cell(len(r.labels_without_images)), _count_cell(len(r.unreadable)),
                _count_cell(len(r.bad_values)), _count_cell(len(r.size_mismatches)),
            )
        # names and states stay on one line; the count headers are what folds at 80 columns
        table.columns[0].min_width = max([len("dataset"), *(len(r.name) for r in reports)])
        table.columns[1].min_width = max([len("status"), *(len(r.status) for r in reports)])
        out_console.print(table)
        for r in reports:
            if r.status != "ok":
                for line in r.problems():
                    out_console.print(f"{r.name}: {line}", markup=False, highlight=False, soft_wrap=True)
    if failed:
        err_console.print(
            f"error: {len(failed)} dataset(s) broken or missing: {', '.join(r.name for r in failed)}", markup=False
        )
        raise typer.Exit(code=1)


@data_app.command("prepare", epilog=examples("infoclip data prepare ade150", "infoclip data prepare voc20 --root ~/datasets"))
def prepare(
    name: Annotated[str, typer.Argument(help="ade150, coco171, voc20 (also makes voc20b) or pc459.")],
    root: Annotated[Optional[Path], typer.Option(help="Datasets root (default: $INFOCLIP_DATASETS ...).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Rebuild label folders that already exist.")] = False,
) -> None:
    """Convert official label archives into the layout infoclip (and CAT-Seg) read."""
    from infoclip.data.prepare import prepare as run_prepare

    with stderr_progress() as new_task:
        folders = run_prepare(name, root, overwrite=overwrite, progress=new_task(f"preparing {name}"))
    for folder in folders:
        skipped = f"; skipped {folder.skipped}: {folder.skipped_reason}" if folder.skipped else ""
        out_console.print(f"wrote {folder.written} labels to {folder.path}{skipped}", markup=False, highlight=False, soft_wrap=True)
        if folder.note:
            err_console.print(f"note: {folder.note}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
