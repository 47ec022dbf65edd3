"""What the interfaces may ask about a video before any work: its length, size and audio."""

from __future__ import annotations

from facereenact.io.video import VideoInfo, probe_video

__all__ = ["VideoInfo", "probe_video"]
