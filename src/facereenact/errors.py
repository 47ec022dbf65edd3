"""Exceptions whose message is a complete, one-line explanation for the user.

The CLI prints ``str(error)`` and exits non-zero for any :class:`FaceReenactError`;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable


class FaceReenactError(Exception):
    """Base class: an expected failure with a message meant for the user."""


class InputError(FaceReenactError):
    """A user-supplied file is missing, unreadable, of the wrong type or unusable."""


class NoFaceError(FaceReenactError):
    """No face was found where one is required."""


class AssetError(FaceReenactError):
    """A model file is missing or corrupt."""


class OutputError(FaceReenactError):
    """An output cannot be written (unwritable folder, bad extension)."""


class DataError(FaceReenactError):
    """A prepared dataset is missing, empty or unreadable."""


class ConfigError(FaceReenactError):
    """A training configuration is malformed (unknown keys, wrong types)."""


class CheckpointError(FaceReenactError):
    """A model checkpoint is missing, corrupt, or from another architecture."""


class NotAvailableError(FaceReenactError):
    """An optional part of the project is not installed."""


class OptionError(InputError):
    """An option's value is out of bounds, or options conflict. It names the options by their
    field names; each interface words them its own way (a flag, a CSV column, a form field)."""

    def __init__(self, options: tuple[str, ...], problem: str, value: object = None):
        self.options, self.problem, self.value = options, problem, value
        super().__init__(self.worded(lambda name: name))

    def worded(self, name_of: Callable[[str], str]) -> str:
        """The message with each option named by ``name_of``."""
        names = " and ".join(name_of(option) for option in self.options)
        return f"{names} {self.value} {self.problem}" if self.value is not None else f"{names} {self.problem}"


class FaceIndexError(NoFaceError):
    """A face was asked for by its index (largest first) that the picture does not have."""

    def __init__(self, index: int, count: int, what: str):
        self.index, self.count, self.what = index, count, what
        super().__init__(f"face {index} asked for, but the {what} has {count} face(s)")


def shown(text: str) -> str:
    """``text`` as a one-line message can carry it: unchanged when printable, else quoted with its
    escapes (a key holding a newline or a control character stays on one line, and visible)."""
    return text if text.isprintable() else repr(text)
