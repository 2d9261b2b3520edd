"""Progress of the miniature's jobs on stderr: jobs done, what each running job is doing, and an ETA.

The jobs are whole commands (train, export, eval) that run for minutes without a word of their own (their output
goes to log files), so the board reports every phase change and, between them, a heartbeat line every
``heartbeat`` seconds. The ETA is the mean duration of the finished jobs times the work left, spread over the
jobs that run at once; it is ``--`` until a job has finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class JobProgress:
    """``with JobProgress(total, parallel, log) as board:``; jobs call ``board.phase(name, what)`` and
    ``board.finished(name)``; ``log(line)`` receives the lines (from the jobs' threads and the heartbeat thread)."""

    def __init__(
        self,
        total: int,
        parallel: int,
        log: Callable[[str], None],
        heartbeat: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.parallel = max(1, parallel)
        self.log = log
        self.heartbeat = heartbeat
        self.clock = clock
        self._lock = threading.Lock()
        self._running: dict[str, tuple[str, float, float]] = {}  # name -> (phase, job start, phase start)
        self._durations: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def done(self) -> int:
        return len(self._durations)

    def phase(self, name: str, what: str) -> None:
        """Job ``name`` starts (or moves on to) phase ``what``."""
        now = self.clock()
        with self._lock:
            started = self._running[name][1] if name in self._running else now
            self._running[name] = (what, started, now)
        self.log(self.line())

    def finished(self, name: str) -> None:
        """Job ``name`` is done."""
        now = self.clock()
        with self._lock:
            _, started, _ = self._running.pop(name, ("", now, now))
            self._durations.append(now - started)
        self.log(self.line())

    def eta(self) -> float | None:
        """Seconds left, or ``None`` before the first job has finished."""
        with self._lock:
            if not self._durations:
                return None
            mean = sum(self._durations) / len(self._durations)
            now = self.clock()
            waiting = self.total - len(self._durations) - len(self._running)
            running_left = sum(max(0.0, mean - (now - started)) for _, started, _ in self._running.values())
        return (waiting * mean + running_left) / self.parallel

    def line(self) -> str:
        """``[2/6 jobs done] train catseg-seed0 (1m10s), eval untrained (5s); ETA 3m20s``."""
        now = self.clock()
        eta = self.eta()
        with self._lock:
            running = ", ".join(f"{what} {name} ({_duration(now - since)})"
                                for name, (what, _, since) in sorted(self._running.items()))  # fmt: skip
            done = len(self._durations)
        text = f"[{done}/{self.total} jobs done]"
        if running:
            text += f" {running}"
        return f"{text}; ETA {'--' if eta is None else _duration(eta)}"

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            self.log(self.line())

    def __enter__(self) -> JobProgress:
        self._thread = threading.Thread(target=self._beat, name="miniature-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
