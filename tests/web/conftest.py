"""Helpers shared by the web tests: pictures and clips without faces, and frame counting."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from facereenact.io.image import write_image
from facereenact.io.video import VideoWriter


def faceless_frames(count: int, size: int = 128) -> np.ndarray:
    """(count, size, size, 3) uint8: soft moving colour gradients, nothing like a face."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = [np.stack([x * 255, y * 255, np.full_like(x, 40 + 10 * t)], -1) for t in range(count)]
    return np.stack(frames).astype(np.uint8)


@pytest.fixture(scope="session")
def faceless_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faceless") / "no_face.mp4"
    with VideoWriter(path, 25) as writer:
        writer.write_batch(faceless_frames(10))
    return path


@pytest.fixture(scope="session")
def faceless_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faceless") / "wall.png"
    write_image(path, faceless_frames(1, 256)[0])
    return path


def count_frames(path: Path) -> tuple[int, int]:
    """(decoded video frames, audio streams) of a video file, counted with PyAV."""
    with av.open(str(path)) as container:
        audio = len(container.streams.audio)
        return sum(1 for _ in container.decode(video=0)), audio


def video_size(path: Path) -> tuple[int, int]:
    """(width, height) of a video file's first video stream."""
    with av.open(str(path)) as container:
        context = container.streams.video[0].codec_context
        return context.width, context.height
