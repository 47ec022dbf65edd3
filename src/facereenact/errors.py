"""Exceptions whose message is a complete, one-line explanation for the user.

The CLI prints ``str(error)`` and exits non-zero for any :class:`FaceReenactError`;
anything else is a bug and keeps its traceback.
"""


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
