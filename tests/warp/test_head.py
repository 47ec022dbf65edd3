"""The head proxy: an ellipsoid that turns with the pose and carries hair, ears and outline."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.params import FaceParams, angles_to_rotation
from facereenact.warp.head import HeadEllipsoid, head_field

SIZE = 64
HEAD = HeadEllipsoid(centre=torch.tensor([[0.0, 0.0, -4.0]]), radii=torch.tensor([[12.0, 15.0, 14.0]]))


def _params(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, scale: float = 1.5, tx: float = 32.0, ty: float = 32.0) -> FaceParams:
    return FaceParams(
        rotation=angles_to_rotation(torch.tensor([[yaw, pitch, roll]])),
        scale=torch.tensor([scale]),
        translation=torch.tensor([[tx, ty]]),
        shape=torch.zeros(1, 40),
        expression=torch.zeros(1, 10),
    )


def _grid() -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys])


def test_the_same_pose_maps_every_pixel_to_itself() -> None:
    pose = _params(yaw=20.0, pitch=-10.0, roll=5.0)
    field = head_field(HEAD, pose, pose, SIZE)
    assert field.shape == (1, 2, SIZE, SIZE)
    assert torch.allclose(field[0], _grid(), atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(
    roll=st.floats(-40, 40),
    scale=st.floats(0.8, 2.0),
    tx=st.floats(20, 44),
    ty=st.floats(20, 44),
)
def test_in_plane_motion_is_the_head_similarity(roll: float, scale: float, tx: float, ty: float) -> None:
    """Position, size and in-plane turn need no depth: the field is then exactly the 2D
    similarity between the two heads, inside and outside the outline."""
    source, target = _params(), _params(roll=roll, scale=scale, tx=tx, ty=ty)
    field = head_field(HEAD, source, target, SIZE)[0]
    angle = math.radians(roll)
    grid = _grid()
    # Target pixel → camera plane of the target → undo the roll → the source's pixels.
    dx, dy = (grid[0] - tx) / scale, -(grid[1] - ty) / scale
    rotation = angles_to_rotation(torch.tensor([[0.0, 0.0, roll]]))[0]
    back = rotation.T[:2, :2]
    x = back[0, 0] * dx + back[0, 1] * dy
    y = back[1, 0] * dx + back[1, 1] * dy
    expected = torch.stack([1.5 * x + 32, -1.5 * y + 32])
    assert torch.allclose(field, expected, atol=1e-3), angle


def test_a_yawing_head_carries_its_outline_with_the_face() -> None:
    """When the head turns, the front of the head (the face) travels furthest, its sides (ears)
    less but the same way, and a point beyond the outline continues smoothly."""
    source, turned = _params(), _params(yaw=25.0)
    field = head_field(HEAD, source, turned, SIZE)[0]
    motion = field - _grid()
    row = 32
    front = motion[0, row, 32].item()
    side = motion[0, row, 32 + 15].item()  # near the outline (x radius 12 · scale 1.5 = 18 px)
    beyond = motion[0, row, 32 + 25].item()
    assert abs(front) > 3, "the front of a turned head comes from elsewhere in the source"
    assert front * side > 0 and abs(side) < abs(front), "the side of the head moves less but the same way"
    assert torch.isfinite(motion).all()
    steps = motion[0, row, 40:60].diff().abs()
    assert steps.max() < 3, "no jump across the head's outline"
    assert math.isfinite(beyond)


def test_each_identity_gets_a_head_that_grows_with_its_face(fitter) -> None:  # type: ignore[no-untyped-def]
    model = fitter.model
    shapes = torch.zeros(2, 40)
    shapes[1, 0] = 3.0 * fitter.coefficient_scale[0]
    heads = HeadEllipsoid.of(model, shapes)
    jaw = lambda shape: (model.landmarks(_params().replace(shape=shape[None]))[0, 16] - model.landmarks(_params().replace(shape=shape[None]))[0, 0]).norm()  # noqa: E731
    ratio = (jaw(shapes[1]) / jaw(shapes[0])).item()
    assert abs(ratio - 1) > 0.01, "the chosen coefficient must change the jaw width"
    assert torch.allclose(heads.radii[1] / heads.radii[0], torch.full((3,), ratio), rtol=1e-4)
    # The mean face's nose tip sits in front of its head, its jaw corners inside it.
    mean = model.landmark_mean.view(-1, 3)
    inside = lambda p: (((p - heads.centre[0]) / heads.radii[0]) ** 2).sum().item()  # noqa: E731
    assert inside(mean[30]) > 1
    assert inside(mean[0]) < 1 and inside(mean[16]) < 1
