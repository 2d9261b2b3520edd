"""The miniature's job board: jobs done, each running job's phase and time, and an ETA, on a fake clock."""

from __future__ import annotations

import threading

from infoclip.miniature.job_progress import JobProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_board_reports_phases_done_jobs_and_an_eta():
    clock, lines = Clock(), []
    board = JobProgress(total=4, parallel=2, log=lines.append, clock=clock)
    board.phase("catseg-seed0", "train")
    assert lines[-1] == "[0/4 jobs done] train catseg-seed0 (0s); ETA --"
    clock.now = 30
    board.phase("untrained", "eval")
    clock.now = 70
    board.phase("catseg-seed0", "export")
    assert lines[-1] == "[0/4 jobs done] export catseg-seed0 (0s), eval untrained (40s); ETA --"
    clock.now = 90
    board.finished("untrained")  # took 60 s
    # left: catseg-seed0 (90 s in, past the 60 s mean: 0 left) and two jobs waiting (60 s each), 2 at a time
    assert board.eta() == 60.0
    assert lines[-1] == "[1/4 jobs done] export catseg-seed0 (20s); ETA 1m00s"
    clock.now = 200
    board.finished("catseg-seed0")  # took 200 s: mean 130 s, two jobs waiting
    assert lines[-1] == "[2/4 jobs done]; ETA 2m10s"


def test_the_heartbeat_speaks_between_phase_changes():
    lines, spoke = [], threading.Event()

    def log(line):
        lines.append(line)
        spoke.set()

    with JobProgress(total=1, parallel=1, log=log, heartbeat=0.01) as board:
        assert spoke.wait(5.0), "a heartbeat line within the period"
        board.phase("catseg-seed0", "train")
    count = len(lines)
    assert count >= 2 and all(line.startswith("[0/1 jobs done]") for line in lines)
