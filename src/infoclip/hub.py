"""Files from the Hugging Face Hub: downloaded once through ``huggingface_hub`` into its cache, one-line errors.

Where files go: the Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, default
``~/.cache/huggingface/hub``), exactly where ``hf_hub_download`` puts them, so files fetched by other tools
are reused and infoclip adds no download directory of its own. ``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE``
and ``HF_TOKEN`` work as in every Hugging Face tool; they are read when a file is asked for, not at import.

Policy:

* a file already in the cache for the asked revision is used without any request (``fetch(refresh=False)``,
  what ``--weights NAME`` does), so a second run makes no network traffic; ``fetch(refresh=True)``
  (``infoclip weights download``) asks the Hub whether the revision moved;
* before downloading, one HEAD request without retries checks that the file exists, so a missing file, an
  unknown revision or an unreachable Hub is one line within the request timeout, never the library's
  backoff loop;
* the download shows a progress bar on stderr (``HF_HUB_DISABLE_PROGRESS_BARS=1`` hides it);
  ``huggingface_hub`` writes into a temporary file and renames it, so a broken download leaves nothing in
  the cache (a body that breaks off is first resumed by ``huggingface_hub`` with Range requests, up to five
  times one second apart: the one bounded wait left, in exchange for not restarting a 1.7 GB file); a file whose ETag is a SHA-256 (every LFS file on the Hub) is checked against it, and a mismatch
  is removed from the cache and refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from infoclip.errors import CheckpointError, WeightsNotFoundError

if TYPE_CHECKING:
    from infoclip.named_weights import NamedWeights

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "on", "yes", "true"}
_SHA256_HEX = set("0123456789abcdef")
#: OSError numbers that mean "this machine cannot store the file", not "the transfer failed"
_LOCAL_WRITE_ERRORS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.ENOTDIR, errno.EDQUOT}


def offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value now."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def endpoint() -> str:
    """The Hub address: ``HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    """The Hugging Face hub cache, resolved the way ``huggingface_hub`` resolves it, from the environment now."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def file_url(entry: NamedWeights) -> str:
    """The file's ``resolve`` address on the current endpoint."""
    prefix = {"model": "", "space": "spaces/", "dataset": "datasets/"}[entry.repo_type]
    return f"{endpoint()}/{prefix}{entry.repo}/resolve/{entry.revision}/{entry.filename}"


def cached_path(entry: NamedWeights) -> Path | None:
    """The file in the cache for the entry's revision, or ``None``; reads the cache folder only (no request,
    not even the headers ``hf_hub_download`` builds)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(
        repo_id=entry.repo,
        filename=entry.filename,
        cache_dir=str(cache_dir()),
        revision=entry.revision,
        repo_type=entry.repo_type,
    )
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def fetch(entry: NamedWeights, refresh: bool = False) -> Path:
    """The local path of the entry's file, downloaded into the Hugging Face cache if it is not there yet.

    Args:
        entry: what to fetch (a registered name or an ``hf:`` file).
        refresh: ask the Hub whether the revision now points at another file even when one is cached.

    Raises:
        WeightsNotFoundError: offline and not cached, Hub unreachable, repository, revision or file not
            found, or the download broke off (one line: what is wrong and what to do).
        CheckpointError: the downloaded file does not match its announced SHA-256 (it is removed).
    """
    found = cached_path(entry)
    if found is not None and (not refresh or offline()):
        return found
    if offline():
        raise WeightsNotFoundError(
            f"{entry.what} is not in the Hugging Face cache ({cache_dir()}) and HF_HUB_OFFLINE is set; "
            f"fetch it on a connected machine (infoclip weights download {entry.spec}) and copy that cache here, "
            f"or download {entry.url} and give the file's path as the weights"
        )
    announced = _check_remote(entry)
    path = _download(entry)
    if found is None or os.path.realpath(found) != os.path.realpath(path):  # new bytes: check them once
        _verify(entry, path, announced)
    return path


def _check_remote(entry: NamedWeights) -> str | None:
    """One HEAD request, no retries: raise the one-line error if the file cannot be downloaded; else return
    the SHA-256 the Hub announces for it (its LFS ETag), if it is one."""
    from huggingface_hub import get_hf_file_metadata
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = file_url(entry)
    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or 10)
    try:
        with _quiet_hub_logging():
            meta = get_hf_file_metadata(url=url, timeout=timeout, endpoint=endpoint())
    except RevisionNotFoundError as exc:
        raise WeightsNotFoundError(
            f"{entry.what}: revision {entry.revision!r} does not exist in {entry.repo} on {endpoint()}; "
            "use an existing branch, tag or commit hash"
        ) from exc
    except GatedRepoError as exc:
        raise WeightsNotFoundError(
            f"{entry.what}: {entry.repo} is gated on {endpoint()}; accept its terms on the Hub and log in "
            "(hf auth login, or set HF_TOKEN)"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise WeightsNotFoundError(
            f"{entry.what}: repository {entry.repo} ({entry.repo_type}) not found on {endpoint()}, or it is private "
            "(log in with hf auth login, or set HF_TOKEN)"
        ) from exc
    except EntryNotFoundError as exc:
        raise WeightsNotFoundError(
            f"{entry.what}: {entry.filename} is not in {entry.repo} at revision {entry.revision} (404 from {url}); "
            "check the file name, or download the file yourself and give its path as the weights"
        ) from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise WeightsNotFoundError(
            f"{entry.what}: the Hub answered HTTP {status} for {url}; try again later, or download the file "
            "yourself and give its path as the weights"
        ) from exc
    except Exception as exc:  # connection refused, DNS, timeout, proxy, TLS: the Hub cannot be reached
        reason = _first_line(exc)
        raise WeightsNotFoundError(
            f"cannot reach {endpoint()} to download {entry.what} ({reason}); check the network (or HF_ENDPOINT), "
            f"or download {entry.url} on a connected machine and give the file's path as the weights"
        ) from exc
    etag = (meta.etag or "").lower()
    return etag if len(etag) == 64 and set(etag) <= _SHA256_HEX else None


def _download(entry: NamedWeights) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        with _quiet_hub_logging():
            path = hf_hub_download(
                repo_id=entry.repo,
                filename=entry.filename,
                repo_type=entry.repo_type,
                revision=entry.revision,
                cache_dir=str(cache_dir()),
                endpoint=endpoint(),
                tqdm_class=_progress_class(entry.spec),
            )
    except Exception as exc:  # a broken-off body, a failed resume, a full disk: huggingface_hub kept nothing
        if isinstance(exc, OSError) and exc.errno in _LOCAL_WRITE_ERRORS:
            raise WeightsNotFoundError(
                f"cannot write {entry.what} into the Hugging Face cache {cache_dir()} ({exc.strerror}); "
                "free some space or set HF_HUB_CACHE to a writable folder"
            ) from exc
        raise WeightsNotFoundError(
            f"downloading {entry.what} from {endpoint()} failed before the end ({_first_line(exc)}); "
            "nothing was cached; run the command again"
        ) from exc
    return Path(path)


def _verify(entry: NamedWeights, path: Path, announced: str | None) -> None:
    """Check the downloaded file against the registry's SHA-256 (if any), else the Hub's LFS ETag."""
    expected = entry.sha256 or announced
    if not expected:
        return
    digest = sha256_file(path)
    if digest == expected:
        return
    blob = Path(os.path.realpath(path))
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)
    source = "the registry's" if entry.sha256 else "the SHA-256 the Hub announced"
    raise CheckpointError(
        f"the download of {entry.what} is corrupted (SHA-256 {digest[:12]}... is not {source} {expected[:12]}...); "
        "it was removed from the cache; run the command again"
    )


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """The SHA-256 of a file's content, as lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.rstrip(".")


@contextlib.contextmanager
def _quiet_hub_logging() -> Iterator[None]:
    """Keep ``huggingface_hub``'s warnings (retry notices, resume attempts) off the terminal: our one line says it."""
    logger = logging.getLogger("huggingface_hub")
    previous = logger.level
    logger.setLevel(logging.ERROR + 10)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _progress_class(label: str) -> type:
    """A tqdm bar on stderr for downloads, titled ``label`` (none when ``HF_HUB_DISABLE_PROGRESS_BARS`` is set)."""
    from tqdm import tqdm

    disabled = (os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") or "").strip().lower() in _TRUE

    class DownloadBar(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("file", sys.stderr)
            kwargs["disable"] = disabled
            kwargs["desc"] = f"downloading {label}"
            super().__init__(*args, **kwargs)

    return DownloadBar
