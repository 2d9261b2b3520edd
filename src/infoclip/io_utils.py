"""Atomic file writing: an output is either complete or absent, never half-written.

A write that fails because the file system is full becomes one ``DiskFullError`` naming the folder, whatever
the writer raised: Python's ``OSError(ENOSPC)``, torch's ``RuntimeError("... unexpected pos ...")`` or
safetensors' ``SafetensorError("... os error 28")`` (the last two hide the errno, so the free space of the
folder decides).
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from infoclip.errors import DiskFullError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder so that the final ``os.replace`` is atomic on POSIX.
    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0o600; outputs get the mode a plainly created file would have under the umask.
    os.chmod(tmp_path, default_file_mode())
    try:
        yield tmp_path
        # again: writers that re-create the file (safetensors does) get mkstemp-like 0o600 modes back
        os.chmod(tmp_path, default_file_mode())
        os.replace(tmp_path, path)
    except Exception as exc:
        # Judged before the partial temporary file is removed: it is what filled the disk.
        if is_disk_full_error(exc, path.parent):
            raise disk_full_error(path) from exc
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: free space below which a failed write counts as "the disk is full" (file systems keep a few blocks back)
_FULL_BELOW_BYTES = 1 << 20
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full_error(exc: BaseException, folder: str | os.PathLike[str]) -> bool:
    """Did ``exc``, raised while writing into ``folder``, happen because the file system is full?"""
    if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
        return True
    text = str(exc)
    if "No space left on device" in text or "os error 28" in text or "Disk quota exceeded" in text:
        return True
    if isinstance(exc, OSError) or type(exc).__name__ in ("RuntimeError", "SafetensorError"):
        try:
            stats = os.statvfs(folder)
        except OSError:
            return False
        return stats.f_bavail * stats.f_frsize < _FULL_BELOW_BYTES
    return False


def disk_full_error(path: str | os.PathLike[str]) -> DiskFullError:
    """The one-line error for ``path`` not fitting on its file system."""
    path = Path(path)
    return DiskFullError(f"no space left on the device holding {path.parent} (writing {path.name}); free some space")


def default_file_mode() -> int:
    """The mode a plainly created file gets under the current umask (0o644 usually)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
