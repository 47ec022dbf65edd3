"""Tests for facereenact.evaluate.references: the independent dlib and MediaPipe analysers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facereenact.errors import AssetError
from facereenact.evaluate.references import MEDIAPIPE_TO_68, DlibLandmarks, MediaPipeFace, rotation_angles
from facereenact.io.assets import Assets
from tests.conftest import ASSETS, DATA

#: Frames where the head is clearly turned (our yaw and MediaPipe's agree on the sign):
#: (clip, frame index, expected sign). Our fitter gives about +38° and -44°, MediaPipe +29°, -35°.
TURNED = [("pcavs_517600078.mp4", 0, +1), ("pdfgc_id01333_00040.mp4", 90, -1)]
FRONTAL_PORTRAIT = "lp_s5.jpg"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (the shared example data/assets are absent)")
    return path


@pytest.fixture(scope="module")
def assets() -> Assets:
    _require(ASSETS / "3ddfa", "3DDFA assets")
    _require(ASSETS / "mediapipe" / "face_landmarker.task", "MediaPipe face landmarker")
    return Assets.resolve(ASSETS)


@pytest.fixture(scope="module")
def our_fitter(assets: Assets):  # type: ignore[no-untyped-def]
    from facereenact.face3d.fitter import FaceFitter

    return FaceFitter(assets)


@pytest.fixture(scope="module")
def dlib_reference() -> DlibLandmarks:
    try:
        return DlibLandmarks()
    except AssetError as error:
        pytest.skip(f"dlib reference unavailable: {error}")


@pytest.fixture(scope="module")
def mediapipe_reference(assets: Assets):  # type: ignore[no-untyped-def]
    try:
        face = MediaPipeFace(assets)
    except AssetError as error:
        pytest.skip(f"MediaPipe reference unavailable: {error}")
    yield face
    face.close()


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    from facereenact.io.image import read_image

    return read_image(_require(DATA / "portraits" / FRONTAL_PORTRAIT, "portrait"))


def _frame(clip: str, index: int) -> np.ndarray:
    from facereenact.io.video import iter_frames

    frames = list(iter_frames(_require(DATA / "clips" / clip, "clip"), max_frames=index + 1))
    return frames[index]


def _nme(ours: np.ndarray, reference: np.ndarray) -> float:
    iod = np.linalg.norm(reference[36] - reference[45])
    return float(np.linalg.norm(ours[:, :2] - reference, axis=1).mean() / iod)


# ---- the mapping ---------------------------------------------------------------------------------
def test_mapping_has_at_least_20_distinct_points() -> None:
    assert len(MEDIAPIPE_TO_68) >= 20
    assert all(0 <= i < 68 for i in MEDIAPIPE_TO_68)
    assert all(0 <= j < 478 for j in MEDIAPIPE_TO_68.values())
    assert len(set(MEDIAPIPE_TO_68.values())) == len(MEDIAPIPE_TO_68)
    # Both eyes' outer corners are mapped: they normalise the fallback NME.
    assert {36, 45} <= set(MEDIAPIPE_TO_68)


def test_rotation_angles_of_identity_and_pure_yaw() -> None:
    assert rotation_angles(np.eye(3)) == pytest.approx((0.0, 0.0, 0.0))
    angle = np.radians(20.0)
    # R[2, 0] = sin(yaw): the model's x axis gains depth toward the camera.
    rotation = np.array([[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]])
    assert rotation_angles(rotation) == pytest.approx((20.0, 0.0, 0.0))


# ---- missing files -------------------------------------------------------------------------------
def test_missing_dlib_model_is_an_asset_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="dlib landmark model missing"):
        DlibLandmarks(model_path=tmp_path / "absent.dat")


def test_missing_mediapipe_model_is_an_asset_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="face_landmarker.task"):
        MediaPipeFace(Assets(tmp_path))


# ---- dlib ----------------------------------------------------------------------------------------
def test_dlib_finds_68_points_near_ours(portrait: np.ndarray, our_fitter, dlib_reference: DlibLandmarks) -> None:  # type: ignore[no-untyped-def]
    ours = our_fitter.fit_image(portrait)[0]
    own = dlib_reference.landmarks(portrait)  # dlib's own HOG detector
    assert own is not None and own.shape == (68, 2)
    hinted = dlib_reference.landmarks(portrait, box_hint=ours.detection.box)
    assert hinted.shape == (68, 2)
    assert _nme(ours.landmarks, own) < 0.1
    assert _nme(ours.landmarks, hinted) < 0.1
    # The hint only says where to look: dlib re-frames the face its own way.
    assert _nme(hinted, own) < 0.03


def test_dlib_without_hint_finds_nothing_in_a_blank_image(dlib_reference: DlibLandmarks) -> None:
    assert dlib_reference.landmarks(np.full((200, 200, 3), 128, np.uint8)) is None


# ---- MediaPipe -----------------------------------------------------------------------------------
def test_mediapipe_outputs(portrait: np.ndarray, mediapipe_reference: MediaPipeFace) -> None:
    face = mediapipe_reference.analyse(portrait)
    assert face is not None
    assert face.landmarks.shape == (478, 2)
    assert face.blendshapes.shape == (52,) and len(face.blendshape_dict()) == 52
    assert face.matrix.shape == (4, 4)
    height, width = portrait.shape[:2]
    assert (face.landmarks >= 0).all() and (face.landmarks[:, 0] < width).all() and (face.landmarks[:, 1] < height).all()
    assert abs(face.yaw_pitch_roll()[0]) < 10  # a frontal portrait


def test_mediapipe_finds_nothing_in_a_blank_image(mediapipe_reference: MediaPipeFace) -> None:
    assert mediapipe_reference.analyse(np.full((200, 200, 3), 128, np.uint8)) is None


def test_mapped_mediapipe_points_are_near_dlib(portrait: np.ndarray, mediapipe_reference: MediaPipeFace, dlib_reference: DlibLandmarks) -> None:
    face = mediapipe_reference.analyse(portrait)
    reference = dlib_reference.landmarks(portrait)
    assert face is not None and reference is not None
    ibug, points = face.landmarks_68()
    iod = np.linalg.norm(reference[36] - reference[45])
    assert np.linalg.norm(points - reference[ibug], axis=1).mean() / iod < 0.05


@pytest.mark.parametrize(("clip", "index", "sign"), TURNED)
def test_mediapipe_yaw_sign_agrees_with_ours(clip: str, index: int, sign: int, our_fitter, mediapipe_reference: MediaPipeFace) -> None:  # type: ignore[no-untyped-def]
    frame = _frame(clip, index)
    our_yaw = float(our_fitter.fit_image(frame)[0].params.angles()[0, 0])
    face = mediapipe_reference.analyse(frame)
    assert face is not None
    mp_yaw = face.yaw_pitch_roll()[0]
    assert sign * our_yaw > 20, f"our yaw {our_yaw:.1f}° is not clearly turned"
    assert sign * mp_yaw > 15, f"MediaPipe yaw {mp_yaw:.1f}° disagrees with ours ({our_yaw:.1f}°)"


@pytest.mark.parametrize(("clip", "index", "sign"), TURNED)
def test_mirror_flips_mediapipe_yaw(clip: str, index: int, sign: int, mediapipe_reference: MediaPipeFace) -> None:
    frame = _frame(clip, index)
    face = mediapipe_reference.analyse(frame)
    mirrored = mediapipe_reference.analyse(np.ascontiguousarray(frame[:, ::-1]))
    assert face is not None and mirrored is not None
    yaw, _, roll = face.yaw_pitch_roll()
    yaw_mirror, _, roll_mirror = mirrored.yaw_pitch_roll()
    assert sign * yaw > 15 and sign * yaw_mirror < -15
    assert abs(yaw + yaw_mirror) < 5
    assert abs(roll + roll_mirror) < 5
