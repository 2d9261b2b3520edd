"""The few exception types infoclip raises.

Library code raises these; the command line turns each into a single line on stderr and exit code 1
(``infoclip_cli.errors``). Set ``INFOCLIP_DEBUG=1`` to see the traceback instead.
Every message says what is wrong and, where there is one, how to fix it.
"""

from __future__ import annotations


class InfoclipError(Exception):
    """Base class of every error infoclip raises on purpose.

    The message speaks the library's language: it names arguments of the public functions, never command-line
    flags. ``parameter`` names the argument the error is about (``"device"``, ``"force"``); where the way out is
    another argument, the message names it in backticks (``"pass `resume=True` to continue it"``) and lists it
    in ``mentions``. The command line (``infoclip_cli.errors``) shows each of these as its flag: the backticked
    names in place (``--resume``), and ``parameter``'s flag before the message when the message does not name it.
    """

    def __init__(self, *args: object, parameter: str | None = None, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(*args)
        self.parameter = parameter
        self.mentions = tuple(mentions)


class ConfigError(InfoclipError, ValueError):
    """A configuration file, a ``--set`` override or an argument has a wrong value."""


class AdapterError(InfoclipError):
    """An adapter is unknown, failed to load, or broke the adapter contract."""


class CheckpointError(InfoclipError):
    """A checkpoint or weights file is missing, corrupt, or belongs to another model."""


class WeightsNotFoundError(CheckpointError):
    """Pretrained weights are not available locally and cannot be downloaded."""


class DatasetError(InfoclipError):
    """A dataset folder, image or label is missing, unreadable or inconsistent."""


class InputError(InfoclipError, ValueError):
    """User input (an image, a class list, an output folder) cannot be used as given."""


class TrainingError(InfoclipError):
    """Training cannot go on (for example a non-finite loss); the last good checkpoint is kept."""


class DiskFullError(InfoclipError, OSError):
    """An output could not be written because its file system is full (or over quota); nothing half-written is
    left behind."""


class RunFolderBusyError(InputError):
    """A run folder is held by another training process (its lock is taken)."""


class MissingDependencyError(InfoclipError, ImportError):
    """An optional dependency (a pip extra such as ``infoclip[demo]``) is not installed; the message says how."""
