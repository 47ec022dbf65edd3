"""Fitting faces in images and tracking them through videos.

Images: detect every face, fit each. Videos: detect on the first frame and again only when
tracking is lost; in between, the previous frame's landmarks place the next crop (no detector
run). Each tracked crop is checked with the detector on the small crop the regressor already
uses, which costs little and tells when the face has gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from facereenact.errors import FaceIndexError, NoFaceError
from facereenact.face3d.detector import Detection, FaceDetector
from facereenact.face3d.morphable import MorphableModel, load_morphable_model
from facereenact.face3d.params import FaceParams
from facereenact.face3d.regressor import (
    FaceRegressor,
    box_from_detection,
    box_from_landmarks,
    crop_faces,
    params_from_raw,
)
from facereenact.face3d.smoothing import smooth_params
from facereenact.io.assets import Assets

#: A tracked crop whose detector score falls below this has lost the face.
TRACK_SCORE_THRESHOLD = 0.3


@dataclass
class FaceFit:
    """One face in one image: parameters (batch 1), 68 landmarks (68, 3) and the detection."""

    params: FaceParams
    landmarks: np.ndarray
    detection: Detection


@dataclass
class VideoFit:
    """A tracked face through T frames. Frames where the face was lost (``found`` False) hold
    the parameters of the nearest frame where it was found."""

    params: FaceParams
    landmarks: np.ndarray  # (T, 68, 3)
    boxes: np.ndarray  # (T, 4) crop boxes used for the regressor
    found: np.ndarray  # (T,) bool
    detections: int  # how many times the full-frame detector ran
    fps: float

    def __len__(self) -> int:
        return len(self.found)

    def lost_ranges(self) -> list[tuple[int, int]]:
        """Inclusive frame ranges where the face was lost."""
        ranges, start = [], None
        for index, ok in enumerate(self.found):
            if not ok and start is None:
                start = index
            if ok and start is not None:
                ranges.append((start, index - 1))
                start = None
        if start is not None:
            ranges.append((start, len(self.found) - 1))
        return ranges


class FaceFitter:
    """Detector + regressor + morphable model, loaded once and reused for many images."""

    def __init__(self, assets: Assets, device: str | torch.device = "cpu", model: MorphableModel | None = None):
        self.device = torch.device(device)
        self.detector = FaceDetector(assets, device=self.device)
        self.regressor = FaceRegressor(assets, device=self.device)
        self.model = (model or load_morphable_model(assets)).to(self.device)
        std = self.regressor.param_std[12:62]
        self.coefficient_scale = std.clamp(min=1e-6)

    # ---- images ------------------------------------------------------------------------------
    def fit_image(self, image_rgb: np.ndarray) -> list[FaceFit]:
        """Every detected face, largest first."""
        detections = sorted(self.detector.detect(image_rgb), key=lambda d: d.area, reverse=True)
        if not detections:
            return []
        boxes = box_from_detection(np.array([d.box for d in detections]))
        params = self.regressor.regress(image_rgb, boxes)
        # Fit again in the crop the landmarks imply: the detector's box sits a little off the
        # face, and this second crop is the one video tracking uses (it halves the asymmetry
        # between an image's fit and its mirror's).
        boxes = box_from_landmarks(self.model.landmarks(params).cpu().numpy())
        params = self.regressor.regress(image_rgb, boxes)
        landmarks = self.model.landmarks(params).cpu().numpy()
        return [FaceFit(params[i], landmarks[i], d) for i, d in enumerate(detections)]

    def fit_one(self, image_rgb: np.ndarray, face_index: int = 0, what: str = "image") -> FaceFit:
        """The ``face_index``-th largest face; raises :class:`NoFaceError` with a clear message."""
        return self.pick(self.fit_image(image_rgb), face_index, what)

    @staticmethod
    def pick(faces: list[FaceFit], face_index: int, what: str) -> FaceFit:
        """The ``face_index``-th of ``faces`` (largest first), or a clear :class:`NoFaceError`."""
        if not faces:
            raise NoFaceError(f"no face found in the {what}")
        if face_index >= len(faces):
            raise FaceIndexError(face_index, len(faces), what)
        return faces[face_index]

    # ---- video -------------------------------------------------------------------------------
    def _crop_score(self, crop: np.ndarray) -> float:
        return max((d.score for d in self.detector.detect(crop, score_threshold=0.0)), default=0.0)

    def track(
        self,
        frames: Iterable[np.ndarray],
        fps: float,
        smoothing: bool = True,
        on_frame: Callable[[int], None] | None = None,
    ) -> VideoFit:
        """Track the largest face through ``frames`` (RGB uint8)."""
        params_list: list[FaceParams | None] = []
        landmarks_list: list[np.ndarray | None] = []
        boxes: list[np.ndarray] = []
        box: np.ndarray | None = None
        detections = 0
        for index, frame in enumerate(frames):
            fitted = None
            if box is not None:
                params, landmarks, crop = self._fit_in_box(frame, box)
                if self._crop_score(crop) >= TRACK_SCORE_THRESHOLD:
                    fitted = (params, landmarks, box)
            if fitted is None:  # first frame, or tracking lost: look at the whole frame
                detections += 1
                found = sorted(self.detector.detect(frame), key=lambda d: d.area, reverse=True)
                if found:
                    box = box_from_detection(np.array(found[0].box))
                    params, landmarks, _ = self._fit_in_box(frame, box)  # just detected: no check
                    fitted = (params, landmarks, box)
            if fitted is None:
                box = None
                params_list.append(None)
                landmarks_list.append(None)
                boxes.append(np.full(4, np.nan))
            else:
                params, landmarks, used_box = fitted
                params_list.append(params)
                landmarks_list.append(landmarks)
                boxes.append(used_box)
                box = box_from_landmarks(landmarks)
            if on_frame is not None:
                on_frame(index)
        return self._assemble(params_list, landmarks_list, boxes, detections, fps, smoothing)

    def _fit_in_box(self, frame: np.ndarray, box: np.ndarray) -> tuple[FaceParams, np.ndarray, np.ndarray]:
        """Parameters, landmarks (68, 3) and the 120² crop the regressor saw (for the face check)."""
        crop = crop_faces(frame, box[None])
        raw = self.regressor.raw_parameters(crop)
        params = params_from_raw(raw, torch.as_tensor(box[None], dtype=torch.float32, device=raw.device))
        landmarks = self.model.landmarks(params)[0].cpu().numpy()
        return params, landmarks, crop[0]

    def _assemble(
        self,
        params_list: list[FaceParams | None],
        landmarks_list: list[np.ndarray | None],
        boxes: list[np.ndarray],
        detections: int,
        fps: float,
        smoothing: bool,
    ) -> VideoFit:
        found = np.array([p is not None for p in params_list], dtype=bool)
        if len(found) == 0:
            raise NoFaceError("the video has no frames")
        if not found.any():
            raise NoFaceError("no face found in any frame of the video")
        good = np.flatnonzero(found)
        # Lost frames hold the nearest good frame: the previous one, or the next at the start.
        nearest = np.searchsorted(good, np.arange(len(found)), side="right") - 1
        nearest = good[np.clip(nearest, 0, None)]
        nearest = np.where(np.arange(len(found)) < good[0], good[0], nearest)
        params = FaceParams.cat([params_list[i] for i in nearest])
        if smoothing and len(found) > 1:
            restart = torch.from_numpy(np.r_[False, found[1:] & ~found[:-1]])
            # The filter steps through the frames one by one: many tiny operations, for the CPU.
            params = smooth_params(params.to("cpu"), fps, self.coefficient_scale.cpu(), restart).to(self.device)
            landmarks = self.model.landmarks(params).cpu().numpy()
        else:
            landmarks = np.stack([landmarks_list[i] for i in nearest])
        return VideoFit(params, landmarks, np.stack(boxes), found, detections, fps)
