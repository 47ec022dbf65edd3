"""Where model files live: one place resolves them and explains what is missing.

Resolution order: an explicit folder, the ``FACEREENACT_ASSETS`` environment variable, then the
per-user folder (``$XDG_CACHE_HOME/facereenact/assets``, by default ``~/.cache/facereenact/assets``)
when it exists. (The command line adds a source checkout's ``../shared/assets`` as its default
folder: see :mod:`facereenact.app.locations`.)
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facereenact.errors import AssetError

ENV_VAR = "FACEREENACT_ASSETS"

#: Where each file comes from, for the message a user sees when it is missing.
ASSET_SOURCES: dict[str, str] = {
    "3ddfa/mb05_120x120.pth": "the 3DDFA_V2 project (cleardusk/3DDFA_V2, weights/)",
    "3ddfa/FaceBoxesProd.pth": "the 3DDFA_V2 project (cleardusk/3DDFA_V2, FaceBoxes/weights/)",
    "3ddfa/param_mean_std_62d_120x120.pkl": "the 3DDFA_V2 project (cleardusk/3DDFA_V2, configs/)",
    "3ddfa/Model_PAF.pkl": "the 3DDFA project (cleardusk/3DDFA, train.configs/)",
    "3ddfa/u_shp.npy": "the 3DDFA project (cleardusk/3DDFA, train.configs/)",
    "3ddfa/u_exp.npy": "the 3DDFA project (cleardusk/3DDFA, train.configs/)",
    "3ddfa/indices.npy": "the 3DDFA_V2 project (cleardusk/3DDFA_V2, configs/)",
    "3ddfa/keypoints_sim.npy": "the 3DDFA project (cleardusk/3DDFA, train.configs/)",
    "3ddfa/ncc_code.npy": "the 3DDFA_V2 project (cleardusk/3DDFA_V2, configs/)",
    "3ddfa/tri.pkl": "the 3DDFA_V2 project (cleardusk/3DDFA_V2, configs/)",
    "3ddfa/bfm_noneck_v3.pkl": "the 3DDFA_V2 project (cleardusk/3DDFA_V2, configs/; optional dense model)",
    "mediapipe/face_landmarker.task": "Google's MediaPipe model page (face_landmarker.task)",
}


def user_assets_dir() -> Path:
    """The per-user folder for model files."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "facereenact" / "assets"


def default_assets_dir() -> Path | None:
    """The environment variable's folder, else the per-user folder when it exists, else None."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    user = user_assets_dir()
    return user if user.is_dir() else None


@dataclass(frozen=True)
class Assets:
    """A resolved assets folder; ``path(name)`` checks that a file exists before anyone opens it."""

    root: Path

    @classmethod
    def resolve(cls, folder: str | os.PathLike[str] | None = None) -> Assets:
        root = Path(folder).expanduser() if folder is not None else default_assets_dir()
        if root is None:
            raise AssetError(
                f"no model files found: set {ENV_VAR} to their folder or put them in {user_assets_dir()} (see docs/assets.md)"
            )
        if not root.is_dir():
            raise AssetError(f"assets folder {root} does not exist")
        return cls(root)

    def path(self, name: str) -> Path:
        file = self.root / name
        if not file.is_file():
            source = ASSET_SOURCES.get(name, "docs/assets.md")
            raise AssetError(f"missing asset {name} in {self.root}: get it from {source}")
        return file

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def load_torch(self, name: str) -> dict[str, Any]:
        """A PyTorch checkpoint as a plain dict of tensors, without executing pickled code."""
        file = self.path(name)
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many unrelated types for a damaged file
            raise AssetError(f"{file} is corrupt or not a PyTorch checkpoint ({type(error).__name__})") from None
        if not isinstance(state, dict):
            raise AssetError(f"{file} is not a checkpoint dictionary")
        return state

    def load_pickle(self, name: str) -> Any:
        file = self.path(name)
        try:
            with open(file, "rb") as handle:
                return pickle.load(handle, encoding="latin1")
        except Exception as error:
            raise AssetError(f"{file} is corrupt or not a pickle file ({type(error).__name__})") from None

    def load_npy(self, name: str) -> np.ndarray:
        file = self.path(name)
        try:
            return np.load(file, allow_pickle=False)
        except Exception as error:
            raise AssetError(f"{file} is corrupt or not a .npy array ({type(error).__name__})") from None
