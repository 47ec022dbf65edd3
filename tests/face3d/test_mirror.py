"""Mirroring fitted faces: the mirrored parameters describe the mirror image of the face."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facereenact.face3d.mirror import ParamMirror
from facereenact.face3d.params import FaceParams, angles_to_rotation


@pytest.fixture(scope="module")
def mirror(model) -> ParamMirror:  # type: ignore[no-untyped-def]
    return ParamMirror(model)


def _faces(fitter, spread: float) -> FaceParams:  # type: ignore[no-untyped-def]
    """Four faces with the regressor's typical coefficient spread around its mean."""
    mean, std = fitter.regressor.param_mean.cpu(), fitter.regressor.param_std.cpu()
    generator = torch.Generator().manual_seed(3)
    angles = torch.tensor([[20.0, 5, 8], [-30, -10, 3], [0, 0, 0], [10, 20, -15]])
    return FaceParams(
        rotation=angles_to_rotation(angles),
        scale=torch.full((4,), 8e-4),
        translation=torch.tensor([[120.0, 130.0], [100.0, 140.0], [128.0, 128.0], [140.0, 110.0]]),
        shape=mean[12:52] + spread * torch.randn(4, 40, generator=generator) * std[12:52],
        expression=mean[52:62] + spread * torch.randn(4, 10, generator=generator) * std[52:62],
    )


def test_partners_pair_up_left_and_right(mirror) -> None:  # type: ignore[no-untyped-def]
    partners = mirror.partners.numpy()
    assert np.mean(partners[partners] == np.arange(len(partners))) > 0.99, "mirroring twice gives the same vertex"
    assert np.mean(partners != np.arange(len(partners))) > 0.9, "off the middle line a vertex's partner is another vertex"


def test_mirrored_parameters_rebuild_the_mirror_image(model, fitter, mirror) -> None:  # type: ignore[no-untyped-def]
    params = _faces(fitter, 1.0)
    width = 256
    mirrored = mirror(params, width)
    vertices = model.vertices(params)
    expected = vertices[:, mirror.partners].clone()
    expected[..., 0] = width - 1 - expected[..., 0]
    error = (model.vertices(mirrored) - expected)[..., :2].norm(dim=-1)
    face_width = vertices[..., 0].amax(1) - vertices[..., 0].amin(1)
    assert (error.median(dim=1).values / face_width).max() < 0.015
    assert (error.quantile(0.95, dim=1) / face_width).max() < 0.03


def test_mirroring_negates_yaw_and_roll_and_is_its_own_inverse(model, fitter, mirror) -> None:  # type: ignore[no-untyped-def]
    params = _faces(fitter, 0.5)
    mirrored = mirror(params, 200)
    angles, flipped = params.angles(), mirrored.angles()
    assert torch.allclose(flipped[:, 0], -angles[:, 0], atol=1e-3)
    assert torch.allclose(flipped[:, 1], angles[:, 1], atol=1e-3)
    assert torch.allclose(flipped[:, 2], -angles[:, 2], atol=1e-3)
    twice = mirror(mirrored, 200)
    assert torch.allclose(twice.rotation, params.rotation, atol=1e-5)
    assert torch.allclose(twice.translation, params.translation, atol=1e-2)
    vertices = model.vertices(params)
    face_width = vertices[..., 0].amax(1) - vertices[..., 0].amin(1)
    error = (model.vertices(twice) - vertices)[..., :2].norm(dim=-1)
    assert (error.median(dim=1).values / face_width).max() < 0.01
