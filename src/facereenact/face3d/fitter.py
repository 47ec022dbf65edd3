"""Fitting faces in images and tracking them through videos.

Images: detect every face, fit each. Videos: detect on the first frame and again only when
tracking is lost; in between, the previous frame's landmarks place the next crop (no detector
run). Each tracked crop is checked: MediaPipe, which reads every frame for the eyes, brows and
mouth, confirms a face there; where it does not, the detector looks at the small crop the
regressor already uses, which tells when the face has gone. Where MediaPipe reads a face, its
scores become the blendshapes and the expression is refined to its landmarks
(:mod:`facereenact.face3d.landmark_fit`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from facereenact.errors import AssetError, FaceIndexError, NoFaceError
from facereenact.face3d.blendshapes import MEDIAPIPE_POINTS, N_BLENDSHAPES, BlendshapeReader, ReaderPool, fill_gaps, nearest_face
from facereenact.face3d.detector import Detection, FaceDetector
from facereenact.face3d.expression_basis import load_mediapipe_on_mean_face
from facereenact.face3d.eyelids import match_eyelids, measured_gaps
from facereenact.face3d.landmark_fit import ExpressionRefiner
from facereenact.face3d.morphable import MorphableModel, load_morphable_model
from facereenact.face3d.params import N_EXPRESSION, N_SHAPE, FaceParams
from facereenact.face3d.regressor import (
    FaceRegressor,
    box_from_detection,
    box_from_landmarks,
    crop_faces,
    params_from_raw,
)
from facereenact.face3d.smoothing import smooth_params
from facereenact.io.assets import Assets
from facereenact.threads import one_torch_thread

#: MediaPipe readers at work at once while a video is tracked: with two, its ~10 ms a frame no
#: longer bounds tracking on two cores.
READERS = 2
#: A tracked crop whose detector score falls below this has lost the face.
TRACK_SCORE_THRESHOLD = 0.3
#: Frames of a video whose eyelids set the clip's eye-score offset (see FaceFitter.eyelid_offset).
EYELID_SAMPLES = 24


@dataclass
class FaceFit:
    """One face in one image: parameters (batch 1), 68 landmarks (68, 3), the detection, and
    MediaPipe's landmarks (478, 3) in picture pixels (None where it did not read the face)."""

    params: FaceParams
    landmarks: np.ndarray
    detection: Detection
    points: np.ndarray | None = None


@dataclass
class VideoFit:
    """A tracked face through T frames. Frames where the face was lost (``found`` False) hold
    the parameters of the nearest frame where it was found; frames whose blendshapes could not be
    read (``read`` False: eyes hidden, face turned away) hold scores interpolated between their
    neighbours'."""

    params: FaceParams
    landmarks: np.ndarray  # (T, 68, 3)
    boxes: np.ndarray  # (T, 4) crop boxes used for the regressor
    found: np.ndarray  # (T,) bool
    detections: int  # how many times the full-frame detector ran
    fps: float
    read: np.ndarray  # (T,) bool
    #: Each frame's own fit before temporal smoothing; None where ``params`` were not smoothed.
    unsmoothed: FaceParams | None = None
    #: MediaPipe's landmarks (T, 478, 2) in frame pixels, NaN where unread; None when the tracker
    #: did not run MediaPipe.
    points: np.ndarray | None = None

    def points_of(self, frames: slice | np.ndarray) -> list[np.ndarray | None] | None:
        """MediaPipe's landmarks of ``frames`` (478, 2 each, None where unread), or None."""
        if self.points is None:
            return None
        return [None if np.isnan(p[0, 0]) else p for p in self.points[frames]]

    def points_at(self, frame: int) -> np.ndarray | None:
        """MediaPipe's landmarks of one frame (478, 2), None where unread or not read at all."""
        points = self.points_of(slice(frame, frame + 1))
        return points[0] if points else None

    @property
    def frame_fits(self) -> FaceParams:
        """Each frame's own fit, not smoothed over time: what a source video's frames are warped
        from. Each frame's picture shows its own expression, quick blinks and lip movements
        included; a smoothed fit would leave what it smooths away in the picture, on top of the
        driver's expression."""
        return self.params if self.unsmoothed is None else self.unsmoothed

    def unread_ranges(self) -> list[tuple[int, int]]:
        """Inclusive frame ranges where the face was tracked but its blendshapes were not read."""
        return true_ranges(self.found & ~self.read)

    def __len__(self) -> int:
        return len(self.found)

    def lost_ranges(self) -> list[tuple[int, int]]:
        """Inclusive frame ranges where the face was lost."""
        return true_ranges(~self.found)


def true_ranges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) index ranges of the True runs in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return [(int(a), int(b) - 1) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)]


class FaceFitter:
    """Detector + regressor + morphable model (+ MediaPipe for the blendshapes), loaded once and
    reused for many images. ``blendshapes=False`` leaves the blendshapes at zero (what the
    regressor alone sees) and skips MediaPipe's cost."""

    def __init__(self, assets: Assets, device: str | torch.device = "cpu", model: MorphableModel | None = None, blendshapes: bool = True):
        self.device = torch.device(device)
        self.assets = assets
        self.reads_blendshapes = blendshapes
        self._image_reader: BlendshapeReader | None = None
        self.detector = FaceDetector(assets, device=self.device)
        self.regressor = FaceRegressor(assets, device=self.device)
        self.model = (model or load_morphable_model(assets)).to(self.device)
        std = self.regressor.param_std[12:62]
        self.coefficient_scale = std.clamp(min=1e-6)
        # The dense model has no blendshape components: MediaPipe's scores alone are read there.
        self.refiner = None
        if blendshapes and self.model.has_blendshape_components:
            try:
                placed = load_mediapipe_on_mean_face()
            except (OSError, ValueError) as error:
                raise AssetError(f"MediaPipe's landmarks on the mean face could not be read: {error}") from None
            self.refiner = ExpressionRefiner(self.model, placed, self.coefficient_scale[N_SHAPE:])

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
        if self.reads_blendshapes:
            if self._image_reader is None:
                self._image_reader = BlendshapeReader(self.assets)
            read = self._image_reader.faces(image_rgb)
            centres, sizes = _centres_and_sizes(self.model.landmarks(params).cpu().numpy())
            scores = [nearest_face(read, centre, size) for centre, size in zip(centres, sizes, strict=True)]
            params.blendshapes = torch.from_numpy(
                np.stack([face[0] if face else np.zeros(N_BLENDSHAPES, np.float32) for face in scores])
            ).to(self.device)
            # The expression refined to MediaPipe's landmarks, and the eyelids as they place
            # them, so that a blink closes them.
            for i, face in enumerate(scores):
                if face is not None:
                    one = self.refined(params[i], face[1])[0]
                    gaps = measured_gaps(face[1], one, self.model)
                    one = match_eyelids(self.model, one, gaps)
                    params.expression[i], params.blendshapes[i] = one.expression[0], one.blendshapes[0]
            points = [face[1] if face else None for face in scores]
        else:
            points = [None] * len(detections)
        landmarks = self.model.landmarks(params).cpu().numpy()
        return [FaceFit(params[i], landmarks[i], d, points[i]) for i, d in enumerate(detections)]

    def refined(self, params: FaceParams, points: np.ndarray) -> tuple[FaceParams, torch.Tensor]:
        """One fit (batch 1) with its expression refined to MediaPipe's landmarks ``points``
        (478, ≥2) in picture pixels, and the change made (1, 10 + K); unchanged without a refiner."""
        if self.refiner is None:
            return params, torch.zeros(1, N_EXPRESSION + params.blendshapes.shape[1], device=params.scale.device)
        change = self.refiner.change(params, torch.from_numpy(np.asarray(points, np.float32))[None].to(params.scale.device))
        return self.refiner.apply(params, change), change

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
        scores: list[np.ndarray | None] = []
        points: list[np.ndarray | None] = []  # MediaPipe's landmarks where read
        # The regressor runs on one PyTorch thread while MediaPipe's readers work beside it: with
        # a thread each on two cores, 200 frames tracked in 1.8 s instead of 2.1 s (two threads
        # for the regressor: 2.3–2.5 s).
        with one_torch_thread() if self.reads_blendshapes else nullcontext(), FaceTracker(self) as tracker:
            for index, face in enumerate(tracker.steps(frames)):
                params_list.append(face.params if face else None)
                landmarks_list.append(face.landmarks if face else None)
                boxes.append(face.box if face else np.full(4, np.nan))
                scores.append(face.scores if face else None)
                points.append(face.points if face else None)
                if on_frame is not None:
                    on_frame(index)
        self._refine_clip(params_list, scores, points)
        fit = self._assemble(params_list, landmarks_list, boxes, scores, points, tracker.detections, fps, smoothing)
        fit.params.blendshapes += self.eyelid_offset(fit.params, points)
        if fit.unsmoothed is not None:  # as a track without smoothing would have them
            fit.unsmoothed.blendshapes += self.eyelid_offset(fit.unsmoothed, points)
        return fit

    def _refine_clip(self, params_list: list[FaceParams | None], scores: list[np.ndarray | None], points: list[np.ndarray | None]) -> None:
        """Refines, in place, the expression of every frame MediaPipe read to its landmarks, all
        frames at once. Only the refinement's motion through the clip is kept: its median, the
        fitted identity's mismatch with the picture, is not expression."""
        read = [i for i, (p, s, q) in enumerate(zip(params_list, scores, points, strict=True)) if p is not None and s is not None and q is not None]
        if self.refiner is None or not read:
            return
        frames = FaceParams.cat([params_list[i].replace(blendshapes=torch.from_numpy(scores[i])[None].to(self.device)) for i in read])  # type: ignore[union-attr]
        changes = self.refiner.change(frames, torch.from_numpy(np.stack([points[i] for i in read]).astype(np.float32)).to(self.device))  # type: ignore[misc]
        refined = self.refiner.apply(frames, changes - changes.median(dim=0, keepdim=True).values)
        blendshapes = refined.blendshapes.cpu().numpy()
        for row, i in enumerate(read):
            params_list[i] = refined[row]
            scores[i] = blendshapes[row]

    def eyelid_offset(self, params: FaceParams, points: list[np.ndarray | None]) -> torch.Tensor:
        """(1, K) the change of the eye scores that puts the model's eyelids where MediaPipe's
        landmarks see them, as the median over up to EYELID_SAMPLES read frames of the clip: one
        offset for the whole clip, so that the frame-to-frame motion is MediaPipe's scores' own."""
        read = [(i, p) for i, p in enumerate(points) if p is not None]
        if not read:
            return torch.zeros_like(params.blendshapes[:1])
        chosen = [read[int(j)] for j in np.linspace(0, len(read) - 1, min(EYELID_SAMPLES, len(read)))]
        offsets = [
            match_eyelids(self.model, params[i], measured_gaps(p, params[i], self.model)).blendshapes - params.blendshapes[i : i + 1]
            for i, p in chosen
        ]
        return torch.cat(offsets).median(dim=0, keepdim=True).values

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
        scores: list[np.ndarray | None],
        points: list[np.ndarray | None],
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
        read = np.array([s is not None for s in scores], dtype=bool) & found
        read_scores = np.stack([s if s is not None else np.zeros(N_BLENDSHAPES, np.float32) for s in scores])
        params.blendshapes = torch.from_numpy(fill_gaps(read_scores, read)).float().to(self.device)
        unsmoothed = None
        if smoothing and len(found) > 1:
            restart = torch.from_numpy(np.r_[False, found[1:] & ~found[:-1]])
            # The filter steps through the frames one by one: many tiny operations, for the CPU.
            unsmoothed, params = params, smooth_params(params.to("cpu"), fps, self.coefficient_scale.cpu(), restart).to(self.device)
            landmarks = self.model.landmarks(params).cpu().numpy()
        else:
            landmarks = np.stack([landmarks_list[i] for i in nearest])
        read_points = None
        if self.reads_blendshapes:
            read_points = np.full((len(found), MEDIAPIPE_POINTS, 2), np.nan, np.float32)
            for i, face in enumerate(points):
                if face is not None and found[i]:
                    read_points[i] = face[:, :2]
        return VideoFit(params, landmarks, np.stack(boxes), found, detections, fps, read, unsmoothed, read_points)


@dataclass
class TrackedFace:
    """The face in one frame, as :class:`FaceTracker` found it: parameters (batch 1, blendshapes
    zero where unread), 68 landmarks (68, 3), the regressor's crop box, MediaPipe's scores and
    landmarks (None where it could not read the face). The expression is as regressed: offline
    tracking refines a whole clip at once, live driving frame by frame
    (:meth:`FaceFitter.refined`)."""

    params: FaceParams
    landmarks: np.ndarray
    box: np.ndarray
    scores: np.ndarray | None
    points: np.ndarray | None


class FaceTracker:
    """Tracks the largest face frame by frame: the detector runs on the first frame and again only
    when the tracked crop loses the face. Offline tracking (:meth:`FaceFitter.track`) and the live
    engine both step it; call :meth:`close` or use ``with``."""

    def __init__(self, fitter: FaceFitter):
        self.fitter = fitter
        self.box: np.ndarray | None = None
        #: How many times the full-frame detector ran.
        self.detections = 0
        # MediaPipe reads frames in threads of their own while the regressor fits the face in
        # the tracked crop: the two are independent until the crop is checked.
        self._readers = ReaderPool(fitter.assets, READERS) if fitter.reads_blendshapes else None

    def step(self, frame: np.ndarray) -> TrackedFace | None:
        """The face in ``frame`` (RGB uint8), or None when there is none."""
        return self._step(frame, self._read(frame))

    def steps(self, frames: Iterable[np.ndarray]) -> Iterator[TrackedFace | None]:
        """:meth:`step` over ``frames``; MediaPipe reads the next READERS frames while one is
        fitted, so no thread waits for another at every frame."""
        pending: deque[tuple[np.ndarray, Future[list[tuple[np.ndarray, np.ndarray]]] | None]] = deque()
        for frame in frames:
            pending.append((frame, self._read(frame)))
            if len(pending) > READERS:
                yield self._step(*pending.popleft())
        while pending:
            yield self._step(*pending.popleft())

    def _read(self, frame: np.ndarray) -> Future[list[tuple[np.ndarray, np.ndarray]]] | None:
        """MediaPipe's reading of ``frame``, started in a reader's thread."""
        return self._readers.submit(frame) if self._readers is not None else None

    def _step(self, frame: np.ndarray, reading: Future[list[tuple[np.ndarray, np.ndarray]]] | None) -> TrackedFace | None:
        fitter, fitted = self.fitter, None
        in_box = (self.box, *fitter._fit_in_box(frame, self.box)) if self.box is not None else None
        read = reading.result() if reading is not None else []
        if in_box is not None:
            box, params, landmarks, crop = in_box
            if _face_at(read, landmarks) is not None or fitter._crop_score(crop) >= TRACK_SCORE_THRESHOLD:
                fitted = (params, landmarks, box)
        if fitted is None:  # first frame, or tracking lost: look at the whole frame
            self.detections += 1
            found = sorted(fitter.detector.detect(frame), key=lambda d: d.area, reverse=True)
            if found:
                box = box_from_detection(np.array(found[0].box))
                params, landmarks, _ = fitter._fit_in_box(frame, box)  # just detected: no check
                fitted = (params, landmarks, box)
        if fitted is None:
            self.box = None
            return None
        params, landmarks, used_box = fitted
        self.box = box_from_landmarks(landmarks)
        if self._readers is None:
            return TrackedFace(params, landmarks, used_box, np.zeros(N_BLENDSHAPES, np.float32), None)
        face = _face_at(read, landmarks)
        if face is not None:
            params.blendshapes = torch.from_numpy(face[0])[None].to(params.blendshapes.device)
        return TrackedFace(params, landmarks, used_box, face[0] if face else None, face[1] if face else None)

    def close(self) -> None:
        if self._readers is not None:
            self._readers.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _face_at(faces: list[tuple[np.ndarray, np.ndarray]], landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The face MediaPipe read where ``landmarks`` (68, 2+) are, or None: where it sees one, the
    tracked crop still holds the face and the detector need not check it."""
    centres, sizes = _centres_and_sizes(landmarks[None])
    return nearest_face(faces, centres[0], sizes[0])


def _centres_and_sizes(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (B, 2) and widths (B,) of faces given by their 68 landmarks (B, 68, ≥2)."""
    return landmarks[:, :, :2].mean(1), np.ptp(landmarks[:, :, 0], axis=1)
