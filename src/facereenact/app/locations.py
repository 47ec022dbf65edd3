"""Where the commands look for model files and example media by default.

A source checkout of the project keeps them in ``../shared`` beside the repository (its
``assets/`` and ``data/``): the commands fall back to it so that the quick start runs from a
checkout with no options. The library itself never looks there (see
:mod:`facereenact.io.assets`).
"""

from __future__ import annotations

import os
from pathlib import Path

from facereenact.io.assets import ENV_VAR as ASSETS_ENV
from facereenact.io.assets import Assets, default_assets_dir

__all__ = ["ASSETS_ENV", "CHECKOUT_SHARED", "assets_dir", "resolve_assets"]

#: ``../shared`` beside the repository root of the checkout this package runs from.
CHECKOUT_SHARED = Path(__file__).resolve().parents[4] / "shared"


def assets_dir(folder: str | os.PathLike[str] | None = None) -> Path | None:
    """``folder``, else the library's default, else the checkout's ``../shared/assets``."""
    if folder is not None:
        return Path(folder).expanduser()
    found = default_assets_dir()
    if found is None and (CHECKOUT_SHARED / "assets").is_dir():
        found = CHECKOUT_SHARED / "assets"
    return found


def resolve_assets(folder: str | os.PathLike[str] | None = None) -> Assets:
    """The model files the commands use (see :func:`assets_dir`)."""
    return Assets.resolve(assets_dir(folder))
