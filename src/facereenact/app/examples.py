"""Where example footage lives: ``FACEREENACT_DATA`` or ``../shared/data`` beside the repository.

Only the CLI's defaults use this (so the quick start runs with no arguments); nothing in the
library depends on the example data.
"""

from __future__ import annotations

import os
from pathlib import Path

from facereenact.app.locations import CHECKOUT_SHARED
from facereenact.errors import InputError

ENV_VAR = "FACEREENACT_DATA"
_PREFERRED_PORTRAIT = "lp_s1.jpg"
_PREFERRED_CLIP = "hdtf_aoc.mp4"


def data_dir(folder: str | os.PathLike[str] | None = None) -> Path:
    """The example-data folder: ``folder``, else the environment variable, else ../shared/data."""
    chosen = folder or os.environ.get(ENV_VAR) or CHECKOUT_SHARED / "data"
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise InputError(f"example data folder {path} does not exist (set {ENV_VAR} or name the folder)")
    return path


def _first(folder: Path, preferred: str, patterns: tuple[str, ...]) -> Path:
    if (folder / preferred).is_file():
        return folder / preferred
    found = sorted(p for pattern in patterns for p in folder.glob(pattern))
    if not found:
        raise InputError(f"no example files ({', '.join(patterns)}) in {folder}")
    return found[0]


def default_portrait(folder: str | os.PathLike[str] | None = None) -> Path:
    return _first(data_dir(folder) / "portraits", _PREFERRED_PORTRAIT, ("*.jpg", "*.png"))


def default_clip(folder: str | os.PathLike[str] | None = None) -> Path:
    return _first(data_dir(folder) / "clips", _PREFERRED_CLIP, ("*.mp4", "*.mov"))
