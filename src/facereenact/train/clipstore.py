"""The prepared-clip file: face crops and per-frame 3DMM fits of one clip, in one ``.npz``.

Crops are stored as JPEG bytes laid end to end (``jpeg`` with ``jpeg_offsets``), about a tenth
of the raw pixels and still randomly accessible; parameters and landmarks are in the pixels of
the stored crops, so a dataset never needs the original video. Nothing in the file needs pickle.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import torch

from facereenact.errors import DataError
from facereenact.face3d.params import FaceParams
from facereenact.io.atomic import atomic_output

#: Bumped when the layout changes; older files are prepared again.
FORMAT_VERSION = 2  # 2: the blendshape scores
JPEG_QUALITY = 95
_PARAM_KEYS = ("rotation", "scale", "translation", "shape", "expression", "blendshapes")


@dataclass
class PreparedClip:
    """One clip: ``frames`` JPEG-coded crops, their fits (crop pixels) and the clip's metadata."""

    meta: dict[str, Any]
    params: dict[str, np.ndarray]
    landmarks: np.ndarray  # (T, 68, 3)
    boxes: np.ndarray  # (T, 4) crop boxes in the original frames
    found: np.ndarray  # (T,) bool
    jpeg: np.ndarray  # (bytes,) uint8
    jpeg_offsets: np.ndarray  # (T + 1,) int64

    def __len__(self) -> int:
        return len(self.found)

    def crop(self, index: int) -> np.ndarray:
        """Frame ``index`` as an (S, S, 3) RGB uint8 crop."""
        data = self.jpeg[self.jpeg_offsets[index] : self.jpeg_offsets[index + 1]]
        picture = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if picture is None:
            raise DataError(f"prepared clip {self.meta.get('clip')}: frame {index} does not decode")
        return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)

    def face_params(self, indices: list[int] | np.ndarray) -> FaceParams:
        """The fits of ``indices`` as a :class:`FaceParams` batch in crop pixels."""
        return FaceParams(**{key: torch.from_numpy(self.params[key][indices]) for key in _PARAM_KEYS})


def encode_crops(crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """RGB crops → (concatenated JPEG bytes, offsets with a leading 0)."""
    coded = []
    for picture in crops:
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise DataError("a crop could not be JPEG-encoded")
        coded.append(data.reshape(-1))
    offsets = np.zeros(len(coded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(c) for c in coded])
    return (np.concatenate(coded) if coded else np.zeros(0, np.uint8)), offsets


def save_clip(path: Path, clip: PreparedClip) -> None:
    """Write atomically: a run killed halfway leaves no file that looks prepared."""
    meta = dict(clip.meta, format=FORMAT_VERSION)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        # cast: mypy checks **-unpacked values against savez's allow_pickle: bool too (no key here is that).
        np.savez(
            handle,
            meta=np.array(json.dumps(meta)),
            landmarks=clip.landmarks.astype(np.float32),
            boxes=clip.boxes.astype(np.float32),
            found=clip.found.astype(bool),
            jpeg=clip.jpeg,
            jpeg_offsets=clip.jpeg_offsets,
            **cast("dict[str, Any]", {key: clip.params[key].astype(np.float32) for key in _PARAM_KEYS}),
        )


def read_meta(path: Path) -> dict[str, Any] | None:
    """The clip's metadata, or None when the file is unreadable or of an older format."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # any damage means "not prepared"
        return None
    return meta if meta.get("format") == FORMAT_VERSION else None


def load_clip(path: Path) -> PreparedClip:
    try:
        with np.load(path, allow_pickle=False) as data:
            return PreparedClip(
                meta=json.loads(str(data["meta"])),
                params={key: data[key] for key in _PARAM_KEYS},
                landmarks=data["landmarks"],
                boxes=data["boxes"],
                found=data["found"],
                jpeg=data["jpeg"],
                jpeg_offsets=data["jpeg_offsets"],
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"prepared clip {path} is unreadable ({type(error).__name__}: {error})") from None
