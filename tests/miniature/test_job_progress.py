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


def test_a_training_job_leaves_the_board_when_its_evaluations_are_done(tmp_path, monkeypatch):
    """The own-CLIP evaluation is a phase of its training job: an entry of its own stayed 'running' for ever
    and inflated the ETA."""
    import json

    from infoclip.miniature import pipeline
    from infoclip.miniature.config import Method

    def fake_cli(args, log_file, env=None):
        if args[0] == "eval":
            out = tmp_path / "out" / "eval" / str(args[args.index("--output-dir") + 1]).rsplit("/", 1)[-1]
            out.mkdir(parents=True, exist_ok=True)
            split = {"mIoU_seen": 30.0, "mIoU_unseen": 20.0, "hIoU": 24.0}
            (out / "summary.json").write_text(json.dumps({"datasets": [{"mIoU": 26.0, "seen_unseen": split}]}))
        return ""

    monkeypatch.setattr(pipeline, "_cli", fake_cli)
    run = pipeline.Miniature(tmp_path / "out", mode="fast")
    lines: list[str] = []
    run.board = JobProgress(total=1, parallel=1, log=lines.append)
    job = run.train_and_evaluate(tmp_path / "run.yaml", Method("catseg", "catseg", ()), seed=0)
    assert job.metrics["own_clip_unseen"] == 20.0
    assert any("own-CLIP eval catseg-seed0" in line for line in lines)
    assert run.board.done == 1 and not run.board._running, lines[-1]
