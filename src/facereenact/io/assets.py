"""The files the project can use, where they come from, and where they are looked up.

:data:`CATALOG` lists every file that is not part of the package itself: the model files of the
3D face front end, MediaPipe's face landmarker, and the example portrait and driving clip that the
commands' defaults use. Each entry has its size, SHA-256, licence and public origin, so that
``facereenact assets fetch`` can download and check it and ``facereenact assets verify`` can find
a truncated or altered copy.

Resolution order of the folder: an explicit folder, the ``FACEREENACT_ASSETS`` environment
variable, then the per-user folder (``$XDG_CACHE_HOME/facereenact/assets``, by default
``~/.cache/facereenact/assets``). (The command line adds a source checkout's ``../shared`` as a
fallback: see :mod:`facereenact.app.locations`.)
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from facereenact.errors import AssetError

ENV_VAR = "FACEREENACT_ASSETS"
#: The command that fetches missing files, named in every message about them.
FETCH_COMMAND = "facereenact assets fetch"

_3DDFA_V2 = "https://raw.githubusercontent.com/cleardusk/3DDFA_V2/master/"
_3DDFA = "https://raw.githubusercontent.com/cleardusk/3DDFA/master/"
_LIVEPORTRAIT = "https://raw.githubusercontent.com/KwaiVGI/LivePortrait/main/"
_MIT_3DDFA_V2 = "MIT (3DDFA_V2 code and weights)"
_BFM = "academic use only (derived from the Basel Face Model; 3DDFA's MIT licence covers its code, not these data)"


class Kind(str, Enum):
    """Why a file is in the catalogue."""

    #: Needed by every command that looks at a face.
    model = "model"
    #: The example portrait and clip that the commands use when no input is named.
    example = "example"
    #: Used when present; nothing needs it.
    optional = "optional"


@dataclass(frozen=True)
class AssetFile:
    """One file of the catalogue. ``name`` is its path inside an assets folder (and a mirror)."""

    name: str
    kind: Kind
    #: What uses it.
    used_by: str
    #: Its licence or terms of use.
    licence: str
    #: Where it is published (a direct download).
    url: str
    #: Size in bytes and SHA-256 (None: not known, so a copy cannot be checked).
    size: int | None
    sha256: str | None
    #: Its place in a development checkout's ``../shared`` folder when that differs from
    #: ``assets/NAME`` (the example media live in ``../shared/data``).
    shared_path: str | None = None

    @property
    def required(self) -> bool:
        return self.kind is not Kind.optional


CATALOG: tuple[AssetFile, ...] = (
    AssetFile("3ddfa/mb05_120x120.pth", Kind.model, "the 3DMM regressor (MobileNet, 3DDFA_V2)", _MIT_3DDFA_V2,
              _3DDFA_V2 + "weights/mb05_120x120.pth", 3752462, "f93ed7f1c4c0382b16d7c18480a5f67473c1917a47475a9823924f38aeb27280"),
    AssetFile("3ddfa/param_mean_std_62d_120x120.pkl", Kind.model, "the regressor's output normalisation", _MIT_3DDFA_V2,
              _3DDFA_V2 + "configs/param_mean_std_62d_120x120.pkl", 713, "090d7150f77cb66c29ddae21e4508fbde59123dcd1dea7facc24a7ed06d1c795"),
    AssetFile("3ddfa/FaceBoxesProd.pth", Kind.model, "the face detector (FaceBoxes, 3DDFA_V2)", _MIT_3DDFA_V2,
              _3DDFA_V2 + "FaceBoxes/weights/FaceBoxesProd.pth", 4072492, "c0cb2b1e40710c0aa5fc32a8759b1496a0fe0a126c907ca0ffe35b4bd0709d09"),
    AssetFile("3ddfa/Model_PAF.pkl", Kind.model, "the 3D face model (64×64 grid, BFM-derived)", _BFM,
              _3DDFA + "train.configs/Model_PAF.pkl", 2507052, "418713edd25e6c5938cb49e989ff8461d59a6c8bbe5aba3a643e9e77f9bc5e4d"),
    AssetFile("3ddfa/u_shp.npy", Kind.model, "the dense mean face (identity part): PNCC colours, landmarks", _BFM,
              _3DDFA + "train.configs/u_shp.npy", 638708, "8a3b8b5ba3b0526ce3ddd3e287b26e0192c150e477767f374a6e333a365ff7dd"),
    AssetFile("3ddfa/u_exp.npy", Kind.model, "the dense mean face (expression part): PNCC colours, landmarks", _BFM,
              _3DDFA + "train.configs/u_exp.npy", 638708, "69049fb360bfff61090f7705ba510ed9bd817da871edbaa69e2fed7df624cf19"),
    AssetFile("3ddfa/keypoints_sim.npy", Kind.model, "the 68 landmarks on the dense face", _BFM,
              _3DDFA + "train.configs/keypoints_sim.npy", 1760, "065053f041b03ed32e36641d26fcd9aefef36f6c518899091cdc6038a6246c13"),
    AssetFile("3ddfa/indices.npy", Kind.model, "the neck-free part of the dense face: PNCC colours", _BFM,
              _3DDFA_V2 + "configs/indices.npy", 153588, "b341debcdf26492332c1f96ced438e727e74164d1524cab9cca0aedf6ccd39c8"),
    AssetFile("mediapipe/face_landmarker.task", Kind.model, "MediaPipe's Face Landmarker: eyelids, gaze, brows, mouth; evaluation's keypoints",
              "Apache-2.0 (Google MediaPipe)",
              "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
              3758596, "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"),
    AssetFile("examples/portrait.jpg", Kind.example, "the example portrait (the commands' default --source)", "MIT (LivePortrait's example s1.jpg)",
              _LIVEPORTRAIT + "assets/examples/source/s1.jpg", 98411, "98931abeba483c27c699197e7c7bab58b7deb4324745b0f84e3c92e9ccef5901",
              shared_path="data/portraits/lp_s1.jpg"),
    AssetFile("examples/driving.mp4", Kind.example, "the example driving clip, 3 s (the commands' default --driving)", "MIT (LivePortrait's example d0.mp4)",
              _LIVEPORTRAIT + "assets/examples/driving/d0.mp4", 2958395, "63f6f9962e1fdf6e6722172e7a18155204858d5d5ce3b1e0646c150360c33bed",
              shared_path="data/clips/lp_d0.mp4"),
    AssetFile("3ddfa/bfm_noneck_v3.pkl", Kind.optional, "the dense 3D face model, used instead of the grid when present", _BFM,
              _3DDFA_V2 + "configs/bfm_noneck_v3.pkl", None, None),
)  # fmt: skip

#: The catalogue by name.
BY_NAME: dict[str, AssetFile] = {entry.name: entry for entry in CATALOG}
#: The files every command that looks at a face needs.
MODEL_FILES: tuple[str, ...] = tuple(entry.name for entry in CATALOG if entry.kind is Kind.model)


def user_assets_dir() -> Path:
    """The per-user folder for model files (where ``facereenact assets fetch`` puts them)."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "facereenact" / "assets"


def env_assets_dir() -> Path | None:
    """The folder ``FACEREENACT_ASSETS`` names, if set."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else None


def default_assets_dir() -> Path | None:
    """The environment variable's folder, else the per-user folder when it exists, else None."""
    env = env_assets_dir()
    if env is not None:
        return env
    user = user_assets_dir()
    return user if user.is_dir() else None


def fetch_command(folder: Path | None = None) -> str:
    """The command that fetches the files into ``folder`` (the default folder needs no option)."""
    default = env_assets_dir() or user_assets_dir()
    if folder is None or _same_folder(folder, default):
        return FETCH_COMMAND
    return f"{FETCH_COMMAND} --dir {shlex.quote(str(folder))}"


def _same_folder(a: Path, b: Path) -> bool:
    return a.expanduser().absolute() == b.expanduser().absolute()


def missing_message(folder: Path, names: Iterable[str]) -> str:
    """One line naming every missing file and the command that fetches them."""
    missing = list(names)
    them = "them" if len(missing) > 1 else "it"
    files = "1 file is" if len(missing) == 1 else f"{len(missing)} files are"
    return f"{files} missing from {folder}: {', '.join(missing)}; fetch {them} with: {fetch_command(folder)}"


# ---- checking a copy ----------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class State(str, Enum):
    """What :func:`check_file` found."""

    ok = "ok"
    #: Present, but no checksum is known to check it against.
    unchecked = "present (no checksum known)"
    missing = "missing"
    truncated = "truncated"
    #: Larger than the catalogue says.
    oversized = "too large"
    #: The right size, another SHA-256.
    altered = "altered"
    unreadable = "unreadable"


@dataclass(frozen=True)
class FileCheck:
    entry: AssetFile
    path: Path
    state: State
    #: What was found, in words (sizes, the start of a wrong SHA-256).
    detail: str = ""

    @property
    def good(self) -> bool:
        """Usable: checked, or present where no checksum is known."""
        return self.state in (State.ok, State.unchecked)


def check_file(entry: AssetFile, path: Path) -> FileCheck:
    """Compare the file at ``path`` with its catalogue entry: presence, size, SHA-256."""
    try:
        if not path.is_file():
            return FileCheck(entry, path, State.missing)
        size = path.stat().st_size
        if entry.size is not None and size < entry.size:
            return FileCheck(entry, path, State.truncated, f"{size:,} of {entry.size:,} bytes")
        if entry.size is not None and size > entry.size:
            return FileCheck(entry, path, State.oversized, f"{size:,} bytes, expected {entry.size:,}")
        if entry.sha256 is None:
            return FileCheck(entry, path, State.unchecked, f"{size:,} bytes")
        actual = sha256_of(path)
    except OSError as error:
        return FileCheck(entry, path, State.unreadable, error.strerror or type(error).__name__)
    if actual != entry.sha256:
        return FileCheck(entry, path, State.altered, f"SHA-256 {actual[:12]}…, expected {entry.sha256[:12]}…")
    return FileCheck(entry, path, State.ok)


@dataclass(frozen=True)
class Assets:
    """A resolved assets folder; ``path(name)`` checks that a file exists before anyone opens it."""

    root: Path

    @classmethod
    def resolve(cls, folder: str | os.PathLike[str] | None = None) -> Assets:
        """``folder``, else :func:`default_assets_dir`, else the per-user folder (even when it
        does not exist yet: :meth:`require` then names every file to fetch)."""
        if folder is not None:
            root = Path(folder).expanduser()
            if not root.is_dir():
                raise AssetError(f"assets folder {root} does not exist (fetch the files into it with: {fetch_command(root)})")
            return cls(root)
        return cls(default_assets_dir() or user_assets_dir())

    def require(self, names: Iterable[str] = MODEL_FILES) -> None:
        """Raise one :class:`AssetError` naming every one of ``names`` that is missing."""
        missing = [name for name in names if not self.has(name)]
        if missing:
            raise AssetError(missing_message(self.root, missing))

    def path(self, name: str) -> Path:
        file = self.root / name
        if not file.is_file():
            raise AssetError(missing_message(self.root, [name]))
        return file

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def load_torch(self, name: str) -> dict[str, Any]:
        """A PyTorch checkpoint as a plain dict of tensors, without executing pickled code."""
        import torch  # noqa: PLC0415 (slow to import; the catalogue and checks above do not need it)

        file = self.path(name)
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many unrelated types for a damaged file
            raise AssetError(f"{file} is corrupt or not a PyTorch checkpoint ({type(error).__name__}): check it with: facereenact assets verify") from None
        if not isinstance(state, dict):
            raise AssetError(f"{file} is not a checkpoint dictionary")
        return state

    def load_pickle(self, name: str) -> Any:
        file = self.path(name)
        try:
            with open(file, "rb") as handle:
                return pickle.load(handle, encoding="latin1")
        except Exception as error:
            raise AssetError(f"{file} is corrupt or not a pickle file ({type(error).__name__}): check it with: facereenact assets verify") from None

    def load_npy(self, name: str) -> np.ndarray:
        file = self.path(name)
        try:
            return np.load(file, allow_pickle=False)
        except Exception as error:
            raise AssetError(f"{file} is corrupt or not a .npy array ({type(error).__name__}): check it with: facereenact assets verify") from None
