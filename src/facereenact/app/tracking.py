"""Tracking a driving video in the one pass that decodes it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from facereenact.app.progress import ProgressFactory
from facereenact.face3d.fitter import FaceFitter, VideoFit
from facereenact.io.video import FrameStore, VideoReader


@dataclass
class TrackedVideo:
    """A video's tracked face, its frame rate, and (when asked for) its decoded frames."""

    fit: VideoFit
    fps: float
    frames: FrameStore | None


def track(fitter: FaceFitter, reader: VideoReader, smoothing: bool, max_frames: int | None, progress: ProgressFactory, keep_frames: bool) -> TrackedVideo:
    """Decode ``reader`` once and track its face; with ``keep_frames`` the decoded frames are kept
    for the later stages that show or sample them (the caller closes the store)."""
    total = min(reader.frame_count, max_frames) if max_frames else reader.frame_count
    store = FrameStore() if keep_frames else None

    def frames() -> Iterator[np.ndarray]:
        for frame in reader.frames(max_frames):
            if store is not None:
                store.append(frame)
            yield frame

    try:
        fit = fitter.track(frames(), reader.fps, smoothing, on_frame=progress("fitting", total))
    except BaseException:
        if store is not None:
            store.close()
        raise
    return TrackedVideo(fit, reader.fps, store)
