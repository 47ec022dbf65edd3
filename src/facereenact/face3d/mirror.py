"""Horizontal mirroring of fitted faces: the parameters of the face seen in a mirrored image.

Flipping a training image left-right is only a valid augmentation when its 3D face flips too.
Pose mirrors exactly (``R' = D·R·M`` with ``D`` the image's and ``M`` the model's x reflection);
identity and expression do not, because a person's face is not symmetric: the mirrored face is
the model's vertex-wise left/right swap of the original, re-expressed in the model's bases by
least squares (identity with the identity basis, expression with the expression basis, so the
two never mix and an identity-matched rebuild stays identity-matched after mirroring).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from facereenact.face3d.blendshapes import mirror_order
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import N_EXPRESSION, N_SHAPE, FaceParams

_X_REFLECTION = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))


def mirror_partners(mean: np.ndarray) -> tuple[np.ndarray, float]:
    """For the mean face (N, 3): each vertex's partner across the face's symmetry plane, and the
    plane's x position (model units)."""
    plane = float(np.median(mean[:, 0]))
    tree = cKDTree(mean)
    for _ in range(3):  # the plane from the partners, the partners from the plane
        reflected = mean * np.array([-1.0, 1.0, 1.0]) + np.array([2 * plane, 0.0, 0.0])
        partners = tree.query(reflected)[1]
        plane = float(np.mean((mean[:, 0] + mean[partners, 0]) / 2))
    return partners, plane


class ParamMirror:
    """Maps :class:`FaceParams` of a face in an image of width W to those of its mirror image
    (``image[:, ::-1]``, pixel x → W - 1 - x). Built once per model (a least-squares fit)."""

    def __init__(self, model: MorphableModel):
        mean = model.mean.double().cpu().numpy()
        partners, self.plane = mirror_partners(mean)
        n = len(mean)
        basis = model.basis.double().cpu().numpy().reshape(n, 3, -1)
        # Mirror of a model-space shape v: reflect x about the plane and swap partners.
        reflected_basis = (basis * np.array([-1.0, 1.0, 1.0])[None, :, None])[partners].reshape(3 * n, -1)
        reflected_mean = (mean * np.array([-1.0, 1.0, 1.0]) + np.array([2 * self.plane, 0.0, 0.0]))[partners]
        flat = basis.reshape(3 * n, -1)
        shape_basis, expression_basis = flat[:, :N_SHAPE], flat[:, N_SHAPE : N_SHAPE + N_EXPRESSION]
        solve = lambda a, b: np.linalg.lstsq(a, b, rcond=None)[0]  # noqa: E731
        self.shape_map = torch.from_numpy(solve(shape_basis, reflected_basis[:, :N_SHAPE])).float()
        self.shape_offset = torch.from_numpy(solve(shape_basis, (reflected_mean - mean).reshape(-1))).float()
        self.expression_map = torch.from_numpy(solve(expression_basis, reflected_basis[:, N_SHAPE : N_SHAPE + N_EXPRESSION])).float()
        self.blendshape_order = torch.from_numpy(mirror_order())
        self.partners = torch.from_numpy(partners)

    def __call__(self, params: FaceParams, width: float) -> FaceParams:
        device = params.rotation.device
        reflection = _X_REFLECTION.to(device)
        rotation = reflection @ params.rotation @ reflection
        # The model's symmetry plane is at x = plane, not 0: its image moves with the rotation.
        column = rotation[:, :, 0] * (2 * self.plane) * params.scale[:, None]
        translation = torch.stack(
            [(width - 1) - params.translation[:, 0] - column[:, 0], params.translation[:, 1] + column[:, 1]], -1
        )
        shape = params.shape @ self.shape_map.to(device).T + self.shape_offset.to(device)
        expression = params.expression @ self.expression_map.to(device).T
        blendshapes = params.blendshapes[:, self.blendshape_order.to(device)]
        return FaceParams(rotation=rotation, scale=params.scale.clone(), translation=translation, shape=shape, expression=expression, blendshapes=blendshapes)
