"""3DMM parameters as a small dataclass, and the pose angles derived from them.

Geometry convention (image space, pixels): a model-space point ``m`` (x right, y up, z toward the
camera) projects to ``x = s·(r1·m) + tx``, ``y = -s·(r2·m) + ty`` (image y points down) and
depth ``z = s·(r3·m)`` (larger is nearer), with ``R = [r1; r2; r3]`` a proper rotation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from facereenact.face3d.blendshapes import N_BLENDSHAPES

N_SHAPE = 40
N_EXPRESSION = 10
#: Width of the BFM mean face in model units: ``scale · MODEL_FACE_WIDTH`` is a face width in pixels.
MODEL_FACE_WIDTH = 1.5e5


@dataclass
class FaceParams:
    """A batch of fitted faces. Shapes: rotation (B, 3, 3), scale (B,), translation (B, 2),
    shape (B, 40), expression (B, 10), blendshapes (B, N_BLENDSHAPES): MediaPipe's scores for
    eyelids, gaze, brows and mouth (:mod:`blendshapes`); zeros when not read."""

    rotation: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor
    shape: torch.Tensor
    expression: torch.Tensor
    blendshapes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, N_BLENDSHAPES))

    def __post_init__(self) -> None:
        if len(self.blendshapes) == 0 and len(self) > 0:
            self.blendshapes = self.expression.new_zeros(len(self), N_BLENDSHAPES)

    def __len__(self) -> int:
        return self.scale.shape[0]

    def __getitem__(self, index: int | slice | list[int] | torch.Tensor) -> FaceParams:
        if isinstance(index, int):
            index = slice(index, index + 1)
        return FaceParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(items: list[FaceParams]) -> FaceParams:
        return FaceParams(**{f.name: torch.cat([getattr(p, f.name) for p in items]) for f in fields(FaceParams)})

    def to(self, device: torch.device | str) -> FaceParams:
        return FaceParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def replace(self, **changes: torch.Tensor) -> FaceParams:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return FaceParams(**values)

    def angles(self) -> torch.Tensor:
        """Head pose (B, 3) as (yaw, pitch, roll) in degrees."""
        return rotation_to_angles(self.rotation)

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def orthonormalize_rows(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """The rotation (B, 3, 3) nearest two almost-orthogonal row vectors (B, 3).

    The regressor's rows are not exactly orthogonal; splitting the error symmetrically keeps
    both axes equally faithful (better than Gram-Schmidt, which favours the first row).
    """
    r1 = r1 / r1.norm(dim=-1, keepdim=True)
    r2 = r2 / r2.norm(dim=-1, keepdim=True)
    bisector = r1 + r2
    bisector = bisector / bisector.norm(dim=-1, keepdim=True)
    other = r1 - r2
    other = other / other.norm(dim=-1, keepdim=True)
    half = 0.5**0.5
    e1 = half * (bisector + other)
    e2 = half * (bisector - other)
    return torch.stack([e1, e2, torch.cross(e1, e2, dim=-1)], dim=-2)


def rotation_to_angles(rotation: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation → (B, 3) yaw, pitch, roll in degrees (3DDFA convention)."""
    r = rotation
    sin_yaw = r[:, 2, 0].clamp(-1.0, 1.0)
    yaw = torch.asin(sin_yaw)
    pitch = torch.atan2(r[:, 2, 1], r[:, 2, 2])
    roll = torch.atan2(r[:, 1, 0], r[:, 0, 0])
    # Gimbal lock: roll and pitch become one angle; put it all in pitch.
    locked = sin_yaw.abs() >= 0.998
    if locked.any():
        pitch = torch.where(locked, torch.atan2(r[:, 0, 1], r[:, 1, 1]), pitch)
        roll = torch.where(locked, torch.zeros_like(roll), roll)
    return torch.rad2deg(torch.stack([yaw, pitch, roll], dim=-1))


def angles_to_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rotation_to_angles`: (B, 3) degrees → (B, 3, 3), ``R = Rz(roll)·Ry(-yaw)·Rx(pitch)``."""
    yaw, pitch, roll = torch.deg2rad(angles).unbind(-1)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    shape = (*angles.shape[:-1], 3, 3)
    cp, sp = pitch.cos(), pitch.sin()
    cy, sy = yaw.cos(), (-yaw).sin()
    cr, sr = roll.cos(), roll.sin()
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(shape)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(shape)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(shape)
    return rz @ ry @ rx
