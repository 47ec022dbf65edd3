"""Gaze in the picture: each iris slides inside its eye opening, the white of the eye giving way.

The warp field is changed only inside each eye's outline: the iris disc moves whole by the
shift the model gives its centre, and the shift fades to none at the lids, so the white is
squeezed on one side and stretched on the other while lids and lashes stay where the face puts
them. A closed or hidden eye (an outline with no inside) slides nothing.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facereenact.stage import IrisShifts

#: Shifts smaller than this (crop pixels) are left out: nothing a viewer could see.
LEAST_SHIFT = 0.05
#: An eye open less than this (its outline's area over its width, in crop pixels) is closed.
LEAST_OPENING = 1.0
#: Outline corners are placed with this many fractional bits (OpenCV's sub-pixel polygons).
SUBPIXEL_BITS = 4


def slide_irises(field: torch.Tensor, irises: IrisShifts) -> torch.Tensor:
    """The backward warp ``field`` (B, 2, S, S) in source-crop pixels, with every iris slid by
    its shift: a target pixel inside an eye takes what the field gave the pixel it came from.
    A field on the CPU is changed in place (only the eyes' patches are touched)."""
    shifts = irises.shifts.detach().cpu().numpy()
    moving = np.linalg.norm(shifts, axis=-1) >= LEAST_SHIFT  # (B, 2)
    if not moving.any():
        return field
    centres, radii = irises.centres.detach().cpu().numpy(), irises.radii.detach().cpu().numpy()
    outlines = irises.outlines.detach().cpu().numpy()
    size = field.shape[-1]
    out = field.detach().cpu().numpy()  # the field itself on the CPU
    for b, eye in zip(*np.nonzero(moving), strict=True):
        if _opening(outlines[b, eye]) < LEAST_OPENING:
            continue
        low = np.clip(np.floor(np.minimum(outlines[b, eye].min(0), centres[b, eye] - radii[b, eye])) - 2, 0, size).astype(int)
        high = np.clip(np.ceil(np.maximum(outlines[b, eye].max(0), centres[b, eye] + radii[b, eye])) + 3, 0, size).astype(int)
        if (high - low).min() < 2:
            continue
        rows, columns = slice(low[1], high[1]), slice(low[0], high[0])
        ys, xs = np.mgrid[rows, columns].astype(np.float32)
        weight = _slide_weight(outlines[b, eye], centres[b, eye], float(radii[b, eye]), xs, ys)
        if not weight.any():
            continue
        from_x = xs - weight * shifts[b, eye, 0]
        from_y = ys - weight * shifts[b, eye, 1]
        for channel in range(2):
            out[b, channel, rows, columns] = cv2.remap(out[b, channel], from_x, from_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return field if field.device.type == "cpu" else torch.from_numpy(out).to(field)


def _slide_weight(outline: np.ndarray, centre: np.ndarray, radius: float, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """How much of the shift each pixel of a patch (crop coordinates ``xs``, ``ys``, (H, W))
    takes: 1 on the iris disc inside the outline, fading to 0 at the outline (by the ratio of
    the distances to the outline and to the disc), 0 outside it."""
    inside = np.zeros(xs.shape, np.uint8)
    corner = np.array([xs[0, 0], ys[0, 0]])
    cv2.fillPoly(inside, [np.round((outline - corner) * (1 << SUBPIXEL_BITS)).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    if not inside.any():
        return np.zeros(xs.shape, np.float32)
    to_lid = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # 1 next to the outline
    to_disc = np.maximum(np.hypot(xs - centre[0], ys - centre[1]) - radius, 0.0)
    weight = to_lid / np.maximum(to_lid + to_disc, 1e-6)
    return weight.astype(np.float32)


def _opening(outline: np.ndarray) -> float:
    """How far an eye is open: its outline's area over its width (crop pixels)."""
    x, y = outline[:, 0], outline[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    return area / max(float(np.ptp(x)), 1e-6)
