"""The optional parts of the install, checked before a command starts its work.

A command that needs an extra calls :func:`require_extra` first, so that a missing package is one
line naming the install command, not a traceback at the end of a long run. The check looks the
modules up without importing them (fast, and safe for packages whose import is slow or fragile).
"""

from __future__ import annotations

import importlib.util

from facereenact.errors import NotAvailableError

#: Each extra of ``pyproject.toml`` and the modules that tell it is installed.
EXTRAS: dict[str, tuple[str, ...]] = {
    "eval": ("dlib", "face_recognition_models", "matplotlib"),
    "web": ("fastapi", "uvicorn"),
    "train": ("tensorboard",),
    "ray": ("ray",),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    missing = []
    for module in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a parent package that fails, or a module set to None
            found = False
        if not found:
            missing.append(module)
    return missing


def install_command(extra: str) -> str:
    """The command that installs ``extra``, quoted so that no shell expands its brackets."""
    return f'pip install "facereenact[{extra}]"'


def require_extra(extra: str, purpose: str) -> None:
    """Raise :class:`NotAvailableError` when a module of ``extra`` is missing; ``purpose`` says
    what needs it ("evaluate", "--backend ray")."""
    missing = missing_modules(extra)
    if missing:
        raise NotAvailableError(f"{purpose} needs the {extra!r} extra ({', '.join(missing)} not installed): {install_command(extra)}")
