"""The example media the commands use when no input is named.

By default these are the catalogued example portrait and driving clip (``examples/`` in the
assets folder, fetched by ``facereenact assets fetch``; in a development checkout, found in
``../shared/data``). A folder of example footage named with ``--data`` or ``FACEREENACT_DATA``
(``portraits/`` and ``clips/``) is used instead when given. Nothing in the library depends on
these files.
"""

from __future__ import annotations

import os
from pathlib import Path

from facereenact.app.locations import CHECKOUT_SHARED, assets_dir, locate
from facereenact.errors import AssetError, InputError
from facereenact.io.assets import BY_NAME, fetch_command

ENV_VAR = "FACEREENACT_DATA"
_PREFERRED_PORTRAIT = "lp_s1.jpg"
_PREFERRED_CLIP = "hdtf_aoc.mp4"
#: The catalogue's example media.
PORTRAIT = "examples/portrait.jpg"
CLIP = "examples/driving.mp4"


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


def _example(name: str, option: str, assets: str | os.PathLike[str] | None) -> Path:
    root = assets_dir(assets)
    path = locate(BY_NAME[name], root)
    if not path.is_file():
        raise AssetError(f"the example {name} is missing from {root}: name your own file with {option}, or fetch it with: {fetch_command(root)}")
    return path


def default_portrait(folder: str | os.PathLike[str] | None = None, assets: str | os.PathLike[str] | None = None) -> Path:
    """A data folder's portrait when one is named (``folder`` or ``FACEREENACT_DATA``), else the
    catalogue's example portrait."""
    if folder or os.environ.get(ENV_VAR):
        return _first(data_dir(folder) / "portraits", _PREFERRED_PORTRAIT, ("*.jpg", "*.png"))
    return _example(PORTRAIT, "--source", assets)


def default_clip(folder: str | os.PathLike[str] | None = None, assets: str | os.PathLike[str] | None = None, footage: bool = False) -> Path:
    """A data folder's clip when one is named (``folder`` or ``FACEREENACT_DATA``), else the
    catalogue's example driving clip. ``footage``: a checkout's ``../shared/data`` comes before
    the example (``bench`` times its 200-frame 512² clip there)."""
    if folder or os.environ.get(ENV_VAR) or (footage and (CHECKOUT_SHARED / "data" / "clips").is_dir()):
        return _first(data_dir(folder) / "clips", _PREFERRED_CLIP, ("*.mp4", "*.mov"))
    return _example(CLIP, "--driving", assets)
