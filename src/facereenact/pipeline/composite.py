"""Crop the source face for generation, and paste the result back into the full frame.

Pasting does not scale the generated crop up where it can avoid it: wherever the generation
stage sampled the source along its warp field, the field is carried to the photo's resolution
and the photo itself is resampled there, once (bicubic), so the output keeps the photo's
sharpness. The generated crop, scaled up, is used only where the stage made pixels up (filled
holes, a borrowed mouth), blended in over a pixel or two.
"""

from __future__ import annotations

import cv2
import numpy as np

from facereenact.face3d.regressor import crop_faces

#: Share of the crop side over which the pasted crop fades into the original frame.
FEATHER = 0.08
#: Motion smaller than this many photo pixels moves nothing, and motion is taken whole from the
#: second value on (a smooth ramp between): tracking noise around a still pose leaves the photo
#: exactly as it is.
DEADBAND = (0.25, 0.75)
#: The stage's own pixels (holes, a borrowed mouth) are widened by this many crop pixels and
#: their edge softened over as many again, so the seam with the sampled photo does not show.
MADE_MARGIN = 1.0
#: Rows of the box resampled at a time.
BAND_ROWS = 256


def _whole_rectangle(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), exclusive ends: the rectangle where ``alpha`` is 1, the crop
    taken whole (None when there is none, or it is not a rectangle)."""
    whole = alpha >= 1.0 - 1e-6
    rows, columns = np.flatnonzero(whole.any(1)), np.flatnonzero(whole.any(0))
    if not len(rows):
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1
    return (top, bottom, left, right) if whole[top:bottom, left:right].all() else None


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
        self._whole = _whole_rectangle(self.alpha)
        # The photo's (x, y) of the region's first BAND_ROWS rows; a band further down adds its
        # offset. The 2-D sampling maps are made band by band from it, so a huge photo needs
        # little memory.
        self._band_places = np.stack(np.meshgrid(np.arange(self.out_size[0], dtype=np.float32) + left, np.arange(min(BAND_ROWS, self.out_size[1]), dtype=np.float32) + top), -1)
        self._crop_grid = np.mgrid[0:size, 0:size][::-1].transpose(1, 2, 0).astype(np.float32)  # (S, S, 2): x, y
        self._scale = float(scale)

    def _to_region(self, picture: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(picture, self.matrix, self.out_size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def paste(self, crop_rgb: np.ndarray, field: np.ndarray | None = None, sampled: np.ndarray | None = None, onto: np.ndarray | None = None) -> np.ndarray:
        """The full frame with ``crop_rgb`` (S, S, 3) uint8 blended into the box. With the stage's
        ``field`` (S, S, 2, source-crop pixels) and ``sampled`` (S, S) weights, the photo is
        resampled along the field at full resolution wherever the stage sampled it.

        ``onto`` (H, W, 3), a frame other faces of the same photo were already pasted into, is
        changed only as far as this face moved or made pixels (the field's motion, faded in over
        the deadband): where two faces' boxes overlap, each keeps what it moved, without a seam
        at either box's edge."""
        if field is None or sampled is None:
            placed = self._to_region(crop_rgb)
            frame = (self.background if onto is None else onto).copy()
            frame[self.region] = cv2.blendLinear(placed, np.ascontiguousarray(frame[self.region]), self.alpha, 1 - self.alpha)
            return frame
        return self._resampled(crop_rgb, np.asarray(field, np.float32), np.asarray(sampled, np.float32), onto)

    def _resampled(self, crop_rgb: np.ndarray, field: np.ndarray, sampled: np.ndarray, onto: np.ndarray | None = None) -> np.ndarray:
        """The frame with the photo resampled along ``field`` where ``sampled`` says, and the crop
        scaled up elsewhere; only the part of the box where something moved or was made is
        touched (the rest is the photo, as the deadband leaves it, or ``onto``'s)."""
        frame = (self.background if onto is None else onto).copy()
        # The motion in photo pixels, through the deadband, at the crop's resolution (cheap);
        # scaled up to the photo's only where it is needed.
        motion = (field - self._crop_grid) * self._scale
        low, high = DEADBAND
        keep = np.clip((np.hypot(motion[..., 0], motion[..., 1]) - low) / (high - low), 0.0, 1.0)
        keep = keep * keep * (3 - 2 * keep)  # smoothstep: the motion fades in without a kink
        motion *= keep[..., None]
        # Where nothing moved the photo is the answer, even in a hole (a surface the source's fit
        # hides at a silhouette, by a hair).
        made: np.ndarray = (1 - sampled) * (keep > 0)
        touched = keep > 0
        # Onto another face's frame: this face's pixels weigh as far as they moved or were made.
        influence = np.maximum(keep, made).astype(np.float32) if onto is not None else None
        bounds = self._region_bounds(touched, reach=3 + MADE_MARGIN * 3)  # widened by the interpolation's reach
        if bounds is None:
            return frame
        x0, y0, x1, y1 = bounds
        made_box = None
        if made.any():
            spread = max(1, round(MADE_MARGIN))
            made = cv2.dilate(made, np.ones((2 * spread + 1, 2 * spread + 1), np.uint8))
            made = cv2.GaussianBlur(made, (0, 0), MADE_MARGIN)
            made_box = self._region_bounds(made > 0, reach=2)
        region = frame[self.region]
        for top in range(y0, y1, BAND_ROWS):  # bands bound the temporaries of a huge photo
            part = (slice(top, min(top + BAND_ROWS, y1)), slice(x0, x1))
            region[part] = self._resampled_part(part, region[part], crop_rgb, motion, made, made_box, influence)
        return frame

    def _resampled_part(
        self,
        part: tuple[slice, slice],
        original: np.ndarray,
        crop_rgb: np.ndarray,
        motion: np.ndarray,
        made: np.ndarray,
        made_box: tuple[int, int, int, int] | None,
        influence: np.ndarray | None = None,
    ) -> np.ndarray:
        """One rectangle of the region: the photo resampled along the motion, the crop where the
        stage made the pixels (inside ``made_box``, region pixels), faded into ``original`` at the
        box's edge."""
        rows, columns = part
        # The motion scaled up, then turned in place into the photo pixel each region pixel samples.
        places = self._scaled_up(motion, rows, columns, cv2.BORDER_REPLICATE)
        cv2.add(places, self._band_places[: rows.stop - rows.start, columns], dst=places)
        cv2.add(places, (0.0, float(rows.start)), dst=places)  # the band's first row
        sharp = cv2.remap(self.background, places, None, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        if made_box is not None:  # only where the stage made pixels: a mouth, a hole
            left, top, right, bottom = made_box
            inner_rows = slice(max(top, rows.start), min(bottom, rows.stop))
            inner_columns = slice(max(left, columns.start), min(right, columns.stop))
            if inner_rows.start < inner_rows.stop and inner_columns.start < inner_columns.stop:
                weight = self._scaled_up(1 - made, inner_rows, inner_columns, cv2.BORDER_REPLICATE)
                placed = self._scaled_up(crop_rgb, inner_rows, inner_columns, cv2.BORDER_CONSTANT)
                at = (slice(inner_rows.start - rows.start, inner_rows.stop - rows.start), slice(inner_columns.start - columns.start, inner_columns.stop - columns.start))
                sharp[at] = cv2.blendLinear(np.ascontiguousarray(sharp[at]), placed, weight, 1 - weight)
        if influence is not None:
            alpha = self.alpha[part] * self._scaled_up(influence, rows, columns, cv2.BORDER_CONSTANT)
            return cv2.blendLinear(sharp, np.ascontiguousarray(original), alpha, 1 - alpha)
        return self._feathered(sharp, original, part)

    def _feathered(self, sharp: np.ndarray, original: np.ndarray, part: tuple[slice, slice]) -> np.ndarray:
        """``sharp`` faded into ``original`` over the box's feathered edge: blended only in that
        ring, taken as it is inside (where the blend would give it anyway)."""
        rows, columns = part
        height, width = sharp.shape[:2]
        alpha = self.alpha[part]
        inside = None
        if self._whole is not None:
            r0, r1, c0, c1 = self._whole
            top, bottom = min(max(r0 - rows.start, 0), height), min(max(r1 - rows.start, 0), height)
            left, right = min(max(c0 - columns.start, 0), width), min(max(c1 - columns.start, 0), width)
            if top < bottom and left < right:
                inside = (top, bottom, left, right)
        if inside is None:
            return cv2.blendLinear(sharp, np.ascontiguousarray(original), alpha, 1 - alpha)
        top, bottom, left, right = inside
        ring = [(slice(0, top), slice(None)), (slice(bottom, None), slice(None)), (slice(top, bottom), slice(0, left)), (slice(top, bottom), slice(right, None))]
        for strip in ring:
            weight = np.ascontiguousarray(alpha[strip])
            if weight.size:
                sharp[strip] = cv2.blendLinear(np.ascontiguousarray(sharp[strip]), np.ascontiguousarray(original[strip]), weight, 1 - weight)
        return sharp

    def _scaled_up(self, picture: np.ndarray, rows: slice, columns: slice, border: int) -> np.ndarray:
        """Crop-resolution ``picture``, bilinearly scaled onto the region's ``rows`` × ``columns``."""
        to_part = self.matrix - np.array([[0, 0, columns.start], [0, 0, rows.start]])
        return cv2.warpAffine(picture, to_part, (columns.stop - columns.start, rows.stop - rows.start), flags=cv2.INTER_LINEAR, borderMode=border)

    def _region_bounds(self, mask: np.ndarray, reach: float) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) in region pixels of a crop-resolution ``mask``'s pixels,
        widened by ``reach`` crop pixels; None when it has none in the region."""
        rows, columns = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if not len(rows):
            return None
        (x0, y0), (x1, y1) = self._to_region_point(columns[0] - reach, rows[0] - reach), self._to_region_point(columns[-1] + reach, rows[-1] + reach)
        width, height = self.out_size
        left, top, right, bottom = max(int(x0), 0), max(int(y0), 0), min(int(np.ceil(x1)) + 1, width), min(int(np.ceil(y1)) + 1, height)
        return (left, top, right, bottom) if right > left and bottom > top else None

    def _to_region_point(self, u: float, v: float) -> tuple[float, float]:
        """A crop pixel's place in region pixels."""
        return self.matrix[0, 0] * u + self.matrix[0, 2], self.matrix[1, 1] * v + self.matrix[1, 2]
