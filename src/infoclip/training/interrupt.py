"""Graceful stop of a training run on SIGINT (Ctrl-C) and SIGTERM (a scheduler's pre-emption).

The first signal only raises a flag: the current iteration finishes, the loop sees the flag at the iteration
boundary, writes a checkpoint (atomically, as always) and stops with ``TrainingInterrupted``. A second signal
stops at once with ``ImmediateStop`` (a ``KeyboardInterrupt``): whatever is being written then is a temporary
file that the atomic writer removes, so the last checkpoint and its pointer stay intact.

Under DDP every rank gets its own signal (torchrun forwards it; a scheduler signals every process) at slightly
different moments, so the ranks agree at each iteration boundary through an all-reduce of the flag: all of
them stop after the same iteration, and they write one checkpoint together.

Data-loader workers ignore both signals (``ignore_in_worker``): the main process decides when to stop, and a
worker killed by the signal would otherwise fail the loader before the checkpoint is written.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch

from infoclip.errors import TrainingError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ImmediateStop(KeyboardInterrupt):
    """A second stop signal: the run ends at once, without a new checkpoint."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class TrainingInterrupted(TrainingError):
    """The run stopped on a signal after ``iteration`` iterations; ``checkpoint`` holds that state."""

    def __init__(self, message: str, signum: int, iteration: int, checkpoint: Any) -> None:
        super().__init__(message)
        self.signum = signum
        self.iteration = iteration
        self.checkpoint = checkpoint

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT)."""
        return 128 + self.signum


class GracefulStop:
    """Catch SIGINT/SIGTERM while a block runs: ``with GracefulStop(on_first=...) as stop: ... stop.requested``.

    ``on_first(signal_name)`` is called (from the signal handler) for the first signal, to tell the user what
    happens next. Outside the main thread (where Python cannot install handlers) nothing is installed and the
    flag never rises.
    """

    def __init__(self, on_first: Callable[[str], None] | None = None) -> None:
        self.on_first = on_first
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """Has a stop signal arrived in this process?"""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            self._restore()
            raise ImmediateStop(signum)
        self.signum = signum
        if self.on_first is not None:
            self.on_first(signal.Signals(signum).name)

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()


def agreed_stop(stop: GracefulStop | None, ctx: Any) -> int | None:
    """The signal every rank stops on at this iteration boundary, or ``None`` to go on.

    One all-reduce (max) of the signal number over the ranks of ``ctx`` (a ``DistContext``): a rank that got no
    signal stops with the others.
    """
    local = stop.signum if stop is not None and stop.signum is not None else 0
    if not ctx.distributed:
        return local or None
    import torch.distributed as dist

    flag = torch.tensor([local], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None


def ignore_in_worker(_worker_id: int) -> None:
    """``worker_init_fn`` of the training loader: workers leave SIGINT/SIGTERM to the main process."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def stop_notice(name: str) -> str:
    """What the first signal does now, in one line for the user."""
    return f"{name} received: finishing the current iteration and writing a checkpoint (send it again to stop at once)"
