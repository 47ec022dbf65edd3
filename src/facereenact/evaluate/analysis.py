"""What the face analysers see in a batch of images: the inputs of the geometry metrics.

Every image (an output crop, a real crop, a source crop) goes through the same two analysers, so
a metric compares like with like: MediaPipe (478 landmarks, blendshapes, head pose from its
transformation matrix) and our fitter (head pose, and the face box that places dlib's
descriptor). Results are cached by image content: the ``source`` baseline's output and a
portrait used with many driving clips are analysed once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from facereenact.evaluate.references import MediaPipeFace
from facereenact.face3d.fitter import FaceFitter

#: MediaPipe's first blendshape is a constant "neutral" score, not an expression: left out.
NEUTRAL_BLENDSHAPE = "_neutral"
MESH_POINTS = 478
BLENDSHAPES = 51


@dataclass
class FaceMeasurements:
    """Per image (N): MediaPipe's landmarks (N, 478, 2) in pixels, blendshapes (N, 51) and
    (yaw, pitch, roll) (N, 3); our fitter's (yaw, pitch, roll) (N, 3); a face box (N, 4) (our
    detector's, else the extent of MediaPipe's landmarks). NaN wherever that analyser found no
    face."""

    landmarks: np.ndarray
    blendshapes: np.ndarray
    mediapipe_angles: np.ndarray
    fitter_angles: np.ndarray
    boxes: np.ndarray

    @property
    def mediapipe_found(self) -> np.ndarray:
        return np.isfinite(self.mediapipe_angles).all(-1)

    def __len__(self) -> int:
        return len(self.boxes)

    @staticmethod
    def empty(count: int) -> FaceMeasurements:
        return FaceMeasurements(
            landmarks=np.full((count, MESH_POINTS, 2), np.nan),
            blendshapes=np.full((count, BLENDSHAPES), np.nan),
            mediapipe_angles=np.full((count, 3), np.nan),
            fitter_angles=np.full((count, 3), np.nan),
            boxes=np.full((count, 4), np.nan),
        )

    @staticmethod
    def stack(rows: Sequence[FaceMeasurements]) -> FaceMeasurements:
        return FaceMeasurements(**{f.name: np.concatenate([getattr(r, f.name) for r in rows]) for f in fields(FaceMeasurements)})


class FaceAnalyser:
    """Runs MediaPipe and our fitter over images; one instance of each, reused for every image."""

    def __init__(self, fitter: FaceFitter, mediapipe: MediaPipeFace, cache_size: int = 512):
        self.fitter = fitter
        self.mediapipe = mediapipe
        self.blendshape_names: list[str] | None = None
        self._cache: OrderedDict[bytes, tuple[FaceMeasurements, bool]] = OrderedDict()
        self._cache_size = cache_size

    def measure(self, images: Sequence[np.ndarray] | np.ndarray, fitter: bool = True) -> FaceMeasurements:
        """Measurements of each image (H, W, 3) uint8. With ``fitter=False`` only MediaPipe runs
        (landmarks for jitter need no more), leaving ``fitter_angles`` NaN and the box MediaPipe's."""
        if not len(images):
            return FaceMeasurements.empty(0)
        rows = []
        for image in images:
            image = np.ascontiguousarray(image)
            key = hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            cached = self._cache.get(key)
            if cached is None:
                cached = (self._mediapipe_row(image), False)
            if fitter and not cached[1]:
                cached = (self._add_fit(image, cached[0]), True)
            self._cache[key] = cached
            self._cache.move_to_end(key)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            rows.append(cached[0])
        return FaceMeasurements.stack(rows)

    def fitter_angles(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Our fitter's (yaw, pitch, roll) (N, 3) of each image, NaN where it finds no face: no
        MediaPipe and no cache, for pictures measured once (an instrument's ceiling)."""
        rows = [self._add_fit(np.ascontiguousarray(image), FaceMeasurements.empty(1)).fitter_angles[0] for image in images]
        return np.array(rows).reshape(-1, 3)

    def _mediapipe_row(self, image: np.ndarray) -> FaceMeasurements:
        row = FaceMeasurements.empty(1)
        face = self.mediapipe.analyse(image)
        if face is not None:
            keep = [i for i, name in enumerate(face.blendshape_names) if name != NEUTRAL_BLENDSHAPE]
            if self.blendshape_names is None:
                self.blendshape_names = [face.blendshape_names[i] for i in keep]
            row.landmarks[0] = face.landmarks
            row.blendshapes[0] = face.blendshapes[keep]
            row.mediapipe_angles[0] = face.yaw_pitch_roll()
            low, high = face.landmarks.min(0), face.landmarks.max(0)
            row.boxes[0] = (*low, *high)
        return row

    def _add_fit(self, image: np.ndarray, row: FaceMeasurements) -> FaceMeasurements:
        fits = self.fitter.fit_image(image)
        if not fits:
            return row
        row = FaceMeasurements(**{f.name: getattr(row, f.name).copy() for f in fields(FaceMeasurements)})
        row.fitter_angles[0] = fits[0].params.angles()[0].cpu().numpy()
        row.boxes[0] = fits[0].detection.box
        return row
