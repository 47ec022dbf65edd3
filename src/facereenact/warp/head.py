"""The head around the face: an ellipsoid that turns with the fitted pose.

The morphable model covers the face only, but hair, ears and jaw outline turn with it. A 2D
similarity (position, size, in-plane rotation) leaves them behind when the head yaws or pitches:
the face turns, the ears stay, and the face detaches from its own outline, which also changes
the identity a face model reads from the output. Rotating an ellipsoid proxy of the whole skull
with the same pose as the face moves everything around the face the way the face moves, and
reduces to the similarity for pure in-plane motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import N_EXPRESSION, FaceParams

#: The head ellipsoid of the mean face, in units of the mean face's jaw width (landmarks 0–16):
#: centre (x, y, z) relative to the mean of the eye corners, and semi-axes. A skull is about as
#: wide as the face mesh reaches (ears at its sides), its top ~1.1 jaw widths above the eyes,
#: its back ~1.2 jaw widths behind the eye line.
HEAD_CENTRE = (0.0, 0.0, -0.58)
HEAD_RADII = (0.58, 0.78, 0.68)


@dataclass(frozen=True)
class HeadEllipsoid:
    """Axis-aligned ellipsoid (model space): ``centre`` (B, 3), ``radii`` (B, 3)."""

    centre: torch.Tensor
    radii: torch.Tensor

    @staticmethod
    def of(model: MorphableModel, shape: torch.Tensor) -> HeadEllipsoid:
        """The head of each identity ``shape`` (B, 40), scaled with its jaw width and placed
        at its eyes (a wider face has a wider skull)."""
        neutral = torch.zeros(len(shape), N_EXPRESSION, dtype=shape.dtype, device=shape.device)
        points = model.model_space_landmarks(shape, neutral)
        width = (points[:, 16] - points[:, 0]).norm(dim=-1, keepdim=True)
        eyes = points[:, 36:48].mean(1)
        centre = eyes + width * torch.tensor(HEAD_CENTRE, dtype=shape.dtype, device=shape.device)
        radii = width * torch.tensor(HEAD_RADII, dtype=shape.dtype, device=shape.device)
        return HeadEllipsoid(centre, radii)


def head_field(head: HeadEllipsoid, source: FaceParams, target: FaceParams, size: int) -> torch.Tensor:
    """(B, 2, S, S): for each pixel of a target crop, where the head surface shown there lies in
    the source crop. ``source`` and ``target`` are in the crop's pixels (batch 1 or B).

    Each pixel's ray meets the target-posed ellipsoid at its front; that model-space point is
    projected with the source pose. Pixels beyond the head's outline take the outline's depth
    along their row of the quadric (its closest point to the ray), which continues the field
    smoothly outward.
    """
    batch = max(len(source), len(target))
    device, dtype = target.scale.device, target.scale.dtype
    coordinates = torch.arange(size, dtype=dtype, device=device)
    ys, xs = torch.meshgrid(coordinates, coordinates, indexing="ij")
    # Camera-space directions (before scale) of each pixel: x = s·Y_x + tx, y = -s·Y_y + ty.
    scale = target.scale.expand(batch)[:, None, None]
    rx = (xs[None] - target.translation[:, 0, None, None]) / scale
    ry = -(ys[None] - target.translation[:, 1, None, None]) / scale
    rotation_t = target.rotation.expand(batch, 3, 3)
    centre = torch.einsum("bij,bj->bi", rotation_t, head.centre.expand(batch, 3))  # camera space
    inverse_squares = torch.diag_embed(head.radii.expand(batch, 3).reciprocal() ** 2)
    quadric = rotation_t @ inverse_squares @ rotation_t.transpose(1, 2)  # (B, 3, 3) in camera space
    dx, dy = rx - centre[:, 0, None, None], ry - centre[:, 1, None, None]
    q = lambda i, j: quadric[:, i, j, None, None]  # noqa: E731
    a = q(2, 2)
    b = q(0, 2) * dx + q(1, 2) * dy
    c = q(0, 0) * dx * dx + 2 * q(0, 1) * dx * dy + q(1, 1) * dy * dy - 1
    root = (b * b - a * c).clamp(min=0).sqrt()
    dz = (root - b) / a  # the front intersection; -b/a (the outline's depth) beyond the head
    camera = torch.stack([rx, ry, dz + centre[:, 2, None, None]], 1).view(batch, 3, -1)  # (B, 3, S·S)
    # Back to model space (Rₜᵀ), then into the source's camera (Rₛ): one matrix, and only the
    # two rows the picture needs.
    to_source = source.rotation.expand(batch, 3, 3)[:, :2] @ rotation_t.transpose(1, 2)  # (B, 2, 3)
    in_source = torch.bmm(to_source, camera).view(batch, 2, size, size)
    flip = torch.tensor([1.0, -1.0], dtype=dtype, device=device)[None, :, None, None]  # image y points down
    source_scale = source.scale.expand(batch)[:, None, None, None]
    return torch.addcmul(source.translation[:, :2, None, None].expand(batch, 2, 1, 1), in_source, source_scale * flip)
