"""The sizes of picture the project accepts, shared by the image, animation and video readers."""

from __future__ import annotations

from facereenact.errors import InputError

MAX_IMAGE_PIXELS = 40_000_000
"""Largest accepted image (width × height); bigger inputs are refused before they are decoded."""

MIN_IMAGE_SIDE = 32
"""Smallest accepted width or height of an image or a video's frames: below this there is no
usable face."""


class FrameSizeError(InputError):
    """An image, or the frames of a video or an animation, too small or too large to be used."""
