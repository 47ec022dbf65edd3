"""Animated images (GIF, APNG, animated WebP) read as videos: every frame, each shown for its
own duration.

The frames are decoded by OpenCV (FFmpeg cannot decode animated WebP) and served at one
constant frame rate: the largest step that divides every frame's duration, so a frame that
lasts several steps is *held* for that many output frames (:attr:`AnimationReader.holds`).
Where the durations share no step of at least 1/:data:`MAX_RATE` s, the rate is
:data:`MAX_RATE` and each frame is held for its duration rounded to whole steps (at least one:
no frame is ever dropped).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from facereenact.errors import InputError
from facereenact.io.image import image_header_size
from facereenact.io.limits import MIN_IMAGE_SIDE, FrameSizeError

#: The highest frame rate an animation is served at.
MAX_RATE = 50
#: Delays this short (in milliseconds) are shown as :data:`DEFAULT_DELAY_MS` by web browsers, the
#: reference for how an animated image is meant to look; so they are here.
SHORTEST_DELAY_MS = 10
DEFAULT_DELAY_MS = 100
#: The most pixels (width × height × frames) an animation may have: it is decoded whole.
MAX_ANIMATION_PIXELS = 200_000_000

#: First bytes of the formats that can hold an animation.
_ANIMATABLE = (b"GIF87a", b"GIF89a", b"\x89PNG\r\n\x1a\n")


def _animatable(header: bytes) -> bool:
    return header.startswith(_ANIMATABLE) or (header[:4] == b"RIFF" and header[8:12] == b"WEBP")


def animation_frame_count(path: str | os.PathLike[str]) -> int:
    """The frames a GIF, PNG or WebP file declares (1 for a still image, and for any other
    file); only its header and chunk list are read. Never raises."""
    try:
        with open(path, "rb") as file:
            header = file.read(16)
        if not _animatable(header):
            return 1
        return max(1, int(cv2.imcount(os.fspath(path))))
    except (OSError, cv2.error, ValueError):
        return 1


def constant_rate(durations_ms: list[int]) -> tuple[Fraction, list[int]]:
    """The frame rate an animation is served at, and how many output frames each of its frames
    is held for (see the module docstring)."""
    durations = [d if d > SHORTEST_DELAY_MS else DEFAULT_DELAY_MS for d in durations_ms]
    step = math.gcd(*durations)
    if step * MAX_RATE >= 1000:
        return Fraction(1000, step), [d // step for d in durations]
    holds, shown, elapsed = [], 0, 0
    for duration in durations:
        elapsed += duration
        until = max(shown + 1, round(elapsed * MAX_RATE / 1000))
        holds.append(until - shown)
        shown = until
    return Fraction(MAX_RATE), holds


class AnimationReader:
    """An animated image, read like :class:`~facereenact.io.video.VideoReader`: :attr:`fps`,
    :attr:`frame_count`, :meth:`frames` (the distinct frames, RGB), no audio; plus
    :attr:`holds`, the output frames each frame lasts at :attr:`fps`.

    Raises:
        InputError: more pixels than :data:`MAX_ANIMATION_PIXELS`, frames smaller than
            ``MIN_IMAGE_SIDE``, or no frame that can be decoded.
    """

    audio = None

    def __init__(self, path: str | os.PathLike[str], declared: int):
        self.path = Path(path)
        self.warnings: list[str] = []
        try:
            data = np.fromfile(self.path, dtype=np.uint8)
        except OSError as error:
            raise InputError(f"cannot read {self.path}: {error.strerror or error}") from None
        size = image_header_size(data[:64].tobytes())
        if size is not None:
            width, height = size
            if width * height * declared > MAX_ANIMATION_PIXELS:
                raise FrameSizeError(
                    f"{self.path} is an animation of {declared} frames of {width}×{height} pixels; "
                    f"the limit is {MAX_ANIMATION_PIXELS / 1e6:g} megapixels in all"
                )
        try:
            _, animation = cv2.imdecodeanimation(data, 0, declared)
            frames, durations = list(animation.frames), [int(d) for d in animation.durations]
        except cv2.error:
            frames, durations = [], []
        if not frames:
            raise InputError(f"{self.path} is a damaged animation: none of its {declared} frames could be decoded")
        height, width = frames[0].shape[:2]
        if min(width, height) < MIN_IMAGE_SIDE:
            raise FrameSizeError(f"{self.path} is an animation of only {width}×{height} pixels; frames must be at least {MIN_IMAGE_SIDE} pixels on each side")
        if len(frames) < declared:
            self.warnings.append(f"{self.path} ends after {len(frames)} of the {declared} frames it declares (cut short or damaged): only those {len(frames)} were used")
        self._frames: list[np.ndarray] | None = frames
        rate, holds = constant_rate(durations[: len(frames)])
        self.fps = float(rate)
        self.rate = rate
        self.holds = holds
        self.frame_count = len(frames)

    def frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """The frames, once, as (H, W, 3) ``uint8`` RGB (any alpha is dropped)."""
        frames, self._frames = self._frames, None
        if frames is None:
            raise RuntimeError(f"{self.path} has already been read")
        return _rgb(frames[:max_frames])

    def close(self) -> None:
        self._frames = None

    def __enter__(self) -> AnimationReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rgb(frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    while frames:
        frame = frames.pop(0)  # each decoded frame is released once converted
        if frame.ndim == 2:
            yield cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        elif frame.shape[2] == 4:
            yield cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        else:
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
