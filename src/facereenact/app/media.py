"""What the interfaces may ask about a video before any work: its length, size and audio."""

from __future__ import annotations

from facereenact.io.video import CountedLength, VideoInfo, count_length, probe_video

__all__ = ["CountedLength", "VideoInfo", "count_length", "probe_video"]
