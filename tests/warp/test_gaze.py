"""Gaze: the iris slides inside the eye opening; the model says how far."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.blendshapes import CHANNEL_NAMES
from facereenact.face3d.irises import IrisModel
from facereenact.face3d.params import FaceParams, angles_to_rotation
from facereenact.pipeline.reenactor import Reenactor
from facereenact.stage import IrisShifts
from facereenact.warp.gaze import slide_irises

SIZE = 64
#: An open eye's outline (6 points, like the 68 landmarks' 36-41) around (32, 32).
OPEN_EYE = np.array([[16.0, 32.0], [24.0, 25.0], [40.0, 25.0], [48.0, 32.0], [40.0, 39.0], [24.0, 39.0]])


def _identity_field() -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])[None]


def _shifts(shift: tuple[float, float], outline: np.ndarray, centre: tuple[float, float] = (32.0, 32.0), radius: float = 5.0) -> IrisShifts:
    """One face whose first eye slides by ``shift``; the second eye is far away and still."""
    far = outline + 200.0
    return IrisShifts(
        vertices=torch.zeros(1, 0, 3),
        shifts=torch.tensor([[shift, (0.0, 0.0)]]),
        centres=torch.tensor([[centre, (232.0, 232.0)]]),
        radii=torch.tensor([[radius, radius]]),
        outlines=torch.from_numpy(np.stack([outline, far])[None]).float(),
    )


def test_the_iris_disc_moves_whole_and_the_lids_stay() -> None:
    field = slide_irises(_identity_field(), _shifts((3.0, 0.0), OPEN_EYE))
    motion = (field - _identity_field())[0].numpy()  # backward: where each pixel comes from
    for x in (30, 32, 34):  # the disc, now around (32, 32): taken from 3 px to its left
        assert np.allclose(motion[:, 32, x], [-3.0, 0.0], atol=1e-4)
    outside = np.ones((SIZE, SIZE), bool)
    outside[22:43, 14:51] = False
    assert np.abs(motion[:, outside]).max() == 0, "nothing outside the eye moves"
    assert np.abs(motion[:, 32, 17]).max() < 1.0, "the slide fades out towards the eye's corner"


def test_a_closed_eye_and_a_still_iris_slide_nothing() -> None:
    closed = OPEN_EYE.copy()
    closed[:, 1] = 32.0
    assert torch.equal(slide_irises(_identity_field(), _shifts((3.0, 0.0), closed)), _identity_field())
    assert torch.equal(slide_irises(_identity_field(), _shifts((0.0, 0.0), OPEN_EYE)), _identity_field())


@settings(max_examples=30, deadline=None)
@given(dx=st.floats(-4, 4), dy=st.floats(-2, 2), cx=st.floats(26, 38), cy=st.floats(29, 35))
def test_the_slide_never_exceeds_the_shift_nor_leaves_the_eye(dx: float, dy: float, cx: float, cy: float) -> None:
    field = slide_irises(_identity_field(), _shifts((dx, dy), OPEN_EYE, (cx, cy)))
    motion = (field - _identity_field())[0].numpy()
    assert np.all(np.hypot(motion[0], motion[1]) <= np.hypot(dx, dy) + 1e-4)
    assert np.abs(motion[:, :22]).max() == 0 and np.abs(motion[:, 43:]).max() == 0


def _scores(**named: float) -> torch.Tensor:
    scores = torch.zeros(1, len(CHANNEL_NAMES))
    for name, value in named.items():
        scores[0, CHANNEL_NAMES.index(name)] = value
    return scores


def test_looking_sideways_moves_the_irises_and_nothing_else_is_held(model) -> None:  # type: ignore[no-untyped-def]
    irises = IrisModel(model)
    source = _face(model, _scores())
    target = _face(model, _scores(eyeLookOutLeft=0.5, eyeLookInRight=0.5, eyeLookUpLeft=0.3, eyeBlinkLeft=0.3))
    ahead = irises.looking_ahead(target, source)
    assert torch.equal(ahead.blendshapes, _scores(eyeLookUpLeft=0.3, eyeBlinkLeft=0.3)), "only the sideways look is held"
    turned = target.replace(rotation=angles_to_rotation(torch.tensor([[20.0, -10.0, 5.0]])))
    motion = irises.sideways_motion(turned, source)
    assert torch.allclose(model.vertices(turned) - motion, model.vertices(irises.looking_ahead(turned, source)), atol=1e-3)
    moved = irises.points(model.vertices(target))[0, :, 0, :2] - irises.points(model.vertices(ahead))[0, :, 0, :2]  # (eye, x y)
    eye_width = float((model.landmarks(source)[0, 39, 0] - model.landmarks(source)[0, 36, 0]).abs())
    assert torch.all(moved[:, 0].abs() > 0.03 * eye_width), "both irises move sideways"
    assert torch.all(moved[:, 1].abs() < moved[:, 0].abs() / 2)
    assert moved[0, 0] * moved[1, 0] > 0, "both eyes look the same way"


def test_a_gaze_step_slides_the_portraits_irises(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    reenactor = Reenactor(portraits["lp_s1"], fitter)
    source = reenactor.source.params
    looking = source.blendshapes.clone()
    looking[0, CHANNEL_NAMES.index("eyeLookOutLeft")] += 0.5
    looking[0, CHANNEL_NAMES.index("eyeLookInRight")] += 0.5
    batch = reenactor.reenact(source.replace(blendshapes=looking), source, paste=False)
    irises, model = IrisModel(fitter.model), fitter.model
    centres = irises.points(reenactor.bound.to_crop(model.vertices(batch.targets)))[0, :, 0, :2]
    held = irises.points(reenactor.bound.to_crop(model.vertices(irises.looking_ahead(batch.targets, source))))[0, :, 0, :2]
    field = batch.stage.field[0]  # (S, S, 2) backward
    for end, start in zip(centres, held, strict=True):
        x, y = (int(round(float(v))) for v in end)
        assert torch.allclose(field[y, x] - torch.tensor([float(x), float(y)]), start - end, atol=0.6), "the iris centre is taken from where it was"
        assert float((end - start).norm()) > 1.0


def _face(model, blendshapes: torch.Tensor) -> FaceParams:  # type: ignore[no-untyped-def]
    return FaceParams(
        rotation=torch.eye(3)[None],
        scale=torch.tensor([0.002]),
        translation=torch.tensor([[128.0, 128.0]]),
        shape=torch.zeros(1, 40),
        expression=torch.zeros(1, 10),
        blendshapes=blendshapes,
    )
