"""Weights by name: the registry behind ``--weights catseg-b16`` and the ``hf:ORG/REPO/FILE[@REVISION]`` form.

The built-in names are data (``named_weights.yaml``: repository, file, format, adapter, size, published
mIoU, license). Plugins add names through the ``infoclip_register_weights`` hook, returning ``NamedWeights``.
This module only describes where weights live; ``infoclip.hub`` downloads them and ``infoclip.weights``
turns any weights argument (a name, ``hf:...``, a local file) into a loadable infoclip weights file.

Nothing here imports torch: the command line validates a weights argument before loading anything heavy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from infoclip.adapters.hookspecs import hookimpl
from infoclip.errors import ConfigError, InputError

REGISTRY_FILE = "named_weights.yaml"
#: ``auto``: found from the file's content once downloaded (``hf:`` files)
FORMATS: tuple[str, ...] = ("official", "infoclip", "auto")
REPO_TYPES: tuple[str, ...] = ("model", "space", "dataset")
HF_PREFIX = "hf:"
_REPO_TYPE_PREFIXES = {"spaces": "space", "datasets": "dataset", "models": "model"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class NamedWeights:
    """One named set of weights on the Hugging Face Hub.

    Attributes:
        name: what users type after ``--weights`` (``catseg-b16``).
        repo: the Hub repository id, ``ORG/REPO``.
        filename: the file inside the repository (may contain ``/``).
        adapter: the adapter that builds the model; for ``format="official"`` also the one whose importer
            converts the file.
        format: ``"official"`` (a checkpoint of the framework's own code, converted on first use),
            ``"infoclip"`` (an infoclip ``.safetensors`` weights file, used as is) or ``"auto"`` (either, found
            from the content; ``adapter`` may then be empty: every installed adapter's importer is tried).
        repo_type: ``"model"``, ``"space"`` or ``"dataset"``.
        revision: branch, tag or commit hash.
        summary: one line for ``infoclip weights list``.
        size_mb: approximate download size in MB (0: unknown).
        license: license of the weights.
        published_miou: benchmark -> mIoU (%) reported by the authors.
        miou_source: where ``published_miou`` comes from.
        homepage: the project page of the weights.
        sha256: the file's SHA-256 if known; a download that does not match is refused.
        importer: the adapter importer to use when it has several (default: its only one).
    """

    name: str
    repo: str
    filename: str
    adapter: str
    format: str = "official"
    repo_type: str = "model"
    revision: str = "main"
    summary: str = ""
    size_mb: int = 0
    license: str = ""
    published_miou: dict[str, float] = field(default_factory=dict)
    miou_source: str = ""
    homepage: str = ""
    sha256: str = ""
    importer: str | None = None

    def __post_init__(self) -> None:
        where = f"named weights {self.name!r}"
        if not self.name or any(c in self.name for c in "/:@ "):
            raise ConfigError(f"{where}: a name may not be empty or contain '/', ':', '@' or spaces")
        if self.repo.count("/") != 1 or not all(self.repo.split("/")):
            raise ConfigError(f"{where}: repo must be ORG/NAME, got {self.repo!r}")
        if not self.filename:
            raise ConfigError(f"{where}: filename is empty")
        if self.format not in FORMATS:
            raise ConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.repo_type not in REPO_TYPES:
            raise ConfigError(f"{where}: repo_type must be one of {', '.join(REPO_TYPES)}, got {self.repo_type!r}")
        if not self.adapter and self.format != "auto":
            raise ConfigError(f"{where}: adapter is required (unless format is auto)")
        if self.sha256 and not _SHA256.match(self.sha256):
            raise ConfigError(f"{where}: sha256 must be 64 lowercase hex digits")

    @property
    def url(self) -> str:
        """The file's address on huggingface.co (for messages: what to fetch by hand)."""
        prefix = {"model": "", "space": "spaces/", "dataset": "datasets/"}[self.repo_type]
        return f"https://huggingface.co/{prefix}{self.repo}/resolve/{self.revision}/{self.filename}"

    @property
    def spec(self) -> str:
        """What a user types to get this file: the name, or ``hf:...`` for an unnamed Hub file."""
        if self.format != "auto":
            return self.name
        prefix = {"model": "", "space": "spaces/", "dataset": "datasets/"}[self.repo_type]
        revision = "" if self.revision == "main" else f"@{self.revision}"
        return f"{HF_PREFIX}{prefix}{self.repo}/{self.filename}{revision}"

    @property
    def what(self) -> str:
        """``name (repo/file)`` (or the ``hf:`` spec) for messages."""
        if self.format == "auto":
            return self.spec
        return f"{self.name} ({self.repo_type + 's/' if self.repo_type != 'model' else ''}{self.repo}/{self.filename})"


def _from_mapping(name: str, entry: Any) -> NamedWeights:
    if not isinstance(entry, dict):
        raise ConfigError(f"{REGISTRY_FILE}: entry {name!r} must be a mapping")
    known = set(NamedWeights.__dataclass_fields__) - {"name"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{REGISTRY_FILE}: entry {name!r} has unknown keys {', '.join(unknown)}")
    values = dict(entry)
    values["published_miou"] = {str(k): float(v) for k, v in (values.get("published_miou") or {}).items()}
    return NamedWeights(name=name, **values)


@lru_cache(maxsize=1)
def _builtin() -> tuple[str, tuple[NamedWeights, ...]]:
    import yaml

    text = resources.files("infoclip").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    entries = tuple(_from_mapping(name, entry) for name, entry in data["weights"].items())
    return str(data["default"]), entries


def default_name() -> str:
    """The name ``infoclip segment`` uses when it is given neither weights nor a CLIP (``catseg-b16``)."""
    return _builtin()[0]


@hookimpl
def infoclip_register_weights() -> list[NamedWeights]:
    """The built-in names of ``named_weights.yaml``."""
    return list(_builtin()[1])


def registered_weights() -> dict[str, NamedWeights]:
    """Every named weights entry (built-in and from plugins), by name."""
    from infoclip.adapters.manager import collect_named

    return collect_named("infoclip_register_weights", NamedWeights, ConfigError, "weights")


def get_named_weights(name: str) -> NamedWeights:
    """The entry called ``name``; ``InputError`` listing the known names otherwise."""
    known = registered_weights()
    if name not in known:
        raise InputError(
            f"unknown weights name {name!r}; known names: {', '.join(sorted(known))} "
            "(or give a file path, or hf:ORG/REPO/FILE for any file on the Hugging Face Hub)"
        )
    return known[name]


def parse_hf_spec(spec: str) -> NamedWeights:
    """``hf:ORG/REPO/FILE[@REVISION]`` -> a ``NamedWeights`` of format ``auto`` (no adapter).

    ``hf:spaces/ORG/REPO/FILE`` and ``hf:datasets/ORG/REPO/FILE`` address Spaces and dataset repositories.
    The file's format is found from its content once it is downloaded.

    Raises:
        InputError: the spec is not of that form.
    """
    body = spec[len(HF_PREFIX) :] if spec.startswith(HF_PREFIX) else spec
    revision = "main"
    if "@" in body:
        body, revision = body.rsplit("@", 1)
    parts = body.split("/")
    repo_type = "model"
    if parts and parts[0] in _REPO_TYPE_PREFIXES:
        repo_type = _REPO_TYPE_PREFIXES[parts.pop(0)]
    if len(parts) < 3 or not all(parts) or not revision:
        raise InputError(
            f"{spec!r} is not a Hub file; write hf:ORG/REPO/FILE[@REVISION] "
            "(hf:spaces/ORG/REPO/FILE for a Space), e.g. hf:Mendel192/san/san_vit_b_16.pth"
        )
    repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"hf-{repo}-{filename}")
    return NamedWeights(
        name=name, repo=repo, filename=filename, adapter="", format="auto", repo_type=repo_type, revision=revision
    )


def is_hf_spec(spec: str) -> bool:
    return spec.startswith(HF_PREFIX)
