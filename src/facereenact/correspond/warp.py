"""Training-free reenactment: warp the source crop along the identity-matched 3D correspondence.

For every pixel of an output face we know, from the rebuilt geometry (source identity, target
pose and expression), which surface point it shows; that point's position in the source crop is
rendered as a vertex attribute, giving an exact backward warp field for the face. Outside the
face the field blends from a similarity motion of the head to the identity, so hair and neck
move with the head, the far background stays still and the image never tears. Pixels the source
cannot supply (surfaces hidden or foreshortened in the source, the inside of an opening mouth)
are returned as a hole mask and filled.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.raster import interpolate, rasterize

#: A triangle stretched more than this (area in the output over area in the source) has too
#: little source texture to be warped faithfully; its pixels become holes.
MAX_STRETCH = 3.0
#: Colour of a mouth opening the source cannot fill (RGB in [0, 1]).
MOUTH_CAVITY = (0.12, 0.05, 0.05)
#: Around the face, hair and neck follow the head's motion fully up to HEAD_NEAR face sizes away
#: and not at all from HEAD_FAR on (the still background); inside the default crop.
HEAD_NEAR, HEAD_FAR = 0.05, 0.4
_INNER_LIP = slice(60, 68)


@dataclass
class WarpResult:
    """Warped crops (B, 3, S, S) in [0, 1] with holes filled; ``holes`` (B, 1, S, S) marks pixels
    the source could not supply, ``mouth`` (B, 1, S, S) the opening mouth, ``face`` (B, 1, S, S)
    the rendered face, ``field`` (B, S, S, 2) the backward warp in source-crop pixels."""

    images: torch.Tensor
    holes: torch.Tensor
    mouth: torch.Tensor
    face: torch.Tensor
    field: torch.Tensor


def mouth_triangles(model: MorphableModel) -> torch.Tensor:
    """(F,) bool: triangles inside the inner-lip contour of the mean face (the mouth opening)."""
    size = 512
    lips = model.landmark_mean[_INNER_LIP, :2].cpu().numpy()
    corners = model.mean[model.triangles].mean(1)[:, :2].cpu().numpy()
    points = np.concatenate([lips, corners])
    low, high = points.min(0), points.max(0)
    to_pixels = lambda p: np.round((p - low) / (high - low).max() * (size - 1)).astype(np.int32)  # noqa: E731
    canvas = np.zeros((size, size), np.uint8)
    cv2.fillPoly(canvas, [to_pixels(lips)], 1)
    pixel = to_pixels(corners)
    return torch.from_numpy(canvas[pixel[:, 1], pixel[:, 0]] > 0).to(model.triangles.device)


def _triangle_areas(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    corners = vertices[:, triangles][..., :2]  # (B, F, 3, 2)
    a, b = corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    return (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]).abs() / 2


def similarity_transform(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Least-squares 2D similarity (B, 2, 3) mapping ``source`` points (B, K, 2) onto ``target``."""
    mu_s, mu_t = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    s, t = source - mu_s, target - mu_t
    # With complex numbers z_t ≈ c·z_s: c = Σ conj(z_s)·z_t / Σ |z_s|².
    dot = (s * t).sum((1, 2))
    cross = (s[..., 0] * t[..., 1] - s[..., 1] * t[..., 0]).sum(1)
    norm = (s**2).sum((1, 2)).clamp(min=1e-9)
    a, b = dot / norm, cross / norm
    linear = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], -2)  # (B, 2, 2)
    offset = mu_t[:, 0] - (linear @ mu_s[:, 0, :, None])[..., 0]
    return torch.cat([linear, offset[..., None]], -1)


def _inside_weight(face: np.ndarray, feather: float) -> np.ndarray:
    """1 deep inside the face mask, falling to 0 at its border over ``feather`` pixels."""
    inside = cv2.distanceTransform(face.astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(inside / feather, 0.0, 1.0)


def _head_weight(face: np.ndarray, near: float, far: float) -> np.ndarray:
    """1 on and near the face, falling smoothly to 0 at ``far`` pixels away (the still background)."""
    outside = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 3)
    ramp = np.clip((far - outside) / max(far - near, 1e-6), 0.0, 1.0)
    return ramp * ramp * (3 - 2 * ramp)  # smoothstep: no kink where the motion starts to fade


class GeometricWarp:
    """Warps a source crop to target faces; built once per source (its fit and crop box)."""

    def __init__(self, model: MorphableModel, source_vertices: torch.Tensor, source_landmarks: torch.Tensor, size: int):
        """``source_vertices`` (1, N, 3) and ``source_landmarks`` (1, 68, 3) in source-crop pixels."""
        self.model = model
        self.size = size
        self.source_vertices = source_vertices
        self.source_landmarks = source_landmarks
        self.mouth = mouth_triangles(model)
        raster = rasterize(source_vertices, model.triangles, size, size)
        seen = torch.zeros(len(model.triangles), dtype=torch.bool, device=source_vertices.device)
        seen[raster.triangles] = True
        self.source_visible = seen
        self.source_area = _triangle_areas(source_vertices, model.triangles)[0]

    def __call__(self, source_crop: torch.Tensor, target_vertices: torch.Tensor, target_landmarks: torch.Tensor) -> WarpResult:
        """``source_crop`` (1, 3, S, S); targets (B, N, 3) and (B, 68, 3) in crop pixels."""
        size, triangles = self.size, self.model.triangles
        batch = len(target_vertices)
        raster = rasterize(target_vertices, triangles, size, size)
        coordinates = interpolate(raster, triangles, self.source_vertices[..., :2])  # (B, 2, S, S)

        stretch = _triangle_areas(target_vertices, triangles) / self.source_area.clamp(min=1e-3)
        unusable = (~self.source_visible)[None] | (stretch > MAX_STRETCH)  # (B, F)
        image_of = raster.pixels // (size * size)
        pixel_unusable = unusable[image_of, raster.triangles]
        pixel_mouth = self.mouth[raster.triangles] & pixel_unusable
        holes = raster.scatter(pixel_unusable.float(), 0.0).unsqueeze(1)
        mouth = raster.scatter(pixel_mouth.float(), 0.0).unsqueeze(1)
        face = raster.mask

        similarity = similarity_transform(target_landmarks[..., :2], self.source_landmarks[..., :2].expand(batch, -1, -1))
        ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
        grid = torch.stack([xs, ys, torch.ones_like(xs)], -1).to(target_vertices.device)  # (S, S, 3)
        head_motion = torch.einsum("bij,hwj->bhwi", similarity, grid)  # (B, S, S, 2)
        identity = grid[..., :2].expand(batch, -1, -1, -1)

        face_np = face[:, 0].cpu().numpy() > 0
        face_size = float((target_landmarks[..., :2].amax(1) - target_landmarks[..., :2].amin(1)).max())
        inside = np.stack([_inside_weight(m, feather=max(2.0, 0.03 * face_size)) for m in face_np])
        head = np.stack([_head_weight(m, near=HEAD_NEAR * face_size, far=HEAD_FAR * face_size) for m in face_np])
        inside_t = torch.from_numpy(inside).to(grid.device)[..., None]
        head_t = torch.from_numpy(head).to(grid.device)[..., None]
        outer = head_t * head_motion + (1 - head_t) * identity
        field = inside_t * coordinates.permute(0, 2, 3, 1) + (1 - inside_t) * outer

        normalised = field / (size - 1) * 2 - 1
        images = F.grid_sample(source_crop.expand(batch, -1, -1, -1), normalised, mode="bilinear", padding_mode="border", align_corners=True)
        images = fill_holes(images, holes, mouth)
        return WarpResult(images, holes, mouth, face, field)


def fill_holes(images: torch.Tensor, holes: torch.Tensor, mouth: torch.Tensor) -> torch.Tensor:
    """A dark cavity where the mouth opens beyond what the source shows; elsewhere inpainting
    from the surroundings (OpenCV's Telea method)."""
    if not bool(holes.any()):
        return images
    cavity = torch.tensor(MOUTH_CAVITY, device=images.device)[None, :, None, None]
    images = torch.where(mouth > 0, cavity, images)
    rest = (holes > 0) & (mouth == 0)
    out = images.clone()
    for i in torch.nonzero(rest.flatten(1).any(1)).flatten().tolist():
        picture = (images[i].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        mask = rest[i, 0].cpu().numpy().astype(np.uint8)
        filled = cv2.inpaint(picture, mask, 3, cv2.INPAINT_TELEA)
        out[i] = torch.from_numpy(filled).to(images.device).permute(2, 0, 1).float() / 255
    return torch.where(rest, out, images)
