"""Where the commands look for model files and example media by default.

In order: the folder named (``--assets``), ``FACEREENACT_ASSETS``, the per-user folder that
``facereenact assets fetch`` fills, and, when none of those exists, a source checkout's
``../shared/assets`` beside the repository (whose example media are in ``../shared/data``). The
library itself never looks in ``../shared`` (see :mod:`facereenact.io.assets`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from facereenact.errors import AssetError
from facereenact.io.assets import ENV_VAR as ASSETS_ENV
from facereenact.io.assets import MODEL_FILES, AssetFile, Assets, default_assets_dir, fetch_command, user_assets_dir

__all__ = ["ASSETS_ENV", "CHECKOUT_SHARED", "assets_dir", "locate", "resolve_assets"]

#: ``../shared`` beside the repository root of the checkout this package runs from.
CHECKOUT_SHARED = Path(__file__).resolve().parents[4] / "shared"


def assets_dir(folder: str | os.PathLike[str] | None = None) -> Path:
    """``folder``, else the library's default, else the checkout's ``../shared/assets`` when it
    exists, else the per-user folder (where ``facereenact assets fetch`` puts the files)."""
    if folder is not None:
        return Path(folder).expanduser()
    found = default_assets_dir()
    if found is None and (CHECKOUT_SHARED / "assets").is_dir():
        found = CHECKOUT_SHARED / "assets"
    return found or user_assets_dir()


def resolve_assets(folder: str | os.PathLike[str] | None = None, required: Iterable[str] = MODEL_FILES) -> Assets:
    """The model files the commands use (see :func:`assets_dir`), after checking that every one
    of ``required`` is there: one error names all that are missing."""
    root = assets_dir(folder)
    if folder is not None and not root.is_dir():
        raise AssetError(f"assets folder {root} does not exist (fetch the files into it with: {fetch_command(root)})")
    assets = Assets(root)
    assets.require(required)
    return assets


def locate(entry: AssetFile, root: Path) -> Path:
    """Where a catalogued file is: in ``root``, else (for the example media) in the checkout's
    ``../shared`` layout; when it is nowhere, its place in ``root``."""
    path = root / entry.name
    if not path.is_file() and entry.shared_path is not None:
        shared = CHECKOUT_SHARED / entry.shared_path
        if shared.is_file():
            return shared
    return path
