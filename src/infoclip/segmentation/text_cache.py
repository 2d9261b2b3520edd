"""A disk cache of class text embeddings, so a second run with the same vocabulary skips the text tower.

The key is everything the embeddings depend on: the model's identity (adapter, weights file path, size and
modification time, CLIP tag, precision), the prompt templates (and whether they are ensembled) and the class
names in order. Changing any part gives another key, so a stale entry is never read. Entries are
``<sha256 of the key>.safetensors`` files written to a temporary name and renamed into place
(``infoclip.io_utils.atomic_write``): two processes writing the same entry at once each rename a complete file,
and a reader sees either no file or a whole one. A damaged entry is ignored and rewritten.

Models use it when ``OVSSModel.text_embedding_cache`` is set (``Segmenter(..., text_cache=FOLDER)``, ``segment
--text-cache``, ``eval --text-cache``) and only for inference (eval mode, no gradients).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from infoclip.io_utils import atomic_write

#: bump when the stored layout changes: old entries are then simply not found
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$INFOCLIP_CACHE/text`` if set, else ``$XDG_CACHE_HOME/infoclip/text`` (``~/.cache/infoclip/text``)."""
    if os.environ.get("INFOCLIP_CACHE"):
        return Path(os.environ["INFOCLIP_CACHE"]) / "text"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "infoclip" / "text"


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a weights file cheaply: its resolved path, size and modification time (ns)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


class TextEmbeddingCache:
    """Embeddings on disk under ``folder`` for one model identity.

    Args:
        folder: where entries live (created on first write).
        identity: JSON-serialisable description of the model (see the module docstring).
    """

    def __init__(self, folder: str | os.PathLike[str], identity: Mapping[str, Any]) -> None:
        self.folder = Path(folder)
        self.identity = dict(identity)
        self.hits = 0
        self.misses = 0

    def key(self, templates: Sequence[str], class_names: Sequence[str], **extra: Any) -> str:
        payload = {
            "format": CACHE_FORMAT,
            "identity": self.identity,
            "templates": list(templates),
            "classes": list(class_names),
            **extra,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def get_or_compute(
        self,
        templates: Sequence[str],
        class_names: Sequence[str],
        compute: Callable[[], torch.Tensor],
        device: torch.device | str = "cpu",
        **extra: Any,
    ) -> torch.Tensor:
        """The cached embeddings of this key on ``device``, else ``compute()`` stored and returned.

        ``compute`` returns a float tensor of any shape; it is stored in its own dtype, so a cached run computes
        with exactly the tensor an uncached one would.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load_file, save_file

        path = self.path(self.key(templates, class_names, **extra))
        if path.is_file():
            try:
                tensor = load_file(str(path))["embeddings"]
            except (SafetensorError, KeyError, OSError, RuntimeError):
                pass  # damaged or partial by another tool: recompute and replace
            else:
                self.hits += 1
                return tensor.to(device)
        self.misses += 1
        tensor = compute()
        stored = tensor.detach().cpu().contiguous()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: save_file({"embeddings": stored}, str(tmp)))
        except OSError:
            pass  # a read-only cache must not stop a prediction
        return tensor

    def describe(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "hits": self.hits, "misses": self.misses}
