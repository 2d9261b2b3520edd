"""Reading the official checkpoints of the frameworks (what every adapter's importer starts from).

The official code of CAT-Seg, SAN and FC-CLIP trains with detectron2, which saves ``{"model": state_dict, ...}``;
people also pass the bare state dict or one saved from a DistributedDataParallel model (``module.`` prefixes).
``read_detectron2_state`` reads any of these with the weights-only unpickler and says in one line what is wrong
with a file that is none of them; deciding whether the weights belong to the adapter's framework stays with the
adapter.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from infoclip.errors import CheckpointError

#: keys named per problem in an error message
SHOWN_KEYS = 3


def name_some(keys: Sequence[str], shown: int = SHOWN_KEYS) -> str:
    """The first ``shown`` of ``keys``, comma-separated, with how many more there are."""
    more = f" (+{len(keys) - shown} more)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def read_detectron2_state(path: str | os.PathLike[str], framework: str) -> dict[str, torch.Tensor]:
    """The state dict in an official ``framework`` checkpoint file: detectron2's ``{"model": state_dict, ...}``
    or a bare state dict, ``module.`` prefixes (DistributedDataParallel) removed. Read with ``weights_only=True``.

    Args:
        path: the checkpoint file.
        framework: the framework's name for messages (``"CAT-Seg"``).

    Raises:
        CheckpointError: unreadable (a truncated download and a non-checkpoint file are named as such), or not a
            non-empty mapping of names to tensors.
    """
    from infoclip.weights import torch_load_checkpoint

    path = Path(path)
    try:
        data = torch_load_checkpoint(path)
    except CheckpointError as exc:
        _explain_unreadable(path, framework, exc)
        raise
    if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
        data = data["model"]
    expected = f'expected an official {framework} checkpoint ({{"model": state_dict}} as detectron2 saves it, or the state dict itself)'
    if not isinstance(data, Mapping) or not data:
        raise CheckpointError(f"{path} holds a {type(data).__name__}, not a state dict; {expected}")
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        verb = "is not a tensor" if len(bad) == 1 else "are not tensors"
        raise CheckpointError(f"{path} is not a state dict of named tensors: {name_some(bad)} {verb}; {expected}")
    if all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return dict(data)


def _explain_unreadable(path: Path, framework: str, exc: CheckpointError) -> None:
    """Raise a plainer error than torch's for the two usual cases: a cut-off download and a non-checkpoint."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is a truncated or damaged PyTorch checkpoint (its zip archive is incomplete); copy or download it again"
        ) from exc
    if head[:2] != b"PK" and head[:1] != b"\x80":  # neither torch.save's zip nor a legacy pickle stream
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive, this file is not one); "
            f"expected an official {framework} checkpoint"
        ) from exc
