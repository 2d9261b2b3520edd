"""The miniature benchmark end to end: data, tiny CLIP, the real ``infoclip train|export|eval`` commands, tables.

``run_miniature`` does, under one output folder:

1. ``data/train`` (seen textures only) and ``data/test`` (all textures, ``seen_classes`` listed): custom
   datasets in the ``dataset.yaml`` layout;
2. the tiny CLIP: the shipped weights, or a fresh ``pretrain_clip`` run (``pretrain=True``);
3. ``configs/<adapter>.yaml``: each adapter section's run config (``config.py``) with the CLIP weights'
   absolute path and the data folder, for every adapter that has a method in the run;
4. the references, scored by ``infoclip eval`` on the test folder: each adapter's *untrained* model
   (pretrained CLIP, the rest randomly initialised; written as an infoclip weights file) and the shared
   *training-free* dense-CLIP baseline (CAT-Seg's dense last block and cosine similarity, no training;
   ``infoclip segment --clip``'s model, scored by ``infoclip eval --clip``);
5. for every seed and method of the mode: ``infoclip train`` on the seen classes, ``infoclip export``,
   ``infoclip eval`` (and ``eval --dense-clip``, the mechanism columns);
6. ``results.json``, ``results.md`` (mean +- std over seeds) and ``predictions.png``.

Each command runs as its own process (``python -m infoclip_cli ...``, one torch thread each), exactly as a
user would type it; up to ``jobs`` of them at once. Their output goes to ``logs/``.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from infoclip.config import apply_overrides, load_config, save_config
from infoclip.errors import ConfigError, InfoclipError, TrainingError
from infoclip.io_utils import atomic_write_text
from infoclip.miniature import tiny_clip
from infoclip.miniature.config import Method, MiniatureConfig, untrained_row
from infoclip.miniature.config import default_config_path as default_config_path  # re-exported (earlier home)
from infoclip.miniature.job import Job as Job  # re-exported (earlier home)
from infoclip.miniature.job_progress import JobProgress

#: mechanism measurements per trained model, averaged over seeds like the mIoU columns
MECHANISM_KEYS = ("own_clip_seen", "own_clip_unseen", "own_clip_hIoU", "val_mIoU", "val_seen", "val_unseen", "val_hIoU",
                  "alignment_mi", "alignment_mi_ratio", "alignment_cka")
#: the references: CAT-Seg's untrained row (each adapter has one, ``untrained_row(label)``) and the training-free
#: dense CLIP that every table shows (one row: all adapters share the tiny CLIP)
UNTRAINED = untrained_row("CAT-Seg")
TRAINING_FREE = "training-free dense CLIP"


def _cli(args: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> str:
    """Run ``python -m infoclip_cli ARGS`` with one torch thread; returns stdout; output also in ``log_file``."""
    command = [sys.executable, "-m", "infoclip_cli", *map(str, args)]
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(command, capture_output=True, text=True, env=run_env)
    log_file.write_text(f"$ {shlex.join(command)}\n{done.stdout}\n--- stderr ---\n{done.stderr}", encoding="utf-8")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise TrainingError(f"`infoclip {' '.join(map(str, args[:1]))}` failed ({last}); full output in {log_file}")
    return done.stdout


def _seen_unseen(entry: Mapping[str, Any], where: Path) -> dict[str, float]:
    """seen / unseen / harmonic mIoU (percent) and overall mIoU from one dataset's metrics JSON."""
    split = entry.get("seen_unseen") or {}
    if not split:
        raise InfoclipError(f"{where} has no seen/unseen split; the test dataset.yaml must list seen_classes")
    return {
        "mIoU": float(entry["mIoU"]),
        "seen": float(split["mIoU_seen"]),
        "unseen": float(split["mIoU_unseen"]),
        "hIoU": float(split["hIoU"]),
    }


class Miniature:
    """One miniature run under ``output_dir`` (see the module docstring)."""

    def __init__(
        self,
        output_dir: str | os.PathLike[str],
        mode: str = "fast",
        config: MiniatureConfig | None = None,
        seeds: Sequence[int] | None = None,
        jobs: int = 1,
        log: Callable[[str], None] = lambda s: None,
        methods: Sequence[str] | None = None,
        selection: Any = None,
    ) -> None:
        if jobs < 1:
            raise ConfigError(f"jobs must be at least 1, got {jobs}")
        self.config = config or MiniatureConfig.load()
        if mode not in self.config.modes:
            raise ConfigError(f"miniature mode must be one of {', '.join(self.config.modes)}, not {mode!r}")
        self.mode = mode
        self.settings = dict(self.config.modes[mode])
        self.seeds = list(seeds) if seeds else list(self.settings.get("seeds", [0]))
        #: what trains: ``methods`` exactly (ablations at the first seed), else the mode's methods (default: every
        #: adapter's) and, with ``ablation: true``, the ablations of the adapters among them
        if methods is not None:
            self.methods = self.config.select(list(methods))
        else:
            self.methods = self.config.select(self.settings.get("methods"), f"modes.{mode}.methods")
            if self.settings.get("ablation"):
                used = {m.adapter for m in self.methods}
                self.methods += [m for m in self.config.methods.values() if m.ablation and m.adapter in used]
        self.adapters = list(dict.fromkeys(m.adapter for m in self.methods))
        self.output_dir = Path(output_dir)
        self.jobs = jobs
        self.log = log
        self.board: JobProgress | None = None  # set while the jobs run
        self.test_dir = self.output_dir / "data" / "test"
        self.train_dir = self.output_dir / "data" / "train"
        #: held-out scenes over all classes, disjoint from the test scenes (other seed): validation and lambda choice
        self.val_dir = self.output_dir / "data" / "val"
        self.n_val = int(self.settings.get("n_val", 0))
        #: a ``selection.Selection`` (``--select-lambda``): it plans the training jobs instead of seeds x methods
        self.selection = selection
        if selection is not None and not self.n_val:
            raise ConfigError(f"`selection` scores on a validation split, and the {mode} mode has none (n_val); "
                              "use the forgetting mode or give the mode an n_val", parameter="selection")
            self.methods = [self.config.methods[f.method] for f in selection.spec.families]  # the untuned rows
            self.adapters = list(dict.fromkeys(m.adapter for m in self.methods))

    # --- steps -----------------------------------------------------------------------------------------
    def write_data(self) -> None:
        from infoclip.miniature.dataset import write_datasets

        start = time.monotonic()
        write_datasets(
            self.output_dir / "data", self.config.world, int(self.settings["n_train"]), int(self.settings["n_test"])
        )
        if self.n_val:
            from infoclip.miniature.dataset import write_split

            write_split(self.val_dir, self.config.world, self.config.world.classes, self.n_val, seed=2_000_003,
                        seen_classes=self.config.world.seen, name="miniature-val")  # fmt: skip
        self.log(f"data: {self.settings['n_train']} training, {self.n_val} validation and {self.settings['n_test']} test images "
                 f"in {time.monotonic() - start:.1f}s -> {self.output_dir / 'data'}")

    def clip_weights(self, pretrain: bool) -> Path:
        """The tiny CLIP's weights: the shipped file, or a fresh pretraining run's."""
        if not pretrain:
            return tiny_clip.shipped_weights_path()
        from infoclip.miniature.pretrain import pretrain_clip, save_clip_weights, zero_shot_report

        model = pretrain_clip(self.config.world, self.config.pretrain, log=self.log)
        path = save_clip_weights(model, self.output_dir / "clip" / f"{tiny_clip.MINIATURE_CLIP}.safetensors")
        report = zero_shot_report(model, self.config.world)
        self.log(f"pretrained CLIP -> {path}: {report}")
        return path

    def write_run_config(self, clip_weights: Path, adapter: str | None = None) -> Path:
        """``configs/<adapter>.yaml``: the adapter section's run config with the tiny CLIP's weights, the data
        folders and the mode's iterations and overrides (default adapter: the config's first)."""
        runs = self.config.adapters[adapter or next(iter(self.config.adapters))]
        run = apply_overrides(runs.run, [
            f"{runs.clip_weights_setting}={Path(clip_weights).resolve()}",
            f"data.train={self.train_dir.resolve()}",
            f"solver.iterations={int(self.settings['iterations'])}",
            *self.config.run_overrides(self.mode, runs.adapter),
        ])  # fmt: skip
        if self.n_val:  # each run validates once at its end: val mIoU and the alignment agreement
            # keys of the training defaults that the run section need not list (``infoclip train`` checks them all)
            run = apply_overrides(run, [f"data.val={self.val_dir.resolve()}", "data.val_protocol=whole",
                                        f"train.eval_period={int(self.settings['iterations'])}"], strict=False)  # fmt: skip
        return save_config(run, self.output_dir / "configs" / f"{runs.adapter}.yaml")

    def _phase(self, name: str, what: str) -> None:
        if self.board is not None:
            self.board.phase(name, what)

    def evaluate(self, weights_args: Sequence[str], name: str, job: str | None = None, phase: str = "eval") -> dict[str, float]:
        """Score a model on the test scenes with ``infoclip eval`` into ``eval/<name>``; on the board it is the
        ``phase`` of ``job`` (default: a job of its own called ``name``)."""
        out = self.output_dir / "eval" / name
        self._phase(job or name, phase)
        _cli(
            ["eval", *weights_args, "--dataset", self.test_dir, "--protocol", self.config.protocol,
             "--device", "cpu", "--output-dir", out],
            self.output_dir / "logs" / f"eval-{name}.log",
        )
        summary = out / "summary.json"
        return _seen_unseen(json.loads(summary.read_text(encoding="utf-8"))["datasets"][0], summary)

    def evaluate_training_free(self, clip: Path) -> dict[str, float]:
        """The training-free dense-CLIP baseline of the tiny CLIP, scored by ``infoclip eval --clip``."""
        return self.evaluate(["--clip", f"{tiny_clip.MINIATURE_CLIP}:{Path(clip).resolve()}"], "training-free")

    def untrained_weights(self, run_config: Path) -> Path:
        """The run config's model with the pretrained tiny CLIP and the rest randomly initialised (CAT-Seg's
        aggregator, SAN's side adapter), as a weights file."""
        import torch

        from infoclip.models import create_model, save_model

        config = load_config(run_config)
        # Seeded like a training run (train.seed) so that the reference is the same model on every run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config.get("train", {}).get("seed", 0)))
            model = create_model(config)
        model.load_pretrained()
        path = self.output_dir / "weights" / f"untrained-{config['adapter']}.safetensors"
        return save_model(model, path, classes=list(self.config.world.seen), source="infoclip miniature (untrained)")

    def train_and_evaluate(self, run_config: Path, method: Method, seed: int) -> Job:
        start = time.monotonic()
        name = f"{method.name}-seed{seed}"
        run_dir = self.output_dir / "runs" / name
        sets = [x for o in [*method.overrides, f"train.seed={seed}"] for x in ("--set", o)]
        self._phase(name, "train")
        _cli(["train", "--config", run_config, "--output-dir", run_dir, *sets, "--no-progress", "--json"],
             self.output_dir / "logs" / f"train-{name}.log")
        weights = self.output_dir / "weights" / f"{name}.safetensors"
        self._phase(name, "export")
        _cli(["export", run_dir, "--output", weights, "--force", "--json"], self.output_dir / "logs" / f"export-{name}.log")
        metrics = self.evaluate(["--weights", weights], name)
        metrics.update(self.mechanism(weights, run_dir, name))
        job = Job(method.name, seed, weights, metrics, time.monotonic() - start, method.adapter)
        self.log(f"{name}: seen {metrics['seen']:.1f} unseen {metrics['unseen']:.1f} hIoU {metrics['hIoU']:.1f} "
                 f"({job.seconds:.0f}s)")
        if self.board is not None:
            self.board.finished(name)
        return job

    def mechanism(self, weights: Path, run_dir: Path, name: str) -> dict[str, float]:
        """The fine-tuned CLIP's own training-free dense alignment (``eval --dense-clip``) on the test scenes and,
        when the run validated, its val mIoU and teacher-student alignment agreement."""
        # a phase of the training job: a board entry of its own would never be marked finished
        own = self.evaluate(["--weights", weights, "--dense-clip"], f"{name}-own-clip", job=name, phase="own-CLIP eval")
        out = {f"own_clip_{k}": v for k, v in own.items() if k in ("seen", "unseen", "hIoU")}
        validated = run_dir / "metrics.json"
        if validated.is_file():
            data = json.loads(validated.read_text(encoding="utf-8"))
            out["val_mIoU"] = float(data["mIoU"])
            split = data.get("seen_unseen") or {}
            out.update({f"val_{k}": float(split[f"mIoU_{k}"]) for k in ("seen", "unseen") if f"mIoU_{k}" in split})
            if "hIoU" in split:
                out["val_hIoU"] = float(split["hIoU"])
            out.update({k: float(v) for k, v in data.get("extra", {}).items() if k.startswith("alignment_")})
        return out

    def _reference(self, method: str, name: str, score: Callable[[], dict[str, float]], adapter: str | None = None) -> Job:
        """A reference row (no training) as a job of the board: ``score()`` builds and evaluates it."""
        self._phase(name, "prepare")
        metrics = score()
        if self.board is not None:
            self.board.finished(name)
        return Job(method, None, None, metrics, adapter=adapter)

    # --- the whole run ---------------------------------------------------------------------------------
    def run(self, pretrain: bool = False) -> dict[str, Any]:
        """Run every step; returns the results dict also written to ``results.json``."""
        wall = time.monotonic()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.write_data()
        clip = self.clip_weights(pretrain)
        run_configs = {adapter: self.write_run_config(clip, adapter) for adapter in self.adapters}
        # the long training jobs first (ablations at the first seed), so that the short references run beside them
        tasks: list[Callable[[], Job]] = []
        plan = self.selection.plan(self, run_configs) if self.selection is not None else None
        if plan is not None:
            tasks = list(plan.tasks)
        for seed in self.seeds if plan is None else ():
            for method in self.methods:
                if not method.ablation:
                    tasks.append(lambda m=method, s=seed: self.train_and_evaluate(run_configs[m.adapter], m, s))
        for method in self.methods if plan is None else ():
            if method.ablation:
                tasks.append(lambda m=method: self.train_and_evaluate(run_configs[m.adapter], m, self.seeds[0]))
        for adapter in self.adapters:
            name = f"untrained-{adapter}"
            score = lambda a=adapter, n=name: self.evaluate(["--weights", self.untrained_weights(run_configs[a])], n)  # noqa: E731
            tasks.append(lambda a=adapter, n=name, f=score: self._reference(self.config.adapters[a].untrained, n, f, a))
        tasks.append(lambda: self._reference(TRAINING_FREE, "training-free", lambda: self.evaluate_training_free(clip)))
        self.log(f"{len(tasks)} jobs, {self.jobs} at a time (progress every 15 s; each job's output in "
                 f"{self.output_dir / 'logs'})")  # fmt: skip
        with JobProgress(len(tasks), self.jobs, self.log) as board, concurrent.futures.ThreadPoolExecutor(
            max_workers=self.jobs
        ) as pool:
            self.board = board
            try:
                jobs = [f.result() for f in [pool.submit(fn) for fn in tasks]]
            finally:
                self.board = None
        if plan is not None:  # the grid's runs leave the main table for their own section
            jobs, chosen = plan.outcome(jobs)
        results = summarize(jobs, self.config, self.mode, self.seeds, time.monotonic() - wall, clip)
        if plan is not None:
            results["selection"] = chosen
        atomic_write_text(self.output_dir / "results.json", json.dumps(results, indent=2) + "\n")
        atomic_write_text(self.output_dir / "results.md", results_markdown(results))
        picture = self.output_dir / "predictions.png"
        from infoclip.miniature.picture import prediction_picture

        main = {m.name for m in self.methods if not m.ablation}
        trained = {j.method: j.weights for j in jobs if j.weights is not None and j.seed == self.seeds[0] and j.method in main}
        prediction_picture(picture, self.test_dir, self.config.world, trained, clip)
        results["picture"] = str(picture)
        atomic_write_text(self.output_dir / "results.json", json.dumps(results, indent=2) + "\n")
        return results


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std


def summarize(jobs: Sequence[Job], config: MiniatureConfig, mode: str, seeds: Sequence[int], seconds: float, clip: Path) -> dict[str, Any]:
    """Group jobs by method: mean and sample std over seeds of seen / unseen / hIoU / mIoU (percent)."""
    # the references head the table: each adapter's untrained row, then the shared training-free one
    rows: dict[str, dict[str, Any]] = {runs.untrained: {} for runs in config.adapters.values()}
    rows[TRAINING_FREE] = {}
    known = config.methods
    for job in jobs:
        row = rows.setdefault(job.method, {})
        row.setdefault("method", job.method)
        adapter = job.adapter or (known[job.method].adapter if job.method in known else None)
        if adapter is not None:
            row.setdefault("adapter", adapter)
        row.setdefault("runs", [])
        row["runs"].append({"seed": job.seed, **job.metrics, "seconds": round(job.seconds, 1)})
    rows = {name: row for name, row in rows.items() if row}
    for row in rows.values():
        for key in ("seen", "unseen", "hIoU", "mIoU", *MECHANISM_KEYS):
            if all(key in r for r in row["runs"]):
                mean, std = _mean_std([r[key] for r in row["runs"]])
                row[key] = {"mean": round(mean, 4 if key.startswith("alignment_") else 2), "std": round(std, 4 if key.startswith("alignment_") else 2)}
    return {
        "mode": mode,
        "seeds": list(seeds),
        "ablation_methods": [name for name, m in known.items() if m.ablation and name in rows],
        "method_settings": {name: list(known[name].overrides) for name in rows if name in known},
        "adapters": {runs.adapter: runs.label for runs in config.adapters.values() if any(r.get("adapter") == runs.adapter for r in rows.values())},
        "seen_classes": list(config.world.seen),
        "unseen_classes": list(config.world.unseen),
        "clip_weights": str(clip),
        "wall_seconds": round(seconds, 1),
        "rows": list(rows.values()),
    }


def _cell(stats: Mapping[str, float], runs: int) -> str:
    return f"{stats['mean']:.1f} ± {stats['std']:.1f}" if runs > 1 else f"{stats['mean']:.1f}"


def results_markdown(results: Mapping[str, Any]) -> str:
    """The results as GitHub markdown: the main table (mean ± sample std over seeds, mIoU in percent) and,
    when the run had one, the ablation table (every method at the first seed, with its settings)."""
    ablation = set(results.get("ablation_methods", []))
    settings = results.get("method_settings", {})
    lines = ["| method | runs | seen mIoU | unseen mIoU | hIoU |", "|---|---|---|---|---|"]
    for row in results["rows"]:
        if row["method"] in ablation:
            continue
        runs = len(row["runs"])
        cells = [_cell(row[k], runs) for k in ("seen", "unseen", "hIoU")]
        lines.append(f"| {row['method']} | {runs} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"{results['mode']} mode, seeds {', '.join(map(str, results['seeds']))}; {len(results['seen_classes'])} seen / "
        f"{len(results['unseen_classes'])} unseen classes ({', '.join(results['unseen_classes'])}); "
        f"wall time {results['wall_seconds']:.0f} s."
    )
    measured = [row for row in results["rows"] if "own_clip_unseen" in row and row["method"] not in ablation]
    if measured:
        lines += ["", "Mechanism: the fine-tuned CLIP's own training-free dense alignment on the test scenes "
                  "(`eval --dense-clip`), and teacher-student agreement of cos(D_V, D_L) maps on the validation scenes:",
                  "", "| method | own CLIP seen | own CLIP unseen | own CLIP hIoU | val mIoU | MI (bits) | MI / S(teacher) | CKA |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in measured:
            runs = len(row["runs"])
            cells = [_cell(row[k], runs) if k in row else "-" for k in ("own_clip_seen", "own_clip_unseen", "own_clip_hIoU", "val_mIoU")]
            cells += [f"{row[k]['mean']:.3f} ± {row[k]['std']:.3f}" if k in row and runs > 1 else
                      (f"{row[k]['mean']:.3f}" if k in row else "-") for k in ("alignment_mi", "alignment_mi_ratio", "alignment_cka")]
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    if ablation:
        seed = results["seeds"][0]
        lines += ["", f"Ablation (seed {seed}):", "",
                  "| method | settings | seen mIoU | unseen mIoU | hIoU |", "|---|---|---|---|---|"]
        for row in results["rows"]:
            if row["method"] not in settings:
                continue
            run = next((r for r in row["runs"] if r["seed"] == seed), None)
            if run is None:
                continue
            what = ", ".join(settings[row["method"]]) or "-"
            lines.append(f"| {row['method']} | `{what}` | {run['seen']:.1f} | {run['unseen']:.1f} | {run['hIoU']:.1f} |")
    if "selection" in results:
        from infoclip.miniature.selection import selection_markdown

        lines += ["", *selection_markdown(results["selection"])]
    return "\n".join(lines) + "\n"
