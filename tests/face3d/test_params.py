"""Pose angles and rotations."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.params import angles_to_rotation, orthonormalize_rows, rotation_to_angles

angle = st.floats(-80, 80)


@settings(max_examples=100, deadline=None)
@given(angle, angle, st.floats(-170, 170))
def test_angles_round_trip(yaw: float, pitch: float, roll: float) -> None:
    angles = torch.tensor([[yaw, pitch, roll]], dtype=torch.float64)
    rotation = angles_to_rotation(angles)
    assert torch.allclose(rotation @ rotation.transpose(-1, -2), torch.eye(3, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(rotation_to_angles(rotation), angles, atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 0.2))
def test_orthonormalize_rows_gives_the_nearby_rotation(seed: int, noise: float) -> None:
    generator = torch.Generator().manual_seed(seed)
    truth = angles_to_rotation((torch.rand(4, 3, generator=generator, dtype=torch.float64) - 0.5) * 120)
    scale = 1 + torch.rand(4, 1, generator=generator, dtype=torch.float64)
    perturbed = truth[:, :2] * scale[..., None] + noise * torch.randn(4, 2, 3, generator=generator, dtype=torch.float64) * 0.1
    rotation = orthonormalize_rows(perturbed[:, 0], perturbed[:, 1])
    assert torch.allclose(rotation @ rotation.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(4, 3, 3), atol=1e-9)
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(4, dtype=torch.float64))
    assert (rotation - truth).abs().max() < 0.05 + noise


def test_yaw_is_rotation_about_the_vertical_axis() -> None:
    rotation = angles_to_rotation(torch.tensor([[30.0, 0.0, 0.0]]))
    assert abs(rotation[0, 1, 1].item() - 1) < 1e-6, "a pure yaw keeps the vertical axis fixed"
