"""Bundled example motions: the clips of the example-data folder, when there is one.

They are probed once (lazily, on first use) and only those within the server's duration limit
are offered; the page refers to them by name, never by path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from facereenact.app.examples import data_dir
from facereenact.app.media import probe_video
from facereenact.errors import FaceReenactError

_VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg"}


@dataclass(frozen=True)
class Example:
    name: str
    path: Path
    seconds: float
    frames: int
    has_audio: bool


class ExampleClips:
    """The example clips under ``DATA/clips`` (``data``: the usual lookup when None)."""

    def __init__(self, data: Path | None, max_seconds: float):
        self.data = data
        self.max_seconds = max_seconds
        self._found: dict[str, Example] | None = None
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path | None:
        try:
            folder = data_dir(self.data) / "clips"
        except FaceReenactError:
            return None
        return folder if folder.is_dir() else None

    def all(self) -> list[Example]:
        with self._lock:
            if self._found is None:
                self._found = {example.name: example for example in self._probe()}
            return list(self._found.values())

    def get(self, name: str) -> Example | None:
        return {example.name: example for example in self.all()}.get(name)

    def _probe(self) -> list[Example]:
        folder = self.folder
        if folder is None:
            return []
        found = []
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in _VIDEO_SUFFIXES or not path.is_file():
                continue
            try:
                info = probe_video(path)
            except FaceReenactError:  # an unreadable example is simply not offered
                continue
            if info.duration_s <= self.max_seconds:
                found.append(Example(path.stem, path, info.duration_s, info.frame_count, info.has_audio))
        return found
