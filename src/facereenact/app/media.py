"""What the interfaces may ask about an input before any work: whether it is an image or a
video, and a video's length, size and audio."""

from __future__ import annotations

from facereenact.io.image import is_image_file
from facereenact.io.video import CountedLength, VideoInfo, count_length, is_video_file, probe_video

__all__ = ["CountedLength", "VideoInfo", "count_length", "is_image_file", "is_video_file", "probe_video"]
