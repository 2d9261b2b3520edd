"""A fair choice of InfoCLIP's λ1, λ2 in the miniature: the same tuning budget for the baseline, chosen on validation.

``infoclip miniature --forgetting --select-lambda`` reads the ``selection:`` section of the miniature YAML::

    selection:
      seed: 0                 # every grid point trains once, at this seed
      criterion: hIoU         # maximised on the validation scenes: hIoU | mIoU | seen | unseen
      families:
        infoclip: {method: infoclip-pairs, grid: {infoclip.lambda_compression: [0.1, 1.0], ...}}
        catseg: {method: catseg, grid: {solver.clip_lr_multiplier: [0.1, 0.3, 1.0, ...]}}

Each *family* is a method of the config (its overrides) and a grid of further ``--set`` values (the cartesian
product, in YAML order). Every family must have the same number of grid points: that is the "same budget".
The run then

1. trains every family's method at every seed of the mode (the untuned rows: the paper's λ1 = λ2 = 1 and the
   baseline's own default), and every grid point at the selection seed; each run validates once at its end on
   ``data/val`` (scenes over seen and unseen classes, disjoint from the test scenes);
2. picks, per family, the grid point with the best validation score (ties: the first in grid order);
3. trains the chosen point at the other seeds and reports it on the test scenes beside the untuned row.

Runs whose resolved config (training defaults <- run config <- overrides, with the seed) is identical are trained
once: the grid point λ1 = λ2 = 1 *is* the untuned InfoCLIP run, and a chosen point's selection-seed run is its grid
run. The grid's runs appear in ``results.json`` (``selection``) and ``results.md`` with their validation scores;
the main table holds only the untuned and the chosen rows.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from infoclip.errors import ConfigError, InfoclipError
from infoclip.miniature.config import Method
from infoclip.miniature.job import Job
from infoclip.miniature.job_progress import JobProgress
from infoclip.training.run_config import resolve_run_config

if TYPE_CHECKING:
    from infoclip.miniature.config import MiniatureConfig

class MiniatureRun(Protocol):
    """What a selection plan needs of the run it plans (``pipeline.Miniature``; stated here so that the pipeline,
    which hands itself to ``Selection.plan``, is not imported back)."""

    seeds: list[int]
    config: MiniatureConfig
    board: JobProgress | None

    def log(self, message: str) -> None: ...

    def train_and_evaluate(self, run_config: Path, method: Method, seed: int) -> Job: ...


#: validation scores a selection may maximise (keys ``val_<name>`` of a job's metrics, percent)
CRITERIA = ("hIoU", "mIoU", "seen", "unseen")
#: the test columns the grid records beside its validation scores
TEST_KEYS = ("seen", "unseen", "hIoU")


def _format(value: Any) -> str:
    """A grid value as the right-hand side of a ``--set`` override (YAML: 0.1, 1.0, true, a string)."""
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class GridPoint:
    """One candidate of a family: the family's method plus one combination of grid values."""

    family: str
    #: the run's name (file names, board): ``<method>+<last key part>=<value>+...``
    name: str
    method: str
    #: the grid's settings of this point, ``dotted key -> value``, in grid order
    settings: tuple[tuple[str, Any], ...]
    #: every ``--set`` override of the run: the method's, then the point's
    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        """The point's row in the main table once chosen."""
        return f"{self.name} (selected)"


@dataclass(frozen=True)
class Family:
    """A method and the grid of settings tried on top of it."""

    name: str
    method: str
    grid: tuple[tuple[str, tuple[Any, ...]], ...]

    def points(self, method_overrides: Sequence[str]) -> list[GridPoint]:
        """The cartesian product of the grid, first key slowest, as grid points."""
        keys = [key for key, _ in self.grid]
        out = []
        for values in itertools.product(*(vals for _, vals in self.grid)):
            settings = tuple(zip(keys, values))
            name = "+".join([self.method, *(f"{k.rsplit('.', 1)[-1]}={_format(v)}" for k, v in settings)])
            sets = (*method_overrides, *(f"{k}={_format(v)}" for k, v in settings))
            out.append(GridPoint(self.name, name, self.method, settings, sets))
        return out

    @property
    def size(self) -> int:
        return math.prod(len(vals) for _, vals in self.grid)


@dataclass(frozen=True)
class SelectionSpec:
    """The parsed ``selection:`` section (see the module docstring)."""

    seed: int | None
    criterion: str
    families: tuple[Family, ...]

    @classmethod
    def from_config(cls, config: MiniatureConfig) -> SelectionSpec:
        """Parse and check ``config.selection`` against ``config.methods``.

        Raises:
            ConfigError: no section, an unknown method or criterion, an empty grid value list, or families whose
                grids differ in size (the baseline must get the same number of runs as InfoCLIP).
        """
        data = config.selection
        if not isinstance(data, Mapping) or not data.get("families"):
            raise ConfigError("`selection` needs a `selection:` section with `families:` in the miniature config "
                              "(the shipped miniature.yaml has one)", parameter="selection")  # fmt: skip
        criterion = str(data.get("criterion", "hIoU"))
        if criterion not in CRITERIA:
            raise ConfigError(f"selection.criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
        families = []
        for name, spec in data["families"].items():
            method = spec.get("method") if isinstance(spec, Mapping) else None
            if method not in config.methods:
                raise ConfigError(f"selection.families.{name}.method must name one of the config's methods "
                                  f"({', '.join(config.methods)}), not {method!r}")  # fmt: skip
            grid = spec.get("grid")
            if not isinstance(grid, Mapping) or not grid:
                raise ConfigError(f"selection.families.{name}.grid must map run-config keys to lists of values")
            for key, values in grid.items():
                if not isinstance(values, list) or not values:
                    raise ConfigError(f"selection.families.{name}.grid.{key} must be a non-empty list of values")
            families.append(Family(str(name), str(method), tuple((str(k), tuple(v)) for k, v in grid.items())))
        sizes = {f.name: f.size for f in families}
        if len(set(sizes.values())) > 1:
            counts = ", ".join(f"{n} has {s}" for n, s in sizes.items())
            raise ConfigError(f"every selection family gets the same number of runs (the same budget); {counts}")
        seed = data.get("seed")
        return cls(None if seed is None else int(seed), criterion, tuple(families))

    def points(self, methods: Mapping[str, Method]) -> dict[str, list[GridPoint]]:
        """Every family's grid points, ``family -> points`` in grid order."""
        return {f.name: f.points(methods[f.method].overrides) for f in self.families}


def choose(points: Sequence[GridPoint], scores: Mapping[str, float]) -> GridPoint:
    """The point with the highest score (``scores[point.name]``); ties go to the first in grid order, and a NaN
    score never wins unless every score is NaN.

    Raises:
        InfoclipError: a point has no score (its run did not validate).
    """
    missing = [p.name for p in points if p.name not in scores]
    if missing:
        raise InfoclipError(f"no validation score for {', '.join(missing)}; selection needs every run validated")
    best = points[0]
    for point in points[1:]:
        score, top = scores[point.name], scores[best.name]
        if not math.isnan(score) and (math.isnan(top) or score > top):
            best = point
    return best


class _Shared:
    """A job run once however many rows use it: the pool calls it, the rows wait on ``result()``."""

    def __init__(self, fn: Callable[[], Job]) -> None:
        self.fn = fn
        self.future: concurrent.futures.Future[Job] = concurrent.futures.Future()

    def __call__(self) -> Job:
        try:
            job = self.fn()
        except BaseException as exc:
            self.future.set_exception(exc)
            raise
        self.future.set_result(job)
        return job

    def result(self) -> Job:
        return self.future.result()


@dataclass
class SelectionPlan:
    """What ``Miniature.run`` executes under ``--select-lambda``: its training ``tasks`` (pool order: grid first,
    then the untuned rows, then the chosen points at the other seeds) and, from their jobs, the table and the
    ``selection`` results section (``outcome``)."""

    spec: SelectionSpec
    seed: int
    seeds: list[int]
    methods: dict[str, Method]
    points: dict[str, list[GridPoint]]
    #: grid point name -> its shared run at the selection seed
    grid_runs: dict[str, _Shared]
    tasks: list[Callable[[], Job]]
    #: run names that only the grid uses (not an untuned row): kept out of the main table
    grid_only: set[str]
    #: ``family -> chosen point``; scores the family's grid (waiting for its runs) on first call
    pick: Callable[[str], GridPoint]

    def outcome(self, jobs: Sequence[Job]) -> tuple[list[Job], dict[str, Any]]:
        """The jobs of the main table (untuned rows, chosen rows at every seed, references) and the selection
        section: per family its grid (settings, validation scores, the run it used, its test columns), the
        chosen point and its row."""
        table = [j for j in jobs if j.method not in self.grid_only]
        families: dict[str, Any] = {}
        for family in self.spec.families:
            chosen = self.pick(family.name)
            table.append(replace(self.grid_runs[chosen.name].result(), method=chosen.label))
            grid = []
            for point in self.points[family.name]:
                job = self.grid_runs[point.name].result()
                grid.append({
                    "name": point.name, "settings": dict(point.settings), "overrides": list(point.overrides),
                    "run": f"{job.method}-seed{job.seed}",
                    "val": {k: job.metrics[f"val_{k}"] for k in CRITERIA if f"val_{k}" in job.metrics},
                    "test": {k: job.metrics[k] for k in TEST_KEYS if k in job.metrics},
                })  # fmt: skip
            families[family.name] = {"method": family.method, "grid_keys": [k for k, _ in family.grid],
                                     "points": grid, "chosen": chosen.name, "row": chosen.label}  # fmt: skip
        section = {"seed": self.seed, "criterion": self.spec.criterion, "split": "val", "seeds": self.seeds,
                   "families": families}  # fmt: skip
        return table, section


class Selection:
    """``--select-lambda``: handed to ``Miniature(selection=...)``, which asks it for a ``SelectionPlan``."""

    def __init__(self, spec: SelectionSpec) -> None:
        self.spec = spec

    @classmethod
    def from_config(cls, config: MiniatureConfig) -> Selection:
        return cls(SelectionSpec.from_config(config))

    def plan(self, run: MiniatureRun, run_configs: Mapping[str, Path]) -> SelectionPlan:
        """The run set: every family's method at every seed, every grid point at the selection seed, and one
        task per family and further seed that trains the chosen point once the family's grid has been scored.
        Every point's config is resolved here, so a bad key fails before any training.

        Raises:
            ConfigError: a grid key or value the run config refuses, or a selection seed outside the mode's seeds.
        """
        seeds = list(run.seeds)
        seed = seeds[0] if self.spec.seed is None else self.spec.seed
        if seed not in seeds:
            raise ConfigError(f"selection.seed {seed} is not one of the run's seeds ({', '.join(map(str, seeds))})")
        methods = {f.method: run.config.methods[f.method] for f in self.spec.families}
        points = self.spec.points(run.config.methods)
        runs: dict[str, _Shared] = {}  # resolved config -> its one run
        lock = threading.Lock()

        def shared(name: str, adapter: str, overrides: Sequence[str], at: int) -> tuple[_Shared, bool]:
            """The run of ``overrides`` at seed ``at``, and whether it is new (trained under ``name``)."""
            try:
                resolved = resolve_run_config(run_configs[adapter], overrides=[*overrides, f"train.seed={at}"])
            except ConfigError as exc:
                raise ConfigError(f"selection run {name}: {exc}") from exc
            key = json.dumps(resolved, sort_keys=True, default=str)
            with lock:
                if key in runs:
                    return runs[key], False
                method = Method(name, adapter, tuple(overrides))
                runs[key] = _Shared(lambda: run.train_and_evaluate(run_configs[adapter], method, at))
                return runs[key], True

        # the untuned rows claim their runs first, so that a grid point equal to one is trained under its name
        untuned = [shared(m, x.adapter, x.overrides, s) for s in [seed, *(y for y in seeds if y != seed)] for m, x in methods.items()]
        grid_runs: dict[str, _Shared] = {}
        grid_only: set[str] = set()
        for family_points in points.values():
            for point in family_points:
                grid_runs[point.name], new = shared(point.name, methods[point.method].adapter, point.overrides, seed)
                if new:
                    grid_only.add(point.name)
        # pool order: the grid's runs (the choice waits for them), then the rest of the untuned rows
        tasks: list[Callable[[], Job]] = list(dict.fromkeys([*grid_runs.values(), *(t for t, new in untuned if new)]))
        chosen: dict[str, GridPoint] = {}
        choice_lock = threading.Lock()
        key = f"val_{self.spec.criterion}"

        def pick(family: str) -> GridPoint:
            with choice_lock:  # one choice per family, whichever of its seeds asks first
                if family not in chosen:
                    metrics = {p.name: grid_runs[p.name].result().metrics for p in points[family]}
                    scores = {name: m[key] for name, m in metrics.items() if key in m}
                    chosen[family] = choose(points[family], scores)
                    run.log(f"selection: {family} -> {chosen[family].name} (val {self.spec.criterion} "
                            f"{scores[chosen[family].name]:.1f})")  # fmt: skip
                return chosen[family]

        def chosen_at(family: str, at: int) -> Job:
            point = pick(family)
            task, new = shared(point.name, methods[point.method].adapter, point.overrides, at)
            job = task() if new else task.result()
            if not new and run.board is not None:
                run.board.finished(f"{point.name}-seed{at}")  # reused: done at once
            return replace(job, method=point.label)

        for at in seeds:
            if at != seed:
                tasks += [lambda f=f.name, s=at: chosen_at(f, s) for f in self.spec.families]
        return SelectionPlan(self.spec, seed, seeds, methods, points, grid_runs, tasks, grid_only, pick)


def selection_markdown(section: Mapping[str, Any]) -> list[str]:
    """The grid of every family with its validation scores (``results.md``), the chosen point in bold."""
    criterion = section["criterion"]
    lines = [f"Selection on the validation scenes (`data/val`, seed {section['seed']}, criterion val {criterion}); "
             f"the chosen point of each family is trained at seeds {', '.join(map(str, section['seeds']))} and its "
             "test scores are the `(selected)` row of the first table:"]  # fmt: skip
    for name, family in section["families"].items():
        keys = family["grid_keys"]
        lines += ["", f"{name} (on `{family['method']}`):", "",
                  "| " + " | ".join(keys) + " | val seen | val unseen | val hIoU | run |",
                  "|" + "---|" * (len(keys) + 4)]  # fmt: skip
        for point in family["points"]:
            mark = "**" if point["name"] == family["chosen"] else ""
            cells = [f"{mark}{_format(point['settings'][k])}{mark}" for k in keys]
            cells += [f"{point['val'][k]:.1f}" if k in point["val"] else "-" for k in ("seen", "unseen", "hIoU")]
            lines.append("| " + " | ".join([*cells, point["run"]]) + " |")
    return lines
