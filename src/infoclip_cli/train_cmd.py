"""``infoclip train``: CAT-Seg training with the InfoCLIP objective; resumable; multi-GPU under torchrun."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import TimeRemainingColumn
from rich.text import Text

from infoclip_cli.app import err_console, examples, out_console

EXAMPLES = examples(
    "infoclip train --config catseg-vit-b16 --output-dir runs/b16",
    "infoclip train --config catseg-tiny --output-dir runs/try \\\n    --set solver.iterations=200 --set data.train=path/to/kitchens",
    "infoclip train --output-dir runs/b16 --resume",
    "torchrun --nproc_per_node 4 -m infoclip_cli train \\\n    --config catseg-vit-b16 --output-dir runs/b16",
)

_SHORT = {"loss_total": "loss", "loss_task": "task", "loss_compression": "L_c", "loss_distillation": "L_d"}


def _loss_text(info: Mapping[str, float]) -> str:
    parts = [f"{short} {info[key]:.4f}" for key, short in _SHORT.items() if key in info]
    if "lr" in info:
        parts.append(f"lr {info['lr']:.2e}")
    return "  ".join(parts)


class _SpeedColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text("  -- it/s" if speed is None else f"{speed:6.2f} it/s")


class BarProgress:
    """A rich progress bar on stderr: iterations, it/s, elapsed, ETA, loss terms and learning rate."""

    def __init__(self) -> None:
        self._progress: Progress | None = None
        self._task: Any = None

    def start(self, total: int, done: int) -> None:
        self._progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            _SpeedColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=err_console,
            transient=False,
            speed_estimate_period=120.0,
        )
        self._progress.start()
        self._task = self._progress.add_task("train", total=total, completed=done, losses="")

    def update(self, done: int, info: Mapping[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, losses=_loss_text(info))

    def note(self, text: str) -> None:
        (self._progress.console if self._progress is not None else err_console).print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class LineProgress:
    """Plain progress lines on stderr every ``every`` iterations (when stderr is not a terminal: log files)."""

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.total = 0
        self._t0 = 0.0
        self._done0 = 0

    def start(self, total: int, done: int) -> None:
        self.total, self._done0, self._t0 = total, done, time.perf_counter()

    def update(self, done: int, info: Mapping[str, float]) -> None:
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self._t0
        speed = (done - self._done0) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / speed if speed > 0 else float("nan")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta == eta else "--"
        err_console.print(
            f"[{done}/{self.total}] {speed:.2f} it/s  ETA {eta_text}  {_loss_text(info)}", markup=False, highlight=False,
            soft_wrap=True,
        )

    def note(self, text: str) -> None:
        err_console.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


def train_command(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", metavar="RUN", help="Run folder (config, logs, checkpoints, metrics).")],
    config: Annotated[
        Optional[str],
        typer.Option("--config", "-c", metavar="YAML|PRESET", help="Run config: a YAML file or a shipped preset (catseg-vit-b16, "
                     "catseg-vit-l14-336, catseg-tiny). Optional with --resume."),
    ] = None,
    adapter: Annotated[Optional[str], typer.Option(metavar="NAME", help="Adapter (framework); must match the config's `adapter`.")] = None,
    overrides: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="KEY=VALUE", help="Override a config key, e.g. --set solver.iterations=1000 (repeatable; "
                     "unknown keys are errors). --set infoclip.enabled=false trains the plain baseline."),
    ] = None,
    weights: Annotated[
        Optional[str],
        typer.Option("--weights", "-w", metavar="WEIGHTS", help="Start the model from these weights (train.init_weights): "
                     "a name such as catseg-b16, hf:ORG/REPO/FILE, an infoclip .safetensors or an official checkpoint."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --output-dir from its last checkpoint.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start again from scratch in a run folder that holds a run (deletes its "
                           "checkpoints and logs).")
    ] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress display on stderr.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Train a model (CAT-Seg + InfoCLIP by default).

    The run folder holds the config, log.csv, checkpoints and validation results; one process trains into a
    folder at a time. Ctrl-C (or SIGTERM) finishes the current iteration, writes a checkpoint and prints the
    command that resumes the run; a second one stops at once. Multi-GPU: torchrun --nproc_per_node N -m
    infoclip_cli train ...
    """
    from infoclip.training import prepare_run_config, train
    from infoclip.training.interrupt import ImmediateStop, TrainingInterrupted
    from infoclip.training.run_folder import clear_run
    from infoclip.training.run_lock import hold

    settings = list(overrides or []) + ([f"train.init_weights={weights}"] if weights is not None else [])
    main_process = os.environ.get("RANK", "0") == "0"
    try:
        with hold(output_dir, enabled=main_process):
            run_config, changed = prepare_run_config(output_dir, config, adapter, settings, resume, overwrite)
            if overwrite and main_process:
                clear_run(output_dir)
            reporter: Any = None
            if progress and main_process:
                log_period = int(run_config["train"]["log_period"])
                reporter = BarProgress() if err_console.is_terminal else LineProgress(log_period)
            summary = train(run_config, output_dir, resume=resume, progress=reporter, changed_settings=changed)
    except TrainingInterrupted as exc:
        if main_process:
            _say(f"stopped after iteration {exc.iteration} ({exc.signal_name}); checkpoint: {exc.checkpoint}")
            _say(f"resume with: {resume_command(output_dir)}")
        raise SystemExit(exc.exit_code) from None
    except ImmediateStop as exc:
        if main_process:
            from infoclip.training.checkpoint import last_checkpoint

            _say(f"stopped at once ({exc.args[0]}); the last checkpoint is {last_checkpoint(output_dir) or 'none yet'}")
            _say(f"resume with: {resume_command(output_dir)}")
        raise SystemExit(128 + exc.signum) from None
    if not main_process:
        return
    result = {
        "run_dir": str(summary.run_dir),
        "iterations": summary.iterations,
        "last_checkpoint": str(summary.last_checkpoint) if summary.last_checkpoint else None,
        "last_losses": summary.last_losses,
        "mIoU": summary.final_metrics.get("mIoU") if summary.final_metrics else None,
        "seconds": round(summary.seconds, 1),
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    out_console.print(f"iterations: {result['iterations']}  time: {result['seconds']} s", markup=False, highlight=False)
    if result["mIoU"] is not None:
        out_console.print(f"validation mIoU: {result['mIoU']:.2f}")
    if result["last_checkpoint"]:
        out_console.print(f"last checkpoint: {result['last_checkpoint']}", markup=False, highlight=False, soft_wrap=True)
    out_console.print(f"wrote the run to {result['run_dir']}", markup=False, highlight=False, soft_wrap=True)


def _say(text: str) -> None:
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def resume_command(run_dir: Path) -> str:
    """The exact command that continues the run in ``run_dir`` (under torchrun when this is a torchrun job)."""
    import shlex

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        per_node = os.environ.get("LOCAL_WORLD_SIZE", str(world))
        start = f"torchrun --nproc_per_node {per_node} -m infoclip_cli train"
    else:
        start = "infoclip train"
    return f"{start} --output-dir {shlex.quote(str(run_dir))} --resume"


def register(app: typer.Typer) -> None:
    app.command("train", epilog=EXAMPLES)(train_command)
