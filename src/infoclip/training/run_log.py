"""What a run writes as it goes: CSV logs (TensorBoard too where installed) and the loss/mIoU plot.

* ``RUN/log.csv``: one row per logged iteration (``iteration``, loss terms, learning rates, gradient norm, speed);
* ``RUN/val.csv``: one row per validation (``iteration``, ``mIoU`` and the other scalar metrics);
* ``RUN/curves.png``: loss terms and validation mIoU over iterations, redrawn at each validation and at the end;
* ``RUN/tensorboard/``: the same scalars as TensorBoard events when ``tensorboard`` is importable.

On resume the CSV files are cut back to the resumed iteration, so rows of iterations that are redone
do not appear twice. ``StepResult.row`` is a ``log.csv`` row; ``summary_json`` is what ``RUN/summary.json`` holds.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infoclip.io_utils import atomic_write, atomic_write_text, disk_full_error, is_disk_full_error

TRAIN_LOG = "log.csv"
VAL_LOG = "val.csv"
PLOT = "curves.png"
LOSS_KEYS = ("loss_total", "loss_task", "loss_compression", "loss_distillation")


@dataclass
class StepResult:
    """Losses (averaged over ranks and micro-steps), learning rates and gradient norm of one iteration."""

    iteration: int
    losses: dict[str, float]
    lr: dict[str, float]
    grad_norm: float
    seconds: float
    data_seconds: float
    forward_seconds: float = 0.0
    backward_seconds: float = 0.0
    #: per-term gradient norms on the CLIP (``gradient_balance.COLUMNS``), on logging iterations only
    term_grad_norms: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """The CSV/TensorBoard row of this iteration."""
        row: dict[str, Any] = {"iteration": self.iteration}
        row.update({f"loss_{k}": v for k, v in self.losses.items()})
        row.update({f"lr_{k}": v for k, v in self.lr.items()})
        row.update({"grad_norm": self.grad_norm, "seconds": self.seconds, "data_seconds": self.data_seconds,
                    "forward_seconds": self.forward_seconds, "backward_seconds": self.backward_seconds})  # fmt: skip
        row.update(self.term_grad_norms)
        return row


@dataclass
class TrainSummary:
    """What ``train`` returns: where things are and how the run ended."""

    run_dir: Path
    iterations: int
    last_checkpoint: Path | None
    last_losses: dict[str, float] = field(default_factory=dict)
    final_metrics: dict[str, Any] | None = None
    seconds: float = 0.0
    stopped: str | None = None


def summary_json(
    summary: TrainSummary,
    *,
    processes: int,
    device: str,
    peak_gpu_memory_bytes: int | None,
    parameters: Mapping[str, int],
) -> dict[str, Any]:
    """The content of ``RUN/summary.json`` for a run that ended (finished or not) as ``summary`` says."""
    return {
        "iterations": summary.iterations,
        "last_checkpoint": str(summary.last_checkpoint.relative_to(summary.run_dir)) if summary.last_checkpoint else None,
        "last_losses": summary.last_losses,
        "mIoU": summary.final_metrics.get("mIoU") if summary.final_metrics else None,
        "seconds": round(summary.seconds, 3),
        "stopped": summary.stopped,
        "processes": processes,
        "device": device,
        "peak_gpu_memory_bytes": peak_gpu_memory_bytes,
        "parameters": dict(parameters),
    }


class CsvLog:
    """Append-only CSV with a header fixed by the first row; columns added later are an error."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._columns: list[str] | None = None
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), None)
            self._columns = header or None

    def append(self, row: Mapping[str, Any]) -> None:
        """Add one row (values written with ``repr`` for floats, so they read back exactly)."""
        if self._columns is None:
            self._columns = list(row)
            atomic_write_text(self.path, ",".join(self._columns) + "\n")
        missing = [key for key in row if key not in self._columns]
        if missing:
            raise ValueError(f"{self.path.name}: new columns {missing} after the header was written")
        values = [_format(row.get(key, "")) for key in self._columns]
        line = io.StringIO()
        csv.writer(line).writerow(values)
        data = line.getvalue().encode("utf-8")
        # Unbuffered, so that a failed write is seen here and the partial row can be cut off: the rows of
        # finished iterations stay readable on a full disk.
        with self.path.open("ab", buffering=0) as f:
            end = f.seek(0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[f.write(view) :]
            except OSError as exc:
                with contextlib.suppress(OSError):
                    f.truncate(end)
                if is_disk_full_error(exc, self.path.parent):
                    raise disk_full_error(self.path) from exc
                raise

    def truncate_after(self, iteration: int) -> None:
        """Drop rows whose ``iteration`` is greater than ``iteration`` (used when a run resumes)."""
        if not self.path.is_file():
            return
        rows = read_csv(self.path)
        kept = [row for row in rows if float(row.get("iteration", 0)) <= iteration]
        if len(kept) == len(rows):
            return
        columns = self._columns or (list(rows[0]) if rows else [])

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                for row in kept:
                    writer.writerow([row.get(key, "") for key in columns])

        atomic_write(self.path, write)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def read_csv(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a CSV log as dicts of strings (empty list if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def column(rows: list[dict[str, str]], key: str) -> tuple[list[float], list[float]]:
    """``(iterations, values)`` of one column, skipping empty or non-numeric cells."""
    xs, ys = [], []
    for row in rows:
        try:
            x, y = float(row["iteration"]), float(row.get(key, ""))
        except (KeyError, ValueError):
            continue
        xs.append(x)
        ys.append(y)
    return xs, ys


class TensorBoardLog:
    """Scalars to TensorBoard when ``torch.utils.tensorboard`` works (tensorboard installed); a no-op otherwise."""

    def __init__(self, folder: str | os.PathLike[str], enabled: bool = True) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional: `pip install infoclip[tensorboard]`
            return
        self.writer = SummaryWriter(log_dir=str(folder))

    def scalars(self, iteration: int, values: Mapping[str, Any], prefix: str = "") -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{prefix}{key}", value, iteration)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def plot_curves(run_dir: str | os.PathLike[str], title: str = "", no_validation: str = "no validation yet") -> Path:
    """Draw ``RUN/curves.png`` from ``log.csv`` and ``val.csv``: loss terms (left), validation mIoU (right).

    ``no_validation`` is what the right panel says while ``val.csv`` is empty (why there is no curve).
    """
    # A bare Figure renders through Agg without touching pyplot's global backend.
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    train_rows = read_csv(run_dir / TRAIN_LOG)
    val_rows = read_csv(run_dir / VAL_LOG)
    figure = Figure(figsize=(11, 4), dpi=100)
    losses, miou = figure.subplots(1, 2)
    for key in LOSS_KEYS:
        xs, ys = column(train_rows, key)
        if xs:
            losses.plot(xs, ys, label=key.removeprefix("loss_"), linewidth=1.2)
    losses.set_xlabel("iteration")
    losses.set_ylabel("loss")
    losses.set_title("training losses")
    losses.grid(alpha=0.3)
    if losses.lines:
        losses.legend(fontsize=8)
    xs, ys = column(val_rows, "mIoU")
    if xs:
        miou.plot(xs, ys, marker="o", color="tab:green")
    else:
        miou.text(0.5, 0.5, no_validation, ha="center", va="center", transform=miou.transAxes, wrap=True)
    miou.set_xlabel("iteration")
    miou.set_ylabel("mIoU (%)")
    miou.set_title("validation mIoU")
    miou.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return atomic_write(run_dir / PLOT, lambda tmp: figure.savefig(tmp, format="png"))
