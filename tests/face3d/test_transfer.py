"""Motion transfer modes."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.params import FaceParams, angles_to_rotation
from facereenact.face3d.transfer import MotionMode, MotionOptions, keep_lips_apart, lip_gap, target_params


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


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), spread=st.floats(0.5, 3.0))
def test_lips_never_pass_through_each_other(fitter, seed: int, spread: float) -> None:  # type: ignore[no-untyped-def]
    """Crossed lips are brought back to touching by the smallest change of the expression;
    faces whose lips do not cross are left exactly as they were."""
    model, spreads = fitter.model, fitter.coefficient_scale.cpu()  # the regressor's spread of each coefficient
    generator = torch.Generator().manual_seed(seed)
    batch = 8
    params = FaceParams(
        rotation=torch.eye(3).expand(batch, 3, 3),
        scale=torch.ones(batch),
        translation=torch.zeros(batch, 2),
        shape=torch.randn(batch, 40, generator=generator) * spreads[:40],
        expression=torch.randn(batch, 10, generator=generator) * spreads[40:50] * spread,
    )
    before = lip_gap(model, params.shape, params.expression)
    kept = keep_lips_apart(model, params)
    after = lip_gap(model, kept.shape, kept.expression)
    crossed = before < 0
    face_size = float(model.mean[:, 1].max() - model.mean[:, 1].min())
    assert bool((after[crossed].abs() < 1e-4 * face_size).all()), "crossed lips now touch"
    assert torch.equal(kept.expression[~crossed], params.expression[~crossed])
    assert torch.equal(kept.shape, params.shape)
    if bool(crossed.any()):  # the change is along the gap's gradient only: nothing else moves
        change = kept.expression[crossed] - params.expression[crossed]
        direction = torch.nn.functional.normalize(change, dim=1)
        assert bool((direction - direction[:1]).abs().max() < 1e-3)
