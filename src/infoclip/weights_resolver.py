"""One resolver for every place that takes weights: a name, ``hf:ORG/REPO/FILE[@REV]``, or a local file.

``resolve_weights(spec)`` returns the path of an infoclip weights file (``.safetensors`` with infoclip
metadata) for any of:

* a registered name (``catseg-b16``; ``infoclip weights list``): downloaded once into the Hugging Face cache
  (``infoclip.hub``), converted once if it is an official checkpoint (``infoclip.conversion``);
* ``hf:ORG/REPO/FILE[@REVISION]`` (``hf:spaces/ORG/REPO/FILE`` for a Space): any file on the Hub, infoclip
  weights or an official checkpoint of an installed adapter, found from its content;
* a local infoclip weights file, used as is;
* a local official checkpoint (``model_base.pth``), converted on first use, the result cached.

``segment``, ``eval``, ``Segmenter.from_pretrained``, training's ``train.init_weights`` and ``infoclip.weights
.load_model`` all go through it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infoclip.errors import AdapterError, CheckpointError

if TYPE_CHECKING:
    from infoclip.named_weights import NamedWeights

_SAFETENSORS_SUFFIX = ".safetensors"
_PATH_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".pkl")


@dataclass(frozen=True)
class ResolvedWeights:
    """What a weights argument turned into.

    Attributes:
        path: the infoclip weights file to load.
        spec: the argument as given.
        name: the registered name, if the argument was one.
        source: the file the weights came from (downloaded or local; equals ``path`` when no conversion ran).
    """

    path: Path
    spec: str
    name: str | None
    source: Path

    @property
    def converted(self) -> bool:
        return self.path != self.source


def looks_like_path(spec: str) -> bool:
    """A path rather than a name: it has a folder separator or a checkpoint suffix."""
    return os.sep in spec or "/" in spec or spec.startswith(("~", ".")) or spec.endswith(_PATH_SUFFIXES)


def is_safetensors(path: Path) -> bool:
    """The file is a safetensors file: its name says so, or it starts with a JSON header length and '{'."""
    if path.suffix == _SAFETENSORS_SUFFIX:
        return True
    with path.open("rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < size < path.stat().st_size


def resolve_weights(
    spec: str | os.PathLike[str], refresh: bool = False, notify: Callable[[str], None] | None = None
) -> ResolvedWeights:
    """The infoclip weights file for a weights argument (see the module docstring).

    Args:
        spec: a name, ``hf:...``, or a file path.
        refresh: for names and ``hf:`` files, ask the Hub whether the revision moved even when cached.
        notify: called with one line before an official checkpoint is converted (the CLI prints it).

    Raises:
        InputError: an unknown name or a malformed ``hf:`` spec.
        WeightsNotFoundError: a missing file, or a download that cannot happen (offline, 404, ...).
        AdapterError: the name's adapter is not installed.
        CheckpointError: the file is neither infoclip weights nor an official checkpoint an adapter imports.
    """
    from infoclip.named_weights import get_named_weights, is_hf_spec, parse_hf_spec

    text = os.fspath(spec)
    local = Path(text).expanduser()
    if local.is_file():
        return _local(local, text, notify)
    if is_hf_spec(text):
        entry = parse_hf_spec(text)
        return _hub(entry, text, None, refresh, notify)
    if local.is_dir() or looks_like_path(text) or isinstance(spec, os.PathLike):
        from infoclip.errors import WeightsNotFoundError

        if local.is_dir():
            raise WeightsNotFoundError(f"{local} is a folder, not a weights file (export a run with infoclip export)")
        raise WeightsNotFoundError(f"weights file not found: {local}")
    entry = get_named_weights(text)
    return _hub(entry, text, entry.name, refresh, notify)


def _local(path: Path, spec: str, notify: Callable[[str], None] | None) -> ResolvedWeights:
    from infoclip.conversion import converted_weights

    if is_safetensors(path):
        _check_infoclip_file(path)
        return ResolvedWeights(path, spec, None, path)
    converted = converted_weights(path, label=str(path), notify=notify)
    return ResolvedWeights(converted, spec, None, path)


def _hub(
    entry: NamedWeights, spec: str, name: str | None, refresh: bool, notify: Callable[[str], None] | None
) -> ResolvedWeights:
    from infoclip.adapters import adapters
    from infoclip.conversion import converted_weights
    from infoclip.hub import fetch

    if entry.adapter and entry.adapter not in adapters():
        installed = ", ".join(sorted(adapters())) or "none"
        raise AdapterError(
            f"{entry.what} needs the {entry.adapter!r} adapter, which is not installed (installed: {installed}); "
            f"install the package that provides it, or use another name"
        )
    downloaded = fetch(entry, refresh=refresh)
    identity = hub_identity(downloaded)
    if entry.format == "infoclip" or (entry.format == "auto" and is_safetensors(downloaded)):
        try:
            _check_infoclip_file(downloaded)
        except CheckpointError as exc:
            raise CheckpointError(f"{entry.what} is not an infoclip weights file ({exc})") from exc
        return ResolvedWeights(downloaded, spec, name, downloaded)
    try:
        converted = converted_weights(
            downloaded, entry.adapter or None, entry.importer, identity=identity, label=entry.what, notify=notify
        )
    except CheckpointError as exc:
        if name is None:
            raise
        raise CheckpointError(f"{exc}; the file behind the name {name} is not what the registry says, report it") from exc
    return ResolvedWeights(converted, spec, name, downloaded)


def hub_identity(downloaded: Path) -> str:
    """The content id of a file in the Hugging Face cache: its blob's name, the Hub's ETag (SHA-256 for LFS)."""
    return "hf-etag:" + Path(os.path.realpath(downloaded)).name


def cache_status(entry: NamedWeights) -> str:
    """Whether a named file is ready offline: ``"ready"`` (downloaded, and converted if it needs to be),
    ``"downloaded"`` (not converted yet) or ``"no"``. Makes no request."""
    from infoclip.adapters import adapters
    from infoclip.conversion import cache_entry
    from infoclip.hub import cached_path

    downloaded = cached_path(entry)
    if downloaded is None:
        return "no"
    if entry.format == "infoclip":
        return "ready"
    if entry.adapter not in adapters():
        return "downloaded"
    target = cache_entry(downloaded, [entry.adapter], entry.importer, hub_identity(downloaded))
    return "ready" if target.is_file() else "downloaded"


def _check_infoclip_file(path: Path) -> None:
    """Raise ``CheckpointError`` unless ``path`` is a safetensors file with infoclip metadata (header only)."""
    from safetensors import SafetensorError, safe_open

    from infoclip.weights import WeightsMeta

    try:
        with safe_open(str(path), framework="pt") as f:
            WeightsMeta.from_strings(f.metadata() or {}, path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({str(exc).splitlines()[0]}); "
            "infoclip reads .safetensors written by `infoclip export` or `infoclip convert`"
        ) from exc
