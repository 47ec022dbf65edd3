"""What the interfaces may ask about an input before any work: whether it is an image or a
video, a video's length, size and audio, an encoded picture's size before it is decoded, and a
still picture read as the pipeline reads it."""

from __future__ import annotations

from facereenact.io.image import image_header_size, is_image_file
from facereenact.io.media import read_still
from facereenact.io.video import CountedLength, VideoInfo, count_length, is_video_file, probe_video

__all__ = ["CountedLength", "VideoInfo", "count_length", "image_header_size", "is_image_file", "is_video_file", "probe_video", "read_still"]
