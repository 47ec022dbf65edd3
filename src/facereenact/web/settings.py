"""What an operator can set on ``facereenact serve``: limits, where examples and models live.

Every limit has a safe default, so a server started with no options cannot be made to fill the
disk or run unbounded work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

MB = 1_000_000
"""Upload limits are in decimal megabytes (what file managers and browsers show)."""

MAX_FPS = 60
"""Frames per second of a driving clip at most, on average: with ``max_seconds`` it bounds the
frames a job may decode, whatever the file's header says."""


@dataclass(frozen=True)
class ServerSettings:
    #: Animation jobs that run at the same time; the rest wait in line.
    max_jobs: int = 2
    #: Jobs that may wait in line; beyond this a submission is refused ("busy, try again").
    max_waiting: int = 8
    #: Largest accepted upload (portrait or driving clip), in MB.
    max_upload_mb: float = 50.0
    #: Longest accepted driving clip, in seconds (also hides longer example clips).
    max_seconds: float = 60.0
    #: Driving frames animated per job, at most (None: the whole clip).
    max_frames: int | None = None
    #: How long a result (and an uploaded file) is kept after its last use, in minutes.
    keep_minutes: float = 30.0
    #: Uploaded files each client keeps at once; its least recently used go first.
    max_uploads: int = 16
    #: Uploaded files the server keeps at once, from all clients; more are refused until some expire.
    max_stored_uploads: int = 128
    #: Example-data folder whose clips/ are offered as motions (None: the usual lookup).
    data: Path | None = None
    #: A trained network's checkpoint: offers the "neural" method beside the warp.
    model: Path | None = None
    #: Model-files folder (None: the usual lookup).
    assets: Path | None = None
    device: str = "cpu"
    #: Parent of the server's temporary folder (None: the system's temporary folder).
    work_dir: Path | None = None
    #: Live sessions (the Live tab's camera driving) at once; one more is refused.
    max_live: int = 1
    #: Largest camera frame message of a live session, in kB; larger ones are dropped.
    live_frame_kb: float = 1000.0
    #: Camera frames per second a live session may send; those over it are dropped (the page
    #: sends at most 30, so a camera's uneven timing stays under it).
    live_fps: float = 40.0
    #: The longer side of the frames a live session sends back, in pixels, at most.
    live_max_side: int = 512

    def __post_init__(self) -> None:
        if self.max_jobs < 1:
            raise ValueError("max_jobs must be at least 1")
        if self.max_waiting < 0:
            raise ValueError("max_waiting must be at least 0")
        if self.max_upload_mb <= 0 or self.max_seconds <= 0 or self.keep_minutes <= 0:
            raise ValueError("max_upload_mb, max_seconds and keep_minutes must be positive")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError("max_frames must be at least 1")
        if self.max_uploads < 2:
            raise ValueError("max_uploads must be at least 2 (a portrait and a clip)")
        if self.max_stored_uploads < self.max_uploads:
            raise ValueError("max_stored_uploads must be at least max_uploads")
        if self.max_live < 0 or self.live_frame_kb <= 0 or self.live_fps <= 0 or self.live_max_side < 16:
            raise ValueError("max_live must be at least 0; live_frame_kb and live_fps positive; live_max_side at least 16")

    @property
    def live_frame_bytes(self) -> int:
        return int(self.live_frame_kb * 1000)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)

    @property
    def frame_limit(self) -> int:
        """Frames a driving clip may have: ``max_seconds`` at :data:`MAX_FPS`."""
        return math.ceil(self.max_seconds * MAX_FPS)

    @property
    def frames_per_job(self) -> int:
        """Driving frames a job decodes at most: ``max_frames`` when set, and never more than
        :attr:`frame_limit`, whatever the clip's header says."""
        return min(self.max_frames or self.frame_limit, self.frame_limit)

    @property
    def keep_seconds(self) -> float:
        return self.keep_minutes * 60.0
