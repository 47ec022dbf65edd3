"""Opening an input that may be a still image or a video, judged from its first bytes and its
container's header (never by reading the whole file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facereenact.errors import InputError
from facereenact.io.image import is_image_file, read_image
from facereenact.io.video import VideoReader


def open_media(path: str | os.PathLike[str], with_audio: bool = True) -> np.ndarray | VideoReader:
    """A still image, decoded (H, W, 3), or a video, opened once and not yet decoded (a
    :class:`VideoReader`); a one-line :class:`InputError` for anything else."""
    file = Path(path)
    if not file.exists():
        raise InputError(f"{file} does not exist")
    if is_image_file(file):
        return read_image(file)
    try:
        return VideoReader(file, with_audio)
    except InputError:
        raise InputError(f"{file} is neither an image nor a video that can be decoded") from None


def read_still(path: str | os.PathLike[str]) -> np.ndarray:
    """An image, or the first frame of a video (a source may be either)."""
    media = open_media(path, with_audio=False)
    return media if isinstance(media, np.ndarray) else next(media.frames(1))
