"""Opening an input that may be a still image, an animated image or a video, judged from its
first bytes and its container's header (never by reading the whole file)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facereenact.errors import InputError
from facereenact.io.animation import AnimationReader, animation_frame_count
from facereenact.io.image import is_image_file, read_image
from facereenact.io.limits import FrameSizeError
from facereenact.io.video import StillImageError, VideoReader

#: What :func:`open_media` gives for a moving input: a video, or an animated image.
MovingMedia = VideoReader | AnimationReader


def open_media(path: str | os.PathLike[str], with_audio: bool = True) -> np.ndarray | MovingMedia:
    """A still image, decoded (H, W, 3); an animated image (GIF, APNG, WebP of more than one
    frame), decoded, as an :class:`AnimationReader`; or a video, opened once and not yet decoded
    (a :class:`VideoReader`). A one-line :class:`InputError` for anything else."""
    file = Path(path)
    if not file.exists():
        raise InputError(f"{file} does not exist")
    if file.is_dir():
        raise InputError(f"{file} is a folder, not an image or a video")
    if is_image_file(file):
        frames = animation_frame_count(file)
        return AnimationReader(file, frames) if frames > 1 else read_image(file)
    neither = InputError(f"{file} is neither an image nor a video that can be decoded")
    try:
        return VideoReader(file, with_audio)
    except StillImageError:
        # FFmpeg takes it for a still, from a format the first bytes did not tell (PPM, HDR, Sun
        # raster…) or from its name alone: the image reader decodes it, or says it is too small.
        try:
            return read_image(file)
        except FrameSizeError:
            raise
        except InputError:
            raise neither from None
    except FrameSizeError:
        raise
    except InputError:
        if _looks_like_video(file):
            raise  # its own reason (cut short before its index, say) tells more
        raise neither from None


def _looks_like_video(file: Path) -> bool:
    """Whether the first bytes are those of a video container (MP4/MOV, Matroska/WebM, AVI)."""
    try:
        with open(file, "rb") as handle:
            header = handle.read(16)
    except OSError:
        return False
    return header[4:8] == b"ftyp" or header[:4] == b"\x1a\x45\xdf\xa3" or (header[:4] == b"RIFF" and header[8:11] == b"AVI")


def read_still(path: str | os.PathLike[str]) -> np.ndarray:
    """An image, or the first frame of a video or an animation (a source may be any)."""
    media = open_media(path, with_audio=False)
    if isinstance(media, np.ndarray):
        return media
    with media:
        return next(media.frames(1))
