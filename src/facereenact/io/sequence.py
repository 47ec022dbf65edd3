"""Writing frames as a folder of numbered PNG images (lossless, for editors), atomically: the
frames go to a hidden folder beside the target, renamed onto it only when all are written."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from facereenact.errors import OutputError
from facereenact.io.atomic import current_umask, lock_folder, remove_abandoned

#: The frames' names inside the folder, numbered from 0.
FRAME_NAME = "frame_{:06d}.png"


class FrameFolderWriter:
    """``with FrameFolderWriter("frames") as w: w.write_batch(frames)``: frames/frame_000000.png …

    The target folder must not exist, or be empty (nothing of the user's is ever replaced).
    """

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        if self.folder.exists() and (not self.folder.is_dir() or any(self.folder.iterdir())):
            raise OutputError(f"cannot write frames to {self.folder}: it exists and is not an empty folder")
        parent = self.folder.parent
        if not parent.is_dir():
            raise OutputError(f"cannot write {self.folder}: folder {parent} does not exist")
        self.frames_written = 0
        self._partial: Path | None = None
        self._lock: int | None = None

    def __enter__(self) -> FrameFolderWriter:
        prefix, suffix = f".{self.folder.name}.", ".part"
        remove_abandoned(self.folder.parent, prefix, suffix)  # what a writer killed outright left
        try:
            self._partial = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=self.folder.parent))
            self._lock = lock_folder(self._partial)
        except OSError as error:
            if self._partial is not None:
                shutil.rmtree(self._partial, ignore_errors=True)
                self._partial = None
            raise OutputError(f"cannot write {self.folder}: {error.strerror or error}") from None
        return self

    def write(self, frame: np.ndarray) -> None:
        """Write one (H, W, 3) uint8 RGB frame."""
        assert self._partial is not None, "write inside the with block"
        name = self._partial / FRAME_NAME.format(self.frames_written)
        if not cv2.imwrite(str(name), cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)):
            raise OutputError(f"cannot write {self.folder}: OpenCV could not write frame {self.frames_written}")
        self.frames_written += 1

    def write_batch(self, frames: np.ndarray) -> None:
        for frame in frames:
            self.write(frame)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None) -> None:
        partial, self._partial = self._partial, None
        if partial is None:
            return
        lock, self._lock = self._lock, None
        try:
            self._finish(partial, kind)
        finally:
            if lock is not None:
                os.close(lock)

    def _finish(self, partial: Path, kind: type[BaseException] | None) -> None:
        if kind is not None or self.frames_written == 0:
            shutil.rmtree(partial, ignore_errors=True)
            if kind is None:
                raise OutputError(f"no frames were written to {self.folder}")
            return
        os.chmod(partial, 0o777 & ~current_umask())  # mkdtemp makes it owner-only; outputs are not
        try:
            if self.folder.exists():
                self.folder.rmdir()  # empty, checked on opening
            os.replace(partial, self.folder)
        except OSError as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise OutputError(f"cannot write {self.folder}: {error.strerror or error}") from None

