"""The fine expression signal: MediaPipe's blendshape scores for eyelids, gaze, brows and mouth.

Why: the regressor's 10 expression coefficients carry the mouth's opening and some lip shape,
and next to nothing of blinks, gaze, brows or mouth corners. MediaPipe's Face Landmarker sees
all of those (478 landmarks with irises, 52 blendshape scores in [0, 1]) for ~8 ms a frame on
this CPU. Its scores drive extra deformation components of the morphable model (estimated from
video by ``benchmarks/estimate_blendshape_basis.py``; see :mod:`morphable`), so the rebuilt
geometry, its PNCC and the dense correspondence carry them; nothing is pasted on the picture.

This module names the channels the model uses, groups them by face region, and reads them per
image or video frame (:meth:`BlendshapeReader.faces`, :func:`nearest_face`).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from enum import Enum

import numpy as np

from facereenact.errors import AssetError
from facereenact.io.assets import Assets

MEDIAPIPE_MODEL = "mediapipe/face_landmarker.task"


class Region(str, Enum):
    """Face regions whose motion can be taken from the driver or kept from the source."""

    eyes = "eyes"
    gaze = "gaze"
    brows = "brows"
    mouth = "mouth"


#: The MediaPipe blendshapes the model deforms with, in the order of its extra components.
CHANNELS: dict[Region, tuple[str, ...]] = {
    Region.eyes: ("eyeBlinkLeft", "eyeBlinkRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight"),
    Region.gaze: (
        "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
        "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    ),
    Region.brows: ("browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    Region.mouth: (
        "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
        "mouthPressLeft", "mouthPressRight", "mouthFrownLeft", "mouthFrownRight",
        "mouthPucker", "mouthFunnel", "mouthLeft", "mouthRight", "mouthRollLower", "mouthRollUpper",
        "mouthUpperUpLeft", "mouthUpperUpRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    ),
}  # fmt: skip
CHANNEL_NAMES: tuple[str, ...] = tuple(name for names in CHANNELS.values() for name in names)
N_BLENDSHAPES = len(CHANNEL_NAMES)
#: MediaPipe's face mesh: 468 landmarks and 10 on the irises.
MEDIAPIPE_POINTS = 478


def region_mask(regions: Iterable[Region]) -> np.ndarray:
    """(N_BLENDSHAPES,) bool: the channels that belong to ``regions``."""
    wanted = {name for region in regions for name in CHANNELS[region]}
    return np.array([name in wanted for name in CHANNEL_NAMES])


#: File descriptor 2 belongs to the whole process: one silencing at a time, or two threads making
#: readers at once would each save the other's redirection and leave it in place for good.
_SILENCING = threading.Lock()
#: How MediaPipe's set-up lines begin (absl's W/I lines, TensorFlow Lite's delegate notice).
_CHATTER = (b"W0000 ", b"I0000 ", b"INFO: Created TensorFlow Lite", b"WARNING: Logging before InitGoogle()")
#: How long leaving :func:`mediapipe_chatter_silenced` waits for the relay to pass on the last lines.
RELAY_GRACE_S = 2.0


@contextlib.contextmanager
def mediapipe_chatter_silenced() -> Iterator[None]:
    """MediaPipe's C++ side writes set-up chatter (delegates, feedback tensors) straight to file
    descriptor 2, past Python's logging; a user of the command line should not see it. For the
    moment a reader is made, descriptor 2 is a pipe whose lines are passed on to the real stderr
    unless they are that chatter, so what other threads write meanwhile (a server's log) is kept.

    A process started by another thread in that moment inherits the pipe and holds it open as
    long as it lives, so the relay is not waited for past :data:`RELAY_GRACE_S`: it goes on in
    the background and closes its own descriptors when the pipe ends."""
    with _SILENCING:
        sys.stderr.flush()
        saved = os.dup(2)
        readable, writable = os.pipe()
        relay = threading.Thread(target=_pass_on, args=(readable, os.dup(saved)), name="stderr-relay", daemon=True)
        relay.start()
        try:
            os.dup2(writable, 2)
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            os.close(writable)
            relay.join(RELAY_GRACE_S)


def _pass_on(readable: int, target: int) -> None:
    """Copy the pipe's lines to ``target``, leaving out MediaPipe's set-up chatter; both
    descriptors are this thread's to close."""
    try:
        with os.fdopen(readable, "rb") as lines:
            for line in lines:
                if not line.startswith(_CHATTER):
                    os.write(target, line)
    finally:
        os.close(target)


def fill_gaps(scores: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Scores with unread frames interpolated linearly between their read neighbours (held at
    the ends): a lost eye keeps a plausible state instead of snapping open or shut."""
    if found.all() or not found.any():
        return scores.copy() if found.any() else np.zeros_like(scores)
    frames = np.arange(len(found))
    good = np.flatnonzero(found)
    return np.stack([np.interp(frames, good, scores[good, k]) for k in range(scores.shape[1])], axis=1)


class BlendshapeReader:
    """MediaPipe's Face Landmarker, loaded once. It reads each image on its own: asked for up to
    four faces, MediaPipe runs its detector on every frame, so its video mode gave bit for bit the
    same scores and landmarks (1,551 frames of 14 clips) while forcing frames through one at a
    time. Call :meth:`close` or use ``with``."""

    def __init__(self, assets: Assets):
        try:
            import mediapipe  # noqa: PLC0415 (heavy import, needed only here)
            from mediapipe.tasks.python import vision  # noqa: PLC0415
            from mediapipe.tasks.python.core.base_options import BaseOptions  # noqa: PLC0415
        except ImportError:
            raise AssetError("package mediapipe is not installed (pip install mediapipe)") from None
        model = assets.path(MEDIAPIPE_MODEL)
        self._mp = mediapipe
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=4,
            output_face_blendshapes=True,
        )
        try:
            with mediapipe_chatter_silenced():
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
                # The first inference logs its delegate choice: run it here, on a blank image.
                self._landmarker.detect(mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=np.zeros((64, 64, 3), np.uint8)))
        except (RuntimeError, ValueError) as error:
            raise AssetError(f"{model} is not a usable MediaPipe face landmarker ({str(error).splitlines()[0]})") from None
        # Closed at the latest as the interpreter exits, while MediaPipe's modules still exist.
        self._closer = weakref.finalize(self, self._landmarker.close)

    def faces(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every face read (at most 4): scores (N_BLENDSHAPES,) in CHANNEL_NAMES order and
        landmarks (478, 3) in pixels."""
        height, width = rgb.shape[:2]
        result = self._landmarker.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        faces = []
        for points, categories in zip(result.face_landmarks, result.face_blendshapes, strict=True):
            by_name = {c.category_name: c.score for c in categories}
            scores = np.array([by_name.get(name, 0.0) for name in CHANNEL_NAMES], np.float32)
            faces.append((scores, np.array([[p.x * width, p.y * height, p.z * width] for p in points], np.float32)))
        return faces

    def close(self) -> None:
        self._closer()

    def __enter__(self) -> BlendshapeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReaderPool:
    """Reads frames with MediaPipe in ``workers`` threads at once, each read with a reader no
    other thread is using (made when none is idle). Offline tracking keeps both cores busy this
    way: one reader's ~10 ms a frame bounded it. Call :meth:`close` or use ``with``."""

    def __init__(self, assets: Assets, workers: int):
        self._assets = assets
        self._idle: queue.SimpleQueue[BlendshapeReader] = queue.SimpleQueue()
        self._made: list[BlendshapeReader] = []
        self._making = threading.Lock()
        self._idle.put(self._make())  # one ready before the first frame: a bad model fails here
        self._threads = ThreadPoolExecutor(workers, thread_name_prefix="mediapipe")

    def submit(self, rgb: np.ndarray) -> Future[list[tuple[np.ndarray, np.ndarray]]]:
        """:meth:`BlendshapeReader.faces` of ``rgb``, started in a worker thread."""
        return self._threads.submit(self._read, rgb)

    def _read(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        try:
            reader = self._idle.get_nowait()
        except queue.Empty:
            reader = self._make()
        try:
            return reader.faces(rgb)
        finally:
            self._idle.put(reader)

    def _make(self) -> BlendshapeReader:
        reader = BlendshapeReader(self._assets)
        with self._making:
            self._made.append(reader)
        return reader

    def close(self) -> None:
        self._threads.shutdown()
        for reader in self._made:
            reader.close()

    def __enter__(self) -> ReaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def nearest_face(faces: list[tuple[np.ndarray, np.ndarray]], centre: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The face whose landmarks' centre lies nearest ``centre`` and within half ``size`` of it
    (another face is not this one's expression); None when there is none."""
    if not faces or not np.isfinite(size):
        return None
    distances = [float(np.linalg.norm(face[1][:, :2].mean(0) - centre)) for face in faces]
    best = int(np.argmin(distances))
    return faces[best] if distances[best] <= 0.5 * size else None


def mirror_order() -> np.ndarray:
    """The channel permutation of a mirrored face: every Left channel trades with its Right one,
    and mouthLeft with mouthRight."""
    def partner(name: str) -> str:
        if name.endswith("Left"):
            return name[:-4] + "Right"
        if name.endswith("Right"):
            return name[:-5] + "Left"
        return name

    return np.array([CHANNEL_NAMES.index(partner(name)) for name in CHANNEL_NAMES])
