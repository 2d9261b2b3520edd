"""Official checkpoints -> infoclip weights: the adapters' importers, and the cache of converted files.

``import_checkpoint`` runs an adapter's importer and checks the result against the adapter's model (built on
the meta device, so nothing is allocated) before anything is written. ``converted_weights`` does the same
once per source file and keeps the result, so that ``--weights model_base.pth`` or a named official
checkpoint converts on first use only.

The conversion cache lives in ``$INFOCLIP_CACHE/converted`` (default ``~/.cache/infoclip/converted``, or
``$XDG_CACHE_HOME/infoclip/converted``). An entry is ``<source stem>-<key>.safetensors`` where the key hashes
the source file's identity (its SHA-256, or the Hub's ETag of a downloaded file, which is the SHA-256 of LFS
files), the adapter, the importer, the adapter's version and ``CONVERSION_FORMAT``: a new infoclip version or
another file is a new entry, the same file is converted once. Entries are written atomically (complete or
absent) and may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from infoclip.errors import AdapterError, CheckpointError

#: bump when converted files change for a reason the adapters' versions do not capture
CONVERSION_FORMAT = "1"
_HASH_MEMO = "source-hashes.json"


def infoclip_cache_dir() -> Path:
    """infoclip's own cache folder: ``$INFOCLIP_CACHE``, else ``$XDG_CACHE_HOME/infoclip``, else ``~/.cache/infoclip``."""
    explicit = os.environ.get("INFOCLIP_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "infoclip"


def conversion_cache_dir() -> Path:
    """Where converted official checkpoints are kept (``infoclip_cache_dir() / "converted"``)."""
    return infoclip_cache_dir() / "converted"


def import_checkpoint(
    source: str | os.PathLike[str], adapter_name: str, importer: str | None = None
) -> tuple[dict[str, Any], Any, str]:
    """Run adapter ``adapter_name``'s importer on ``source``; returns ``(state_dict, WeightsMeta, importer name)``,
    the state checked to fit the adapter's model.

    Raises:
        AdapterError: unknown adapter, or it has no (such) importer.
        CheckpointError: the importer refused the source, or its result does not fit the adapter's model.
    """
    import torch

    from infoclip.adapters import get_adapter
    from infoclip.weights import WeightsMeta

    source = Path(source)
    adapter = get_adapter(adapter_name)
    if not adapter.importers:
        raise AdapterError(f"adapter {adapter.name!r} has no checkpoint importer")
    if importer is None:
        if len(adapter.importers) > 1:
            raise AdapterError(
                f"adapter {adapter.name!r} has several importers ({', '.join(sorted(adapter.importers))}); choose one"
            )
        importer = next(iter(adapter.importers))
    if importer not in adapter.importers:
        raise AdapterError(
            f"adapter {adapter.name!r} has no importer {importer!r}; importers: {', '.join(sorted(adapter.importers))}"
        )
    try:
        state, config = adapter.importers[importer](source)
    except CheckpointError:
        own = _own_file_hint(source)
        if own is None:
            raise
        raise CheckpointError(own) from None
    with torch.device("meta"):
        model = adapter.build_model(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    misfits = sorted(set(expected) ^ set(state)) + sorted(
        k for k in expected if k in state and tuple(state[k].shape) != expected[k]
    )
    if misfits:
        raise CheckpointError(
            f"the {importer} importer of {adapter.name} produced weights that do not fit its model: {', '.join(misfits[:3])}"
        )
    meta = WeightsMeta(
        adapter=adapter.name,
        config=model.model_config(),
        clip_tag=model.clip_tag,
        source=f"infoclip convert {adapter.name} {source.name}",
    )
    return state, meta, importer


def _own_file_hint(source: Path) -> str | None:
    """What to do instead when ``source`` is one of infoclip's own training files (a run or its checkpoint)."""
    from infoclip.training.checkpoint import read_checkpoint

    try:
        iteration = read_checkpoint(source).get("iteration")
    except (CheckpointError, OSError):
        return None
    return (
        f"{source} is an infoclip training {'run' if source.is_dir() else 'checkpoint'} (iteration {iteration}), not "
        f"an official checkpoint; make inference weights from it with `infoclip export {source} -o weights.safetensors`"
    )


def importing_adapters() -> list[str]:
    """Names of the installed adapters that have a checkpoint importer."""
    from infoclip.adapters import adapters

    return sorted(name for name, adapter in adapters().items() if adapter.importers)


def source_id(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a local file, remembered by (path, size, mtime) so a large file is hashed once."""
    from infoclip.hub import sha256_file
    from infoclip.io_utils import atomic_write_text

    path = Path(path).resolve()
    stat = path.stat()
    memo_path = infoclip_cache_dir() / _HASH_MEMO
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if not isinstance(memo, dict):
        memo = {}
    if key not in memo:
        memo[key] = "sha256:" + sha256_file(path)
        try:
            atomic_write_text(memo_path, json.dumps(memo, indent=0, sort_keys=True))
        except OSError:
            pass  # an unwritable cache only costs hashing again next time
    return str(memo[key])


def converted_weights(
    source: str | os.PathLike[str],
    adapter_name: str | None = None,
    importer: str | None = None,
    identity: str | None = None,
    label: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> Path:
    """The infoclip weights file converted from the official checkpoint ``source``, converting on first use.

    Args:
        source: the official checkpoint file.
        adapter_name: the adapter whose importer reads it; ``None`` tries every adapter that has one and
            keeps the first that accepts the file.
        importer: the adapter's importer (default: its only one).
        identity: the source's content id when known without hashing (a Hub ETag); default: its SHA-256.
        label: how messages name the source (default: its path).
        notify: called with one line before a conversion starts (the command line prints it).

    Raises:
        CheckpointError: no (given) adapter can import the file; the message carries the importer's reason.
        AdapterError: the adapter is not installed or has no importer.
    """
    from infoclip.weights import save_weights

    source = Path(source)
    label = label or str(source)
    candidates = [adapter_name] if adapter_name else importing_adapters()
    if not candidates:
        raise AdapterError(f"no installed adapter can import checkpoints, so {label} cannot be converted")
    ident = identity or source_id(source)
    target = cache_entry(source, candidates, importer, ident)
    if target.is_file():
        return target
    reasons = []
    for name in candidates:
        if notify is not None:
            notify(f"converting {label} from the official {name} format into {target.parent} (once)")
        try:
            state, meta, _ = import_checkpoint(source, name, importer)
        except CheckpointError as exc:
            reasons.append(f"{name}: {_first_line(exc)}")
            continue
        meta.source = f"infoclip convert {name} {label} ({ident})"
        try:
            save_weights(target, state, meta)
        except OSError as exc:
            raise CheckpointError(
                f"cannot write the converted weights of {label} into {target.parent} ({exc.strerror or exc}); "
                "set INFOCLIP_CACHE to a writable folder"
            ) from exc
        return target
    if len(candidates) == 1:
        raise CheckpointError(f"{label} is not an official {candidates[0]} checkpoint ({reasons[0].split(': ', 1)[1]})")
    raise CheckpointError(
        f"{label} is neither infoclip weights nor a checkpoint any installed adapter imports ({'; '.join(reasons)})"
    )


def cache_entry(source: Path, adapter_names: list[str], importer: str | None, identity: str) -> Path:
    """The conversion-cache path for ``source`` (whose content id is ``identity``) read by those adapters."""
    from infoclip.adapters import get_adapter

    versions = [f"{name}={get_adapter(name).version}" for name in adapter_names]
    key_text = "|".join([identity, ",".join(versions), importer or "", CONVERSION_FORMAT])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    return conversion_cache_dir() / f"{Path(source).stem}-{key}.safetensors"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
