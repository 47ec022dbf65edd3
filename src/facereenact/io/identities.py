"""Identities files: which clips show the same person (one line per person, the clip names that
show them, separated by spaces or commas; ``#`` starts a comment). Training splits by them, and
the evaluation pairs clips of different people by them."""

from __future__ import annotations

from pathlib import Path

from facereenact.errors import InputError


def read_identity_groups(path: Path) -> dict[str, str]:
    """clip name → identity (the first name of its group) from an identities file."""
    mapping: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise InputError(f"cannot read identities file {path}: {error.strerror or error}") from None
    for line in lines:
        names = line.split("#", 1)[0].replace(",", " ").split()
        for name in names:
            mapping[name] = names[0]
    return mapping
