"""Where an animation's frames go: a video file, or a folder of PNG frames, at the asked size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facereenact.io.sequence import FrameFolderWriter
from facereenact.io.video import AudioTrack, VideoWriter


def is_frame_folder(output: Path) -> bool:
    """An output named without an extension is a folder of PNG frames."""
    return output.suffix == ""


def open_writer(output: Path, fps: float, audio: AudioTrack | None, crf: int) -> VideoWriter | FrameFolderWriter:
    """The writer of ``output``: a video with ``audio``, or a folder of frames (no audio)."""
    if is_frame_folder(output):
        return FrameFolderWriter(output)
    return VideoWriter(output, fps, audio_from=audio, crf=crf)


def fit_size(frame: np.ndarray, max_size: int | None) -> np.ndarray:
    """A frame (H, W, 3) scaled down (area-averaged) so its longer side is at most ``max_size``."""
    height, width = frame.shape[:2]
    if max_size is None or max(height, width) <= max_size:
        return frame
    scale = max_size / max(height, width)
    return cv2.resize(frame, (max(2, round(width * scale)), max(2, round(height * scale))), interpolation=cv2.INTER_AREA)


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    """An image scaled to ``height`` rows, its aspect kept."""
    width = max(2, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR)
