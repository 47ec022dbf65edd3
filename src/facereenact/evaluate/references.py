"""Independent face analysers used to validate and evaluate our 3D face fitter.

Nothing here imports :mod:`facereenact.face3d`: the references must not share code (or bugs)
with what they check. Two analysers:

* :class:`DlibLandmarks`: dlib's 68-point shape predictor (iBUG-68 order, the same order as our
  fitter's landmarks), with dlib's HOG frontal face detector. The primary landmark reference.
* :class:`MediaPipeFace`: MediaPipe's Face Landmarker (478-point mesh, 52 blendshapes and a
  head pose matrix). The head pose reference, and a landmark fallback through
  :data:`MEDIAPIPE_TO_68`.

Pose convention (see :data:`POSE_SIGNS`): MediaPipe's angles are returned with our fitter's
signs: yaw > 0 when the face turns toward the image's left (the subject's right), pitch > 0
when it tilts down, roll > 0 when it rotates counter-clockwise on screen.

Both need the ``eval`` extra (``pip install 'facereenact[eval]'``); a missing package or model
file raises :class:`~facereenact.errors.AssetError`.
"""

from __future__ import annotations

import importlib.util
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from facereenact.errors import AssetError
from facereenact.face3d.blendshapes import mediapipe_chatter_silenced
from facereenact.io.assets import Assets

DLIB_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"
MEDIAPIPE_MODEL = "mediapipe/face_landmarker.task"

Box = tuple[float, float, float, float]


# ---- dlib ----------------------------------------------------------------------------------------
def dlib_model_path() -> Path:
    """The 68-point predictor shipped by the ``face-recognition-models`` package.

    The package is located without importing it: its ``__init__`` imports ``pkg_resources``,
    which recent setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            "package face-recognition-models is not installed (pip install 'facereenact[eval]'): "
            f"it provides dlib's {DLIB_MODEL_NAME}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_MODEL_NAME
    if not path.is_file():
        raise AssetError(f"dlib landmark model missing: {path} (reinstall face-recognition-models)")
    return path


def _import_dlib() -> Any:
    try:
        import dlib  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise AssetError("package dlib is not installed (pip install 'facereenact[eval]', which brings dlib-bin)") from None
    return dlib


class DlibLandmarks:
    """dlib's 68-point landmarks (iBUG-68 order) in image pixels.

    Without a box hint, dlib's HOG frontal face detector finds the face (the largest one is
    used). HOG misses turned heads, small faces and paintings, so callers that already know
    where the face is pass ``box_hint``: the box (left, top, right, bottom) of OUR detector. The
    hint only decides where dlib looks. dlib's predictor was trained with HOG boxes, whose
    placement around the face differs from our detector's; with ``refine=True`` (the default)
    the predictor is therefore run a second time in the HOG-style box derived from its own first
    answer (a fixed relation between dlib's landmarks and its detector's box, measured with dlib
    alone), so the result depends on the hint only through where the face is, not on how our
    detector frames it.
    """

    #: HOG-style box from dlib's own landmarks: centre = landmark-box centre + offset·size,
    #: side = factor·size, with size the larger side of the box around landmarks 17-67 (the
    #: jaw is left out: it is the least stable part). Medians over 336 faces found by the HOG
    #: detector (the portraits, frames 0 and 60 of every clip, and their mirror images); the
    #: side factor varies by ±0.12 (HOG's scale steps). With this refinement, dlib run from our
    #: detector's box lands within NME 0.004-0.013 of dlib run from its own HOG box on the
    #: portraits (0.03 on a head turned 37°); without it, up to 0.2 (our boxes include the
    #: forehead, HOG's do not).
    BOX_CENTRE_OFFSET = (0.0, 0.033)
    BOX_SIDE_FACTOR = 1.29

    def __init__(self, model_path: str | Path | None = None, upsample: int = 1, refine: bool = True):
        self._dlib = _import_dlib()
        path = Path(model_path) if model_path is not None else dlib_model_path()
        if not path.is_file():
            raise AssetError(f"dlib landmark model missing: {path}")
        try:
            self._predictor = self._dlib.shape_predictor(str(path))
        except RuntimeError as error:
            raise AssetError(f"{path} is not a dlib shape predictor ({str(error).splitlines()[0]})") from None
        self._detector = self._dlib.get_frontal_face_detector()
        self.upsample = upsample
        self.refine = refine

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """HOG detections (left, top, right, bottom), largest first."""
        rects = self._detector(np.ascontiguousarray(rgb), self.upsample)
        boxes = [(float(r.left()), float(r.top()), float(r.right()), float(r.bottom())) for r in rects]
        return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)

    def predict(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        """The predictor's 68 points (68, 2) for the face in ``box``, no refinement."""
        left, top, right, bottom = (int(round(v)) for v in box)
        shape = self._predictor(np.ascontiguousarray(rgb), self._dlib.rectangle(left, top, right, bottom))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)

    @classmethod
    def box_from_landmarks(cls, points: np.ndarray) -> Box:
        """The HOG-style box dlib's detector would give around these dlib landmarks."""
        inner = points[17:]
        low, high = inner.min(axis=0), inner.max(axis=0)
        size = float(max(high - low))
        centre = (low + high) / 2 + np.asarray(cls.BOX_CENTRE_OFFSET) * size
        half = cls.BOX_SIDE_FACTOR * size / 2
        return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)

    def landmarks(self, rgb: np.ndarray, box_hint: Box | None = None) -> np.ndarray | None:
        """68 points (68, 2) in pixels, or None when the HOG detector finds no face (no hint)."""
        if box_hint is None:
            boxes = self.detect(rgb)
            if not boxes:
                return None
            return self.predict(rgb, boxes[0])
        points = self.predict(rgb, box_hint)
        if self.refine:
            points = self.predict(rgb, self.box_from_landmarks(points))
        return points


# ---- MediaPipe ------------------------------------------------------------------------------------
#: iBUG-68 index → MediaPipe 478-mesh index, for points both define at the same place.
#:
#: Chosen by hand among the anatomically plausible mesh vertices, then verified numerically on
#: 213 faces (the 8 portraits and frames 0, 45 and 90 of each of the 81 clips in
#: ``../shared/data``, those with |yaw| < 30°): the comments give the mean distance, in units of
#: the inter-ocular distance (outer eye corners of dlib), from the mapped MediaPipe point to
#: dlib's point and to our fitter's point. A point is kept when it agrees with both:
#: mean < 0.05 to dlib (the two references define the point the same way) and < 0.07 to ours
#: (our fitter's overall NME against dlib is ~0.05, so this rejects definition mismatches only).
#: Left out, with the reason:
#:
#: * jaw contour 0-7, 9-16: dlib and MediaPipe follow the visible outline, our 3D model's jaw
#:   points are fixed surface points; they part as soon as the head turns (127/356 at 0/16:
#:   0.054/0.048 to dlib even on near-frontal faces);
#: * brows 19-25: the brow's middle and inner end are drawn at different heights by the two
#:   references (0.06-0.09 to dlib);
#: * nose 29: no mesh vertex agrees with both (195: 0.035 dlib but 0.073 ours; 5: 0.051 dlib);
#: * lower lip 55-59 and 65-67: dlib and MediaPipe agree (17→57: 0.024, 14→66: 0.024) but our
#:   fitter is 0.08-0.12 away, because it under-fits open mouths. They fail the "agree with ours"
#:   test only because of OUR error: a landmark NME computed through this mapping therefore
#:   hides the lower-lip error that dlib's NME shows. Prefer dlib; this is the fallback.
MEDIAPIPE_TO_68: dict[int, int] = {
    8: 152,  # chin                     dlib 0.037  ours 0.067
    17: 70,  # right brow, outer end     dlib 0.046  ours 0.041
    18: 63,  #                           dlib 0.035  ours 0.057
    26: 300,  # left brow, outer end     dlib 0.044  ours 0.047
    27: 168,  # nose bridge, top         dlib 0.024  ours 0.038
    28: 197,  #                          dlib 0.042  ours 0.026
    30: 4,  # nose tip                   dlib 0.025  ours 0.037
    31: 240,  # nose base, right         dlib 0.020  ours 0.032
    32: 97,  #                           dlib 0.018  ours 0.030
    33: 2,  # nose base, centre          dlib 0.023  ours 0.030
    34: 326,  #                          dlib 0.022  ours 0.041
    35: 305,  # nose base, left          dlib 0.021  ours 0.035
    36: 33,  # right eye, outer corner   dlib 0.018  ours 0.032
    37: 160,  #                          dlib 0.024  ours 0.033
    38: 158,  #                          dlib 0.017  ours 0.031
    39: 173,  # right eye, inner corner  dlib 0.021  ours 0.028
    40: 153,  #                          dlib 0.019  ours 0.035
    41: 144,  #                          dlib 0.017  ours 0.035
    42: 398,  # left eye, inner corner   dlib 0.022  ours 0.024
    43: 385,  #                          dlib 0.021  ours 0.036
    44: 387,  #                          dlib 0.029  ours 0.044
    45: 263,  # left eye, outer corner   dlib 0.019  ours 0.037
    46: 373,  #                          dlib 0.015  ours 0.033
    47: 380,  #                          dlib 0.016  ours 0.030
    48: 61,  # mouth corner, right       dlib 0.024  ours 0.057
    49: 39,  #                           dlib 0.038  ours 0.052
    50: 37,  #                           dlib 0.019  ours 0.049
    51: 0,  # upper lip, top centre      dlib 0.022  ours 0.052
    52: 267,  #                          dlib 0.025  ours 0.063
    53: 269,  #                          dlib 0.031  ours 0.043
    54: 291,  # mouth corner, left       dlib 0.021  ours 0.062
    60: 78,  # inner mouth corner, right dlib 0.022  ours 0.060
    61: 82,  #                           dlib 0.024  ours 0.056
    62: 13,  # upper lip, inner centre   dlib 0.019  ours 0.053
    63: 312,  #                          dlib 0.018  ours 0.050
    64: 308,  # inner mouth corner, left dlib 0.030  ours 0.062
}


#: Multiply MediaPipe's (yaw, pitch, roll), from its matrix by :func:`rotation_angles`, by these
#: to get our fitter's signs. Measured: with the same Euler formula, MediaPipe's matrix and our
#: fitter's rotation give the same signs for all three angles (on 231 faces: correlation 0.99
#: yaw, 0.87 pitch, 0.97 roll; every face with |yaw| > 20° has the same yaw sign in both).
#: The shared convention, in image terms (checked against dlib's landmarks):
#:
#: * yaw > 0: the face turns toward the LEFT of the image, i.e. the subject's own right (the
#:   nose tip lies left of the jaw's midpoint; "Girl with a Pearl Earring" is +37°);
#: * pitch > 0: the face tilts down (the nose tip drops toward the mouth);
#: * roll > 0: the face rotates counter-clockwise on screen (the eye on the image's right is
#:   higher; the top of the head moves toward the image's left).
#:
#: Magnitudes differ: on turned heads MediaPipe's yaw is ~25 % smaller than ours (ours 38°
#: where MediaPipe says 28°), and our pitch reads higher (median +1.5°).
POSE_SIGNS = (1.0, 1.0, 1.0)


def rotation_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a 3×3 rotation, by the same Euler formula as 3DDFA:
    yaw = asin(R[2,0]), pitch = atan2(R[2,1], R[2,2]), roll = atan2(R[1,0], R[0,0])."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = np.arcsin(np.clip(r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return tuple(float(np.degrees(a)) for a in (yaw, pitch, roll))  # type: ignore[return-value]


@dataclass
class MediaPipeResult:
    """One face from MediaPipe: mesh landmarks (478, 2) in pixels, their relative depth (478,),
    blendshape scores (52,) with their names, and the 4×4 face-to-camera transformation."""

    landmarks: np.ndarray
    depth: np.ndarray
    blendshapes: np.ndarray
    blendshape_names: list[str]
    matrix: np.ndarray

    def blendshape_dict(self) -> dict[str, float]:
        return dict(zip(self.blendshape_names, self.blendshapes.tolist()))

    def yaw_pitch_roll(self) -> tuple[float, float, float]:
        """Head pose in degrees, with the signs of OUR fitter's convention (see the module's
        :data:`POSE_SIGNS`)."""
        rotation = self.matrix[:3, :3]
        rotation = rotation / np.linalg.norm(rotation, axis=1, keepdims=True)
        angles = rotation_angles(rotation)
        return tuple(s * a for s, a in zip(POSE_SIGNS, angles))  # type: ignore[return-value]

    def landmarks_68(self) -> tuple[np.ndarray, np.ndarray]:
        """The mapped points: (iBUG indices (K,), MediaPipe positions (K, 2))."""
        ibug = np.array(sorted(MEDIAPIPE_TO_68))
        return ibug, self.landmarks[[MEDIAPIPE_TO_68[i] for i in ibug]]


class MediaPipeFace:
    """MediaPipe Face Landmarker in IMAGE mode (every call detects afresh). Use as a context
    manager or call :meth:`close`."""

    def __init__(self, assets: Assets | None = None, num_faces: int = 1, min_confidence: float = 0.5):
        try:
            import mediapipe  # noqa: PLC0415
            from mediapipe.tasks.python import vision  # noqa: PLC0415 (optional dependency)
            from mediapipe.tasks.python.core.base_options import BaseOptions  # noqa: PLC0415
        except ImportError:
            raise AssetError("package mediapipe is not installed (pip install mediapipe)") from None
        model = (assets or Assets.resolve()).path(MEDIAPIPE_MODEL)
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model)),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=num_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        try:
            with mediapipe_chatter_silenced():
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
                # The first inference logs its delegate choice: run it here, on a blank image.
                self._landmarker.detect(mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=np.zeros((64, 64, 3), np.uint8)))
        except (RuntimeError, ValueError) as error:
            raise AssetError(f"{model} is not a usable MediaPipe face landmarker ({str(error).splitlines()[0]})") from None
        self._mp = mediapipe
        # Closed at the latest as the interpreter exits, while MediaPipe's modules still exist:
        # the landmarker's own __del__ runs after their teardown and prints an ignored TypeError.
        self._closer = weakref.finalize(self, self._landmarker.close)

    def analyse_all(self, rgb: np.ndarray) -> list[MediaPipeResult]:
        """Every face found (at most ``num_faces``), in MediaPipe's order."""
        height, width = rgb.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        result = self._landmarker.detect(image)
        faces = []
        for index, points in enumerate(result.face_landmarks):
            xyz = np.array([[p.x, p.y, p.z] for p in points], dtype=np.float64)
            shapes = result.face_blendshapes[index] if result.face_blendshapes else []
            matrix = (
                np.asarray(result.facial_transformation_matrixes[index], dtype=np.float64)
                if result.facial_transformation_matrixes
                else np.full((4, 4), np.nan)
            )
            faces.append(
                MediaPipeResult(
                    landmarks=xyz[:, :2] * (width, height),
                    depth=xyz[:, 2] * width,
                    blendshapes=np.array([c.score for c in shapes], dtype=np.float64),
                    blendshape_names=[c.category_name for c in shapes],
                    matrix=matrix,
                )
            )
        return faces

    def analyse(self, rgb: np.ndarray) -> MediaPipeResult | None:
        """The largest face (by landmark extent), or None when MediaPipe finds none."""
        faces = self.analyse_all(rgb)
        if not faces:
            return None
        return max(faces, key=lambda f: float(np.prod(np.ptp(f.landmarks, axis=0))))

    def close(self) -> None:
        self._closer()

    def __enter__(self) -> MediaPipeFace:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
