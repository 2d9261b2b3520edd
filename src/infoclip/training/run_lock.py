"""One training process per run folder: an advisory lock on ``RUN/.lock``.

The lock is ``fcntl.flock`` on an open file, so the kernel drops it when the holder exits in any way (crash,
``kill -9``, power loss of a client on a network file system that supports locks): a dead run never leaves the
folder stuck. The file itself stays (an empty lock file means nothing); it holds the holder's pid and host for
the message a second process gets. Under DDP only rank 0 takes the lock: the other ranks of the same run work
under it, and a second job on the same folder is refused at its rank 0.

Holding is re-entrant within a process (the command line takes the lock before it reads the folder, and
``train()`` takes it again), because a second ``flock`` on a new descriptor of the same file would conflict
with the first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from infoclip.errors import RunFolderBusyError

LOCK_FILE = ".lock"

#: resolved run folder -> [open lock file descriptor, hold count, created the folder (0/1)] of the locks held here
_held: dict[Path, list[int]] = {}


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "another process"
    return f"process {text}" if text else "another process"


def acquire(run_dir: str | os.PathLike[str]) -> Path:
    """Take the lock of ``run_dir`` (created if missing) or raise ``RunFolderBusyError``; returns the folder."""
    folder = Path(run_dir).resolve()
    if folder in _held:
        _held[folder][1] += 1
        return folder
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if created:
            _remove_empty(folder)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunFolderBusyError(
                f"{run_dir} is in use by {_holder(path)} training into it; wait for that run to end "
                "or choose another run folder"
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode())
    _held[folder] = [fd, 1, int(created)]
    return folder


def release(run_dir: str | os.PathLike[str]) -> None:
    """Give back one hold of ``run_dir``'s lock (the lock is dropped with the last one)."""
    folder = Path(run_dir).resolve()
    entry = _held.get(folder)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[folder]
        with contextlib.suppress(OSError):
            os.ftruncate(entry[0], 0)
        os.close(entry[0])  # closing the descriptor drops the flock
        if entry[2]:
            _remove_empty(folder)


def _remove_empty(folder: Path) -> None:
    """Remove a folder this process created for its lock if nothing else was written into it."""
    with contextlib.suppress(OSError):
        if [p.name for p in folder.iterdir()] in ([], [LOCK_FILE]):
            (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()


@contextlib.contextmanager
def hold(run_dir: str | os.PathLike[str], enabled: bool = True) -> Iterator[None]:
    """``with hold(run_dir):`` the block runs with the folder's lock held (nothing happens when not ``enabled``,
    which is how ranks other than 0 share their rank 0's lock)."""
    if not enabled:
        yield
        return
    acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir)


def is_held_here(run_dir: str | os.PathLike[str]) -> bool:
    """Does this process hold ``run_dir``'s lock?"""
    return Path(run_dir).resolve() in _held
