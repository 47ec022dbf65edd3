"""Motion transfer modes."""

from __future__ import annotations

import torch

from facereenact.correspond.motion import MotionMode, MotionOptions, target_params
from facereenact.face3d.params import FaceParams, angles_to_rotation


def _params(yaw: float, tx: float, scale: float, expression: float, shape: float = 0.0) -> FaceParams:
    return FaceParams(
        rotation=angles_to_rotation(torch.tensor([[yaw, 0.0, 0.0]])),
        scale=torch.tensor([scale]),
        translation=torch.tensor([[tx, 50.0]]),
        shape=torch.full((1, 40), shape),
        expression=torch.full((1, 10), expression),
    )


SOURCE = _params(yaw=10, tx=100, scale=2.0, expression=0.5, shape=3.0)
REFERENCE = _params(yaw=-20, tx=300, scale=1.0, expression=0.0, shape=-1.0)
DRIVING = FaceParams.cat([_params(yaw=-20, tx=300, scale=1.0, expression=0.0), _params(yaw=0, tx=310, scale=1.1, expression=1.0)])


def test_relative_adds_the_driving_change_to_the_source() -> None:
    out = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(MotionMode.relative))
    angles = out.angles()
    assert torch.allclose(angles[:, 0], torch.tensor([10.0, 30.0]), atol=1e-4)
    assert torch.allclose(out.expression[:, 0], torch.tensor([0.5, 1.5]))
    assert torch.allclose(out.translation[:, 0], torch.tensor([100.0, 120.0]))  # +10 px × size ratio 2
    assert torch.allclose(out.scale, torch.tensor([2.0, 2.2]))
    assert torch.equal(out.shape, SOURCE.shape.expand(2, -1)), "identity is always the source's"


def test_absolute_takes_orientation_and_expression_as_they_are() -> None:
    out = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(MotionMode.absolute))
    assert torch.allclose(out.angles()[:, 0], torch.tensor([-20.0, 0.0]), atol=1e-4)
    assert torch.allclose(out.expression[:, 0], torch.tensor([0.0, 1.0]))
    assert torch.equal(out.shape, SOURCE.shape.expand(2, -1))


def test_expression_only_and_pose_only() -> None:
    expression_only = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(transfer_pose=False))
    assert torch.allclose(expression_only.angles()[:, 0], torch.tensor([10.0, 10.0]), atol=1e-4)
    assert torch.allclose(expression_only.expression[:, 0], torch.tensor([0.5, 1.5]))
    pose_only = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(transfer_expression=False))
    assert torch.allclose(pose_only.expression[:, 0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(pose_only.angles()[:, 0], torch.tensor([10.0, 30.0]), atol=1e-4)
