"""Crop the source face for generation, and paste generated crops back into the full frame."""

from __future__ import annotations

import cv2
import numpy as np

from facereenact.face3d.regressor import crop_faces

#: Share of the crop side over which the pasted crop fades into the original frame.
FEATHER = 0.08


def reenactment_box(landmarks: np.ndarray, scale: float) -> np.ndarray:
    """A square box (4,) of side ``scale`` × the landmarks' extent, centred a little above their
    centre so the forehead and hair fit."""
    points = landmarks[:, :2]
    low, high = points.min(0), points.max(0)
    extent = float((high - low).max())
    centre = (low + high) / 2 - np.array([0.0, 0.08 * extent])
    half = scale * extent / 2
    return np.array([centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half])


def crop(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) crop of ``box``, black where the box leaves the image."""
    return crop_faces(image, box[None], size)[0]


class Paster:
    """Pastes (S, S, 3) crops of one box back into one background image with a feathered edge."""

    def __init__(self, background: np.ndarray, box: np.ndarray, size: int):
        height, width = background.shape[:2]
        left, top = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        right, bottom = min(int(np.ceil(box[2])) + 1, width), min(int(np.ceil(box[3])) + 1, height)
        self.background = background
        self.region = (slice(top, bottom), slice(left, right))
        scale = (box[2] - box[0]) / size
        # Crop pixel u sits at image x = box.left + (u + 0.5)·scale − 0.5 (see crop_faces).
        self.matrix = np.array([[scale, 0, box[0] + 0.5 * scale - 0.5 - left], [0, scale, box[1] + 0.5 * scale - 0.5 - top]])
        self.out_size = (right - left, bottom - top)
        ramp = np.clip(np.minimum(np.arange(size), np.arange(size)[::-1]) / (FEATHER * size), 0, 1).astype(np.float32)
        alpha = np.minimum.outer(ramp, ramp)
        self.alpha = np.ascontiguousarray(self._to_region(alpha))
        self.beta = np.ascontiguousarray(1 - self.alpha)

    def _to_region(self, picture: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(picture, self.matrix, self.out_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def paste(self, crop_rgb: np.ndarray) -> np.ndarray:
        """The full frame with ``crop_rgb`` (S, S, 3) uint8 blended into the box."""
        placed = self._to_region(crop_rgb)
        frame = self.background.copy()
        frame[self.region] = cv2.blendLinear(placed, np.ascontiguousarray(self.background[self.region]), self.alpha, self.beta)
        return frame
