"""Fitting images and tracking videos on real footage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facereenact.face3d.fitter import FaceTracker
from facereenact.face3d.regressor import box_from_detection, box_from_landmarks
from facereenact.io.video import iter_frames, probe_video

from ..conftest import clip_paths


def test_crop_box_formulas() -> None:
    box = box_from_detection(np.array([100.0, 100.0, 200.0, 220.0]))
    side = np.floor(110 * 1.58)
    assert np.allclose(box, [150 - side / 2, 160 + 0.14 * 110 - side / 2, 150 + side / 2, 160 + 0.14 * 110 + side / 2])
    square = box_from_landmarks(np.array([[0.0, 0.0], [100.0, 50.0]]))
    assert np.allclose(square, [50 - 50 * np.sqrt(2), 25 - 50 * np.sqrt(2), 50 + 50 * np.sqrt(2), 25 + 50 * np.sqrt(2)])


def test_mirroring_negates_yaw_and_roll(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    for name, image in portraits.items():
        angles = fitter.fit_one(image).params.angles()[0]
        mirrored = fitter.fit_one(np.ascontiguousarray(image[:, ::-1])).params.angles()[0]
        assert abs(angles[0] + mirrored[0]) < 3, f"{name}: yaw {angles[0]:.1f} vs mirrored {mirrored[0]:.1f}"
        assert abs(angles[2] + mirrored[2]) < 3, f"{name}: roll {angles[2]:.1f} vs mirrored {mirrored[2]:.1f}"
        assert abs(angles[1] - mirrored[1]) < 3, f"{name}: pitch {angles[1]:.1f} vs mirrored {mirrored[1]:.1f}"


def _jitter(landmarks: np.ndarray) -> float:
    """Mean second difference of the landmarks over time, in inter-ocular distances."""
    points = landmarks[..., :2]
    iod = np.linalg.norm(points[:, 45] - points[:, 36], axis=-1).mean()
    return float(np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=-1).mean() / iod)


@pytest.mark.parametrize("clip", ["lp_d18", "r3dp_may"])
def test_smoothing_halves_landmark_jitter(fitter, data_dir, clip) -> None:  # type: ignore[no-untyped-def]
    path = data_dir / "clips" / f"{clip}.mp4"
    info = probe_video(path)
    frames = list(iter_frames(path, round(info.fps)))  # the first second
    raw = fitter.track(frames, info.fps, smoothing=False)
    smooth = fitter.track(frames, info.fps, smoothing=True)
    assert _jitter(smooth.landmarks) <= 0.5 * _jitter(raw.landmarks)


def test_smoothing_keeps_up_with_motion(fitter, data_dir) -> None:  # type: ignore[no-untyped-def]
    """Smoothed landmarks stay close to the raw ones: smoothing removes jitter, not motion."""
    path = data_dir / "clips" / "lp_d6.mp4"
    info = probe_video(path)
    frames = list(iter_frames(path, 60))
    raw = fitter.track(frames, info.fps, smoothing=False).landmarks[..., :2]
    smooth = fitter.track(frames, info.fps, smoothing=True).landmarks[..., :2]
    iod = np.linalg.norm(raw[:, 45] - raw[:, 36], axis=-1).mean()
    assert np.linalg.norm(smooth - raw, axis=-1).mean() / iod < 0.05


def test_a_smoothed_track_keeps_each_frames_own_fit(fitter, data_dir) -> None:  # type: ignore[no-untyped-def]
    """Smoothing gives the steady track; each frame's own fit stays with it, for what must match
    each picture (a source video's frames are warped from theirs)."""
    frames = list(iter_frames(data_dir / "clips" / "lp_d6.mp4", 20))
    raw = fitter.track(frames, 25.0, smoothing=False)
    smooth = fitter.track(frames, 25.0, smoothing=True)
    assert raw.unsmoothed is None and raw.frame_fits is raw.params
    for name in ("rotation", "translation", "expression", "blendshapes"):
        own, unsmoothed, smoothed = getattr(raw.params, name), getattr(smooth.frame_fits, name), getattr(smooth.params, name)
        assert torch.allclose(unsmoothed, own, atol=1e-4), name
        assert not torch.allclose(smoothed, own, atol=1e-4), f"{name}: the smoothed track is the raw one"


def test_stepping_a_clip_with_mediapipe_reading_ahead_gives_the_faces_of_one_step_at_a_time(fitter, data_dir) -> None:  # type: ignore[no-untyped-def]
    frames = list(iter_frames(data_dir / "clips" / "dpe_d.mp4", 12))
    with FaceTracker(fitter) as tracker:
        ahead = list(tracker.steps(frames))
    with FaceTracker(fitter) as tracker:
        one_by_one = [tracker.step(frame) for frame in frames]
    assert len(ahead) == len(frames) and all(face is not None for face in ahead)
    for a, b in zip(ahead, one_by_one, strict=True):
        assert a is not None and b is not None
        assert np.array_equal(a.landmarks, b.landmarks) and np.array_equal(a.scores, b.scores)


def test_tracking_finds_the_face_on_a_clip(fitter, data_dir) -> None:  # type: ignore[no-untyped-def]
    path = data_dir / "clips" / "3ddfa_obama.mp4"  # a small face in a wide news frame
    fit = fitter.track(iter_frames(path), probe_video(path).fps)
    assert fit.found.mean() >= 0.98
    assert fit.detections <= 3, "the detector runs again only when tracking is lost"


def test_lost_face_holds_the_last_parameters(fitter, data_dir) -> None:  # type: ignore[no-untyped-def]
    path = data_dir / "clips" / "hdtf_aoc.mp4"
    frames = list(iter_frames(path, 20))
    frames[8:12] = [np.zeros_like(frames[0])] * 4  # the face disappears for four frames
    fit = fitter.track(frames, 25.0, smoothing=False)
    assert fit.found.tolist() == [True] * 8 + [False] * 4 + [True] * 8
    assert fit.lost_ranges() == [(8, 11)]
    assert torch.equal(fit.params.translation[9], fit.params.translation[7])


@pytest.mark.slow
def test_tracking_finds_the_face_on_every_clip(fitter, data_dir) -> None:  # type: ignore[no-untyped-def]
    shares = {}
    for path in clip_paths(data_dir):
        fit = fitter.track(iter_frames(path), probe_video(path).fps)
        shares[path.stem] = float(fit.found.mean())
    failing = {name: round(share, 3) for name, share in shares.items() if share < 0.98}
    assert not failing, failing


def test_blendshapes_are_read_on_images_and_through_videos(fitter, assets, portraits, data_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The source and every driving frame get MediaPipe's scores (refined to its landmarks, so a
    little outside [0, 1] at times, and the eye scores offset to put the model's lids where the
    picture's are); eyes hidden for a
    while hold a steady state; frames MediaPipe cannot read are filled from their neighbours and
    named; a fitter told not to read them leaves them at zero."""
    import torch

    from facereenact.face3d import fitter as fitter_module
    from facereenact.face3d.blendshapes import CHANNEL_NAMES, N_BLENDSHAPES, Region, region_mask
    from facereenact.face3d.fitter import FaceFitter
    from facereenact.io.video import iter_frames

    face = fitter.fit_one(portraits["lp_s12"])
    assert face.params.blendshapes.shape == (1, N_BLENDSHAPES)
    others = ~torch.from_numpy(region_mask([Region.eyes]))  # eye scores are matched to the photo's lids
    assert float(face.params.blendshapes.max()) > 0.1 and float(face.params.blendshapes[:, others].abs().max()) < 1.5
    frames = list(iter_frames(data_dir / "clips" / "dpe_s.mp4", 30))
    hidden = [frame.copy() for frame in frames]
    for frame in hidden[4:14]:
        frame[: frame.shape[0] // 2] = 0  # the eyes and brows hidden, as by a hand
    fit = fitter.track(hidden, 25.0)
    assert fit.params.blendshapes.shape == (30, N_BLENDSHAPES) and fit.read.shape == (30,)
    eyes = fit.params.blendshapes[:, [CHANNEL_NAMES.index(n) for n in ("eyeBlinkLeft", "eyeBlinkRight", "browInnerUp")]]
    assert bool(torch.isfinite(eyes).all()) and float(eyes.std()) > 0.0, "the scores move with the driver"
    flicker = eyes[4:14].diff(n=2, dim=0).abs().max()  # a back-and-forth between frames while hidden
    assert float(flicker) < 0.2, f"hidden eyes flicker: a second difference of {float(flicker):.2f}"

    real_faces = fitter_module.BlendshapeReader.faces
    calls = iter(range(10**6))

    def losing_frames_12_to_15(self, rgb):  # type: ignore[no-untyped-def]
        return [] if 12 <= next(calls) <= 15 else real_faces(self, rgb)

    monkeypatch.setattr(fitter_module.BlendshapeReader, "faces", losing_frames_12_to_15)
    fit = fitter.track(frames[:20], 25.0)
    monkeypatch.undo()
    assert fit.found.all() and fit.unread_ranges() == [(12, 15)]
    blinks = fit.params.blendshapes[:, CHANNEL_NAMES.index("eyeBlinkLeft")]
    low, high = float(blinks[[11, 16]].min()), float(blinks[[11, 16]].max())
    assert all(low - 0.05 <= float(b) <= high + 0.05 for b in blinks[12:16]), "unread frames lie between their neighbours"
    plain = FaceFitter(assets, blendshapes=False).track(frames[:5], 25.0)
    assert torch.equal(plain.params.blendshapes, torch.zeros(5, N_BLENDSHAPES))
