"""The driving frame's own mouth interior, for an opening mouth the source cannot show.

A closed-mouth source has no teeth or tongue to warp. The driving frame has them, at the place
its own fitted mesh (the driving identity, not the source's) puts the triangles bridging the
lips. Those triangles are the same surface in the target mesh, so rendering their driving-frame
positions on the target gives an exact backward map from the target's mouth opening to the
driving one: the driving teeth, tongue and cavity, stretched to the source's lips. Only the
inside of the lips travels; the driving face's shape never does.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facereenact.stage import DrivingMouths

#: Landmarks 48–67 outline the lips (iBUG 68-point layout).
LIPS = slice(48, 68)
#: The cut-out's side, in face sizes (a mouth is about 0.4 face sizes wide).
PATCH_FACES = 0.75


def cut_driving_mouths(
    frames: np.ndarray,
    vertices: torch.Tensor,
    landmarks: torch.Tensor,
    target_face_size: torch.Tensor,
    found: np.ndarray | None = None,
) -> DrivingMouths:
    """``frames`` (B, H, W, 3) uint8 RGB with their own fits: ``vertices`` (B, N, 3) and
    ``landmarks`` (B, 68, 3) in frame pixels; ``target_face_size`` (B,) the target faces' extent
    in crop pixels, which sets the cut-outs' scale so their pixels match the target's."""
    points = landmarks[..., :2]
    driving_size = (points.amax(1) - points.amin(1)).amax(-1).clamp(min=1.0)
    scale = (target_face_size / driving_size).cpu().numpy().astype(np.float64)
    centres = points[:, LIPS].mean(1).cpu().numpy().astype(np.float64)
    side = max(8, int(round(PATCH_FACES * float(target_face_size.max()))))
    patches, scales, offsets = [], [], []
    for frame, s, (cx, cy) in zip(frames, scale, centres):
        patch, s, offset = _cut(frame, float(s), float(cx), float(cy), side)
        patches.append(patch)
        scales.append(s)
        offsets.append(offset)
    device = vertices.device
    patch_tensor = torch.from_numpy(np.stack(patches)).to(device).permute(0, 3, 1, 2).float() / 255
    scale_t = torch.tensor(scales, dtype=torch.float32, device=device)
    offset_t = torch.tensor(offsets, dtype=torch.float32, device=device)
    in_patch = vertices[..., :2] * scale_t[:, None, None] + offset_t[:, None, :]
    usable = torch.ones(len(frames), dtype=torch.bool, device=device) if found is None else torch.from_numpy(np.asarray(found, dtype=bool)).to(device)
    return DrivingMouths(patch_tensor, in_patch, usable)


def _cut(frame: np.ndarray, scale: float, cx: float, cy: float, side: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """The ``side``² cut-out centred on (cx, cy) at ``scale`` cut-out pixels per frame pixel,
    with the scale and offset mapping frame pixels into it (x' = scale·x + offset). Shrinking
    averages over the pixels it merges (no aliasing from a large driving frame)."""
    if scale >= 1:
        offset = (side / 2 - scale * cx, side / 2 - scale * cy)
        affine = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
        return cv2.warpAffine(frame, affine, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), scale, offset
    width = int(np.ceil(side / scale))
    region = cv2.getRectSubPix(frame, (width, width), (cx, cy))
    exact = side / width
    return cv2.resize(region, (side, side), interpolation=cv2.INTER_AREA), exact, ((width / 2 - cx) * exact - 0.5, (width / 2 - cy) * exact - 0.5)
