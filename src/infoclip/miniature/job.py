"""A job of the miniature: one row of its results (a method at one seed, or a reference) and where its files are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Job:
    """One row of the results: a method at one seed (or a reference), and where its files are."""

    method: str
    seed: int | None
    weights: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: the adapter of a trained row or an untrained reference (``None``: the shared training-free row)
    adapter: str | None = None
