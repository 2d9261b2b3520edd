"""``infoclip miniature``: the whole method end to end on a procedural texture world, on a laptop CPU.

``infoclip miniature --fast`` (about 3 minutes): one CAT-Seg and one CAT-Seg + InfoCLIP fine-tuning on the seen
classes, scored on seen and unseen classes beside the untrained model and the training-free dense-CLIP baseline.
``infoclip miniature`` (the full run): 3 seeds x {CAT-Seg, InfoCLIP batch axis, InfoCLIP pairs axis, SAN, SAN +
fine-tuned CLIP, SAN + InfoCLIP}, plus the lambda ablation. ``--methods`` picks other rows of the config. ``infoclip miniature pretrain-clip`` regenerates the shipped tiny CLIP.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from infoclip_cli.app import err_console, examples, out_console

miniature_app = typer.Typer(
    help="The miniature benchmark: a synthetic open-vocabulary world, a tiny CLIP, CAT-Seg vs InfoCLIP.",
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    epilog=examples("infoclip miniature --fast", "infoclip miniature --jobs 2 --output-dir /tmp/miniature",
                    "infoclip miniature --forgetting --select-lambda -o /tmp/select"),
)


def _log(text: str) -> None:
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def _parse_seeds(text: Optional[str]) -> Optional[list[int]]:
    from infoclip.errors import InputError

    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise InputError(f"--seeds takes comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds needs distinct integers such as 0,1,2, got {text!r}")
    return seeds


def _parse_methods(text: Optional[str]) -> Optional[list[str]]:
    """``--methods a,b``: the names (checked against the config by ``MiniatureConfig.select``)."""
    return None if text is None else [m for m in text.replace(" ", "").split(",") if m]


def _print_results(results: dict) -> None:
    table = Table(title=f"miniature ({results['mode']} mode): mIoU % on the test scenes, "
                        f"{len(results['seeds'])} seed(s), mean ± std")
    for column in ("method", "runs", "seen", "unseen", "hIoU"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for row in results["rows"]:
        many = len(row["runs"]) > 1
        cells = [f"{row[k]['mean']:.1f} ± {row[k]['std']:.1f}" if many else f"{row[k]['mean']:.1f}"
                 for k in ("seen", "unseen", "hIoU")]
        table.add_row(row["method"], str(len(row["runs"])), *cells)
    out_console.print(table)
    out_console.print(f"unseen classes: {', '.join(results['unseen_classes'])}", highlight=False)
    out_console.print(f"wall time: {results['wall_seconds']:.0f} s", highlight=False)
    out_console.print(f"predictions on unseen classes: {results['picture']}", highlight=False)


@miniature_app.callback()
def miniature_command(
    ctx: typer.Context,
    fast: Annotated[bool, typer.Option("--fast", help="The ~3-minute mode: one seed, CAT-Seg and InfoCLIP (batch axis), fewer images.")] = False,
    forgetting: Annotated[bool, typer.Option("--forgetting", help="The forgetting regime: CLIP trained at the full "
                          "learning rate, 3 seeds x 3 methods, with a validation split and the mechanism measurements.")] = False,
    select_lambda: Annotated[bool, typer.Option("--select-lambda", help="Choose InfoCLIP's lambda1/lambda2 (and the "
                             "baseline's knob, same number of runs) on the validation scenes, then report the chosen "
                             "settings at every seed beside the untuned rows (the config's `selection:` section).")] = False,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for data, runs, weights and results.")] = Path("infoclip-miniature"),
    seeds: Annotated[Optional[str], typer.Option(help="Comma-separated seeds (default: the mode's, 0,1,2 for the full run).")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Commands run at once (one CPU thread each).")] = 2,
    pretrain: Annotated[bool, typer.Option("--pretrain", help="Pretrain the tiny CLIP afresh instead of using the shipped weights.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="A miniature YAML (default: the shipped miniature.yaml).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier miniature run in --output-dir.")] = False,
    methods: Annotated[Optional[str], typer.Option(help="Comma-separated methods to run instead of the mode's, e.g. "
                       "san,san-finetuned,san-infoclip (ablation methods run at the first seed only).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Run the miniature benchmark and print its table (mIoU on seen and unseen classes, harmonic mean)."""
    if ctx.invoked_subcommand is not None:
        return
    from infoclip.miniature import Miniature, MiniatureConfig, prepare_output_dir

    from infoclip.miniature.selection import Selection

    settings = MiniatureConfig.load(config)
    selection = Selection.from_config(settings) if select_lambda else None
    run = Miniature(
        output_dir, mode=_mode(fast, forgetting), config=settings, seeds=_parse_seeds(seeds), jobs=jobs, log=_log,
        methods=_parse_methods(methods), selection=selection,
    )
    prepare_output_dir(output_dir, force)
    results = run.run(pretrain=pretrain)
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    _print_results(results)
    out_console.print(f"wrote the data, runs, weights and results to {output_dir}", markup=False, highlight=False,
                      soft_wrap=True)


@miniature_app.command(
    "pretrain-clip", epilog=examples("infoclip miniature pretrain-clip -o tiny_clip.safetensors --seconds 600")
)
def pretrain_clip_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Weights file to write (.safetensors, fp16).")],
    seconds: Annotated[Optional[float], typer.Option(help="Time budget (default: the config's pretrain.seconds).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="A miniature YAML (default: the shipped one).")] = None,
    architecture: Annotated[Optional[str], typer.Option(
        help="infoclip-miniature-clip (ViT, CAT-Seg/SAN) or infoclip-miniature-convnext (ConvNeXt, FC-CLIP); "
             "default: the config's pretrain.architecture.")] = None,
) -> None:
    """Pretrain one of the miniature's tiny CLIPs on captioned texture images and write its weights."""
    import dataclasses

    import torch

    from infoclip.miniature import MiniatureConfig
    from infoclip.miniature.pretrain import pretrain_clip, save_clip_weights, zero_shot_report

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = MiniatureConfig.load(config)
    changes = {k: v for k, v in (("seconds", seconds), ("architecture", architecture)) if v is not None}
    settings = dataclasses.replace(cfg.pretrain, **changes)
    model = pretrain_clip(cfg.world, settings, log=_log)
    report = zero_shot_report(model, cfg.world)
    path = save_clip_weights(model, output, metadata={"zero_shot": json.dumps(dataclasses.asdict(report))})
    out_console.print(
        f"wrote {path}: close-up accuracy seen {report.closeup_accuracy_seen:.1%} / unseen "
        f"{report.closeup_accuracy_unseen:.1%}; dense zero-shot mIoU seen {report.dense_miou_seen:.1%} / unseen "
        f"{report.dense_miou_unseen:.1%}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(miniature_app, name="miniature")


def _mode(fast: bool, forgetting: bool) -> str:
    from infoclip.errors import InputError

    if fast and forgetting:
        raise InputError("--fast and --forgetting are two different modes; give one of them")
    return "fast" if fast else "forgetting" if forgetting else "full"
