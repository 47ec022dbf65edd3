"""Filling an opening mouth from the driving frame's own mouth."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.raster import rasterize
from facereenact.face3d.transfer import MotionMode, MotionOptions
from facereenact.io.video import iter_frames
from facereenact.pipeline.reenactor import ReenactOptions, Reenactor
from facereenact.warp.mouth import cut_driving_mouths


def _ramp(height: int, width: int) -> np.ndarray:
    """A frame whose red channel is x/4 and green channel y/4: bilinear sampling is exact on it."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([xs / 4, ys / 4, np.full_like(xs, 128)], -1).round().astype(np.uint8)


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(0.2, 3.0),
    cx=st.floats(300.0, 700.0),
    cy=st.floats(300.0, 600.0),
)
def test_cut_out_coordinates_point_at_the_same_frame_pixels(scale: float, cx: float, cy: float) -> None:
    frame = _ramp(900, 1000)
    target_size = 100.0
    landmarks = torch.zeros(1, 68, 3)
    landmarks[0, :, 0] = torch.linspace(-0.5, 0.5, 68) * target_size / scale + cx  # face extent target/scale
    landmarks[0, 48:68, 0] = cx
    landmarks[0, 48:68, 1] = cy
    generator = torch.Generator().manual_seed(0)
    points = torch.tensor([cx, cy]) + (torch.rand(200, 2, generator=generator) - 0.5) * 0.6 * 0.75 * target_size / scale
    vertices = torch.cat([points, torch.zeros(200, 1)], 1)[None]
    mouths = cut_driving_mouths(frame[None], vertices, landmarks, torch.tensor([target_size]))
    side = mouths.patches.shape[-1]
    assert side == round(0.75 * target_size)
    where = mouths.vertices[0]
    assert bool(((where >= 0) & (where <= side - 1)).all())
    grid = (where / (side - 1) * 2 - 1)[None, None]
    sampled = torch.nn.functional.grid_sample(mouths.patches, grid, align_corners=True)[0, :, 0].T * 255
    expected = points / 4
    # Shrinking averages neighbours (half a frame pixel either way, an eighth of a level here).
    assert float((sampled[:, :2] - expected).abs().max()) < 1.0


def _open_mouth_frame(fitter, data_dir):  # type: ignore[no-untyped-def]
    """The frame of lp_d0's first 40 with the widest-open mouth, and its fit."""
    frames = list(iter_frames(data_dir / "clips" / "lp_d0.mp4", 40))
    fit = fitter.track(frames, 25.0)
    gap = np.linalg.norm(fit.landmarks[:, 62, :2] - fit.landmarks[:, 66, :2], axis=1)
    index = int(np.argmax(gap))
    return frames[index], fit.params[index : index + 1]


def test_an_opening_mouth_shows_the_driving_frames_own_mouth(fitter, portraits, data_dir) -> None:  # type: ignore[no-untyped-def]
    frame, params = _open_mouth_frame(fitter, data_dir)
    # Paint the driving frame's mouth opening (its own fit's lip-bridging triangles) green.
    model = fitter.model
    with torch.inference_mode():
        own = model.vertices(params)
        raster = rasterize(own, model.triangles, frame.shape[0], frame.shape[1])
        in_gap = raster.scatter(model.mouth_gap[raster.triangles].float(), 0.0)[0].numpy() > 0
    marked = frame.copy()
    marked[in_gap] = (0, 255, 0)

    reenactor = Reenactor(portraits["lp_s42"], fitter, ReenactOptions(motion=MotionOptions(MotionMode.absolute)))
    with_driving = reenactor.reenact(params, params, paste=False, frames=marked[None])
    plain = reenactor.reenact(params, params, paste=False)
    mouth = with_driving.stage.mouth[0, 0].numpy() > 0
    assert mouth.sum() > 100, "the driving mouth is open: the output's mouth must open too"
    crop = with_driving.crops[0].astype(int)
    green = (crop[..., 1] > crop[..., 0] + 60) & (crop[..., 1] > crop[..., 2] + 60)
    assert green[mouth].mean() > 0.8, "the mouth opening must come from the driving frame's opening"
    assert with_driving.stage.holes[0, 0].numpy()[mouth].max() == 0, "a mouth taken from the driving frame is not a hole"
    assert np.array_equal(with_driving.crops[0][~mouth], plain.crops[0][~mouth]), "only the mouth changes"


def test_a_frame_without_a_tracked_face_gives_a_dark_mouth(fitter, portraits, data_dir) -> None:  # type: ignore[no-untyped-def]
    frame, params = _open_mouth_frame(fitter, data_dir)
    reenactor = Reenactor(portraits["lp_s42"], fitter, ReenactOptions(motion=MotionOptions(MotionMode.absolute)))
    lost = reenactor.reenact(params, params, paste=False, frames=frame[None], found=np.array([False]))
    unused = Reenactor(portraits["lp_s42"], fitter, ReenactOptions(motion=MotionOptions(MotionMode.absolute), driving_mouth=False))
    off = unused.reenact(params, params, paste=False, frames=frame[None])
    plain = reenactor.reenact(params, params, paste=False)
    assert np.array_equal(lost.crops, plain.crops)
    assert np.array_equal(off.crops, plain.crops)


def test_a_black_and_white_photo_gets_a_grey_mouth(fitter, portraits, data_dir) -> None:  # type: ignore[no-untyped-def]
    """The driving mouth's colours are toned down to the source face's: no pink mouth in a grey
    photo."""
    frame, params = _open_mouth_frame(fitter, data_dir)
    grey = portraits["lp_s42"].mean(2, keepdims=True).round().astype(np.uint8).repeat(3, 2)
    reenactor = Reenactor(grey, fitter, ReenactOptions(motion=MotionOptions(MotionMode.absolute)))
    made = reenactor.reenact(params, params, paste=False, frames=frame[None])
    mouth = made.stage.mouth[0, 0].numpy() > 0
    assert mouth.sum() > 100
    crop = made.crops[0].astype(int)
    assert int((crop.max(2) - crop.min(2))[mouth].max()) <= 2, "the mouth is as grey as the photo"
