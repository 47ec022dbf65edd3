"""Tracking a driving video (or animated image) in the one pass that decodes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from facereenact.app.progress import ProgressFactory
from facereenact.face3d.fitter import FaceFitter, VideoFit
from facereenact.io.media import MovingMedia
from facereenact.io.video import FrameStore


@dataclass
class TrackedVideo:
    """A video's tracked face, its frame rate, and (when asked for) its decoded frames."""

    fit: VideoFit
    fps: float
    frames: FrameStore | None
    #: Output frames each tracked frame lasts at ``fps`` (None: one each, as in a video): an
    #: animated image's frames each keep their own duration.
    holds: list[int] | None = None
    #: What the reading had to leave out (a file cut short, damaged data), one line each.
    warnings: list[str] = field(default_factory=list)


def track(fitter: FaceFitter, reader: MovingMedia, smoothing: bool, max_frames: int | None, progress: ProgressFactory, keep_frames: bool) -> TrackedVideo:
    """Decode ``reader`` once and track its face; with ``keep_frames`` the decoded frames are kept
    for the later stages that show or sample them (the caller closes the store)."""
    total = min(reader.frame_count, max_frames) if max_frames else reader.frame_count
    store = FrameStore() if keep_frames else None

    def frames() -> Iterator[np.ndarray]:
        for frame in reader.frames(max_frames):
            if store is not None:
                store.append(frame)
            yield frame

    holds = reader.holds
    # The smoothing filter wants the rate of the frames it sees: an animation's held frames are
    # fewer than its rate's.
    rate = reader.fps * len(holds) / sum(holds) if holds else reader.fps
    try:
        fit = fitter.track(frames(), rate, smoothing, on_frame=progress("fitting", total))
    except BaseException:
        if store is not None:
            store.close()
        raise
    return TrackedVideo(fit, reader.fps, store, holds[: len(fit)] if holds is not None else None, list(reader.warnings))


class FrameSink(Protocol):
    frames_written: int

    def write(self, frame: np.ndarray) -> None: ...


class Held:
    """A writer that writes each frame as many times as it is held (:attr:`TrackedVideo.holds`)."""

    def __init__(self, writer: FrameSink, holds: list[int] | None):
        self.writer, self.holds, self.index = writer, holds, 0

    def write(self, frame: np.ndarray) -> None:
        for _ in range(self.holds[self.index] if self.holds is not None else 1):
            self.writer.write(frame)
        self.index += 1

    def write_batch(self, frames: np.ndarray) -> None:
        for frame in frames:
            self.write(frame)

    @property
    def frames_written(self) -> int:
        return self.writer.frames_written
