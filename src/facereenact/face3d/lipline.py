"""The lips' meeting line moved to where the picture shows it: a per-face offset of the mesh.

Why: the grid model's lips meet higher than most people's. On the 8 portraits and the first
frames of the 81 clips, the edges of the fitted mesh's strip of triangles bridging the lips lay
a median 0.06 inter-ocular distances (about 4 pixels of a 256² crop) above MediaPipe's inner-lip
contours. That strip is where a mouth opens, so an opening cut through the photo's upper lip and
left the photo's own lip line in the lower lip. The expression fit cannot move it: it places the
outer lip contour, and the line between the lips sits where the model's mean face has it.

The offset moves the strip's upper edge onto the picture's upper inner-lip contour and its lower
edge onto the lower one, each fading to nothing at its outer lip contour and past the mouth's
corners. A closed mouth's strip then has no area: an opening shows the driver's mouth (or a
cavity) between the photo's whole lips, never the photo's lips stretched across the gap. It is
made in the model's own frame, once per face, and added to that face's vertices in every target,
so it travels with the lips as they part, and a target equal to the source is still the source.

A driving frame's offset measures what the model leaves of the driver's inner lips (a smile
lifting the upper lip off the teeth, lips pressed thin): in relative motion its change since the
reference frame moves the source's lips too (:meth:`LipLineOffsets.followed`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from facereenact.face3d.expression_basis import lip_line
from facereenact.face3d.morphable import MorphableModel, project
from facereenact.face3d.params import FaceParams

#: MediaPipe's inner-lip contours between the inner corners (78 and 308, left out: there the
#: lips always meet, while the strip's ends keep a row of the grid between its edges).
UPPER_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
#: MediaPipe's eye corners, for the inter-ocular distance.
EYE_CORNERS = ((33, 133), (362, 263))
#: A measured shift beyond this many inter-ocular distances is a misread (another face, a hand
#: over the mouth), not the lips: the face is left as fitted.
MAX_SHIFT = 0.15
#: The offset fades to nothing over this share of the mouth's width past each corner.
CORNER_FADE = 0.15
#: An edge moves towards its outer lip contour at most this share of the lip's thickness, so that
#: the fade across the lip keeps every vertex on its side of its neighbours.
KEEP_ORDER = 0.8
#: Samples of the two lines across the mouth.
SAMPLES = 9
#: The shares of a face's offset tried, the largest first, when the whole would turn a triangle over.
UNTURNED_SHARES = (1.0, 0.75, 0.5, 0.25, 0.0)


class LipLineOffsets:
    """Per model: the strip of triangles bridging the lips, which side of the lips each vertex is
    on, and how far it follows its side's edge of the strip (1 on the strip, fading to 0 at the
    outer lip contour and past the corners), all from the mean face."""

    def __init__(self, model: MorphableModel):
        mean = model.mean.cpu().double().numpy()
        landmarks = model.landmark_mean.cpu().double().numpy()
        strip = np.unique(model.triangles[model.mouth_gap].cpu().numpy())
        n = model.n_vertices
        self.strip = torch.from_numpy(strip)
        self.available = len(strip) > 0
        self.follow, self.rise_limit, self.drop_limit = torch.zeros(n), torch.zeros(n), torch.zeros(n)
        self.moving, self.moving_lips, self.facing = torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.bool), torch.zeros(1, 0)
        x, y = mean[:, 0], mean[:, 1]
        line = lip_line(landmarks)
        self.upper_side = torch.from_numpy(y > np.interp(x, line[:, 0], line[:, 1]))
        self.strip_upper = self.upper_side[self.strip].numpy()
        if not self.available:
            return
        upper = self.strip_upper
        top = _curve(x[strip][upper], y[strip][upper], x)  # the strip's upper edge at each x
        bottom = _curve(x[strip][~upper], y[strip][~upper], x)
        outer = landmarks[:, :2]
        upper_outer = _curve(outer[48:55, 0], outer[48:55, 1], x)
        lower_lip = [54, 55, 56, 57, 58, 59, 48]
        lower_outer = _curve(outer[lower_lip, 0], outer[lower_lip, 1], x)
        shortest = 0.1 * (upper_outer - lower_outer).max()  # a floor for the lips' thickness
        above = np.maximum(upper_outer - top, shortest)
        below = np.maximum(bottom - lower_outer, shortest)
        vertical = np.where(y > top, 1 - (y - top) / above, np.where(y < bottom, 1 - (bottom - y) / below, 1.0))
        beyond = np.maximum(x[strip].min() - x, x - x[strip].max()).clip(min=0)
        horizontal = 1 - beyond / (CORNER_FADE * np.ptp(x[strip]))
        self.follow = torch.from_numpy(np.clip(vertical, 0, 1) * np.clip(horizontal, 0, 1)).float()
        # The triangles an offset can move, and whether each bridges the lips.
        moving = (self.follow[model.triangles.cpu()] > 0).any(1)
        self.moving = model.triangles.cpu()[moving]
        self.moving_lips = ~model.mouth_gap.cpu()[moving]
        self.facing = _front_areas(model.mean.cpu()[None], self.moving).sign()  # (1, F') as the mean face's
        # Model units (y up): the upper edge rises at most this far, the lower edge drops at most.
        self.rise_limit = torch.from_numpy(KEEP_ORDER * above).float()
        self.drop_limit = torch.from_numpy(KEEP_ORDER * below).float()

    def offsets(self, model: MorphableModel, params: FaceParams, points: Sequence[np.ndarray | None]) -> torch.Tensor:
        """(B, N, 3) model-space offsets for faces ``params`` (B,) seen with MediaPipe's
        landmarks ``points`` (478, ≥2 picture pixels, or None where unread: no offset)."""
        return self.measured_offsets(model, params, points)[0]

    def measured_offsets(self, model: MorphableModel, params: FaceParams, points: Sequence[np.ndarray | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`offsets`, and (B,) bool: which faces' lips were measured (the others' are zero)."""
        if not self.available or all(face is None for face in points):
            return torch.zeros(len(params), model.n_vertices, 3, device=params.scale.device), torch.zeros(len(params), dtype=torch.bool)
        surface = model.model_space(params.shape, params.expression, params.blendshapes)
        whole, measured = self._whole(params, surface, points)
        return self._unturned(surface, whole), measured

    def whole_offsets(self, model: MorphableModel, params: FaceParams, points: Sequence[np.ndarray | None]) -> torch.Tensor:
        """:meth:`offsets` before they are held back where they would turn a triangle over."""
        if not self.available or all(face is None for face in points):
            return torch.zeros(len(params), model.n_vertices, 3, device=params.scale.device)
        return self._whole(params, model.model_space(params.shape, params.expression, params.blendshapes), points)[0]

    def followed(
        self,
        model: MorphableModel,
        targets: FaceParams,
        offsets: torch.Tensor,
        driving: tuple[torch.Tensor, torch.Tensor],
        reference: FaceParams,
        reference_points: np.ndarray | None,
        scale: float = 1.0,
    ) -> torch.Tensor:
        """(B, N, 3) offsets of the target faces ``targets`` (B,): the sources' own ``offsets``
        (1 or B, N, 3) plus ``scale`` times how far the driver's lip line has moved off its
        model since the ``reference`` face (batch 1, seen with ``reference_points``).
        ``driving`` is :meth:`measured_offsets` of the driving faces.

        Why: the model's lips follow the outer lip contour, and the picture's inner lips move
        further: a smile lifts the upper lip off the teeth, pressed lips thin. The driver's
        offsets measure what the model leaves, frame by frame; their change since the reference
        is the driver's motion, as for every other coefficient in relative motion. It is held
        back where it would turn a triangle over; a frame whose lips were not measured (or a
        reference that was not) carries none."""
        offsets = offsets.expand(len(targets), -1, -1)
        own, measured = driving
        at_rest, rest_measured = self.measured_offsets(model, reference, [reference_points])
        if not bool(rest_measured.all()) or not bool(measured.any()):
            return offsets
        change = torch.where(measured.to(own.device)[:, None, None], own - at_rest, torch.zeros_like(own)) * scale
        surface = model.model_space(targets.shape, targets.expression, targets.blendshapes) + offsets
        return offsets + self._unturned(surface, change)

    def _whole(self, params: FaceParams, surface: torch.Tensor, points: Sequence[np.ndarray | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`whole_offsets` of faces whose unposed vertices are ``surface`` (B, N, 3), and
        which faces were measured."""
        device = params.scale.device
        result = torch.zeros_like(surface)
        measured = torch.zeros(len(surface), dtype=torch.bool)
        posed = project(surface, params)
        strips = posed[:, self.strip, :2].cpu().double().numpy()
        across = posed[..., 0].cpu().double().numpy()
        # Picture pixels (down) per model unit (up) along the model's vertical axis.
        vertical_scale = (params.scale * params.rotation[:, 1, 1]).cpu().double().numpy()
        follow, upper_side = self.follow.to(device), self.upper_side.to(device)
        rise, drop = self.rise_limit.to(device), self.drop_limit.to(device)
        for i, face in enumerate(points):
            if face is None or abs(vertical_scale[i]) < 1e-9:
                continue
            edges = edge_shifts(strips[i], self.strip_upper, np.asarray(face, np.float64)[:, :2])
            if edges is None:
                continue
            xs, upper_shift, lower_shift = edges
            upper_edge = torch.minimum(_to_model(across[i], xs, upper_shift, vertical_scale[i]).to(device), rise)
            lower_edge = torch.maximum(_to_model(across[i], xs, lower_shift, vertical_scale[i]).to(device), -drop)
            # Where a limit held one edge back, the other does not pass it: the strip as this
            # face has it (its lips may stand apart, or already cross) closes at most to nothing.
            height = self._strip_height(surface[i].cpu().double().numpy())
            room = torch.from_numpy(height).float().to(device)
            upper_edge = torch.maximum(upper_edge, lower_edge - room)
            lower_edge = torch.minimum(lower_edge, upper_edge + room)
            result[i, :, 1] = follow * torch.where(upper_side, upper_edge, lower_edge)
            measured[i] = True
        return result, measured

    def _strip_height(self, surface: np.ndarray) -> np.ndarray:
        """(N,) how far the strip's upper edge stands above its lower edge in the unposed face
        ``surface`` (N, 3), at each vertex's x (model units; 0 where the lips cross)."""
        strip, upper = self.strip.numpy(), self.strip_upper
        x, y = surface[strip, 0], surface[strip, 1]
        height = _curve(x[upper], y[upper], surface[:, 0]) - _curve(x[~upper], y[~upper], surface[:, 0])
        return np.maximum(height, 0.0)

    def _unturned(self, surface: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """``offsets`` of the unposed faces ``surface`` (B, N, 3) scaled down face by face, to
        the largest of UNTURNED_SHARES at which they turn over no triangle of the face outside
        the strip bridging the lips that faced the way the mean face's does: a safety net for
        the fades, which are worked out on the mean face. (The strip's own triangles may close,
        or cross a little as a fit's lips sometimes do: then they show nothing of the source.)"""
        device = offsets.device
        triangles, lips, facing = self.moving.to(device), self.moving_lips.to(device), self.facing.to(device)
        was = _front_areas(surface, triangles) * facing
        shares = torch.ones(len(offsets), device=device)
        pending = torch.arange(len(offsets), device=device)
        for share in UNTURNED_SHARES:
            now = _front_areas(surface[pending] + share * offsets[pending], triangles) * facing
            turned = ((was[pending] > 0) & (now <= 0) & lips).any(1)
            shares[pending] = share
            pending = pending[turned]
            if len(pending) == 0:
                break
        return offsets * shares[:, None, None]


def _front_areas(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(B, F) twice the signed area of each triangle of faces ``vertices`` (B, N, 3), seen from
    the front (x, y)."""
    corners = vertices[:, triangles, :2]
    a, b = corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _to_model(across: np.ndarray, xs: np.ndarray, shift: np.ndarray, vertical_scale: float) -> torch.Tensor:
    """A shift down the picture (pixels, at picture x ``xs``) as a model-space shift up (model
    units) of vertices at picture x ``across``."""
    return torch.from_numpy(-np.interp(across, xs, shift) / vertical_scale).float()


def _curve(xs: np.ndarray, ys: np.ndarray, at: np.ndarray) -> np.ndarray:
    """A polyline through points (xs, ys), read at ``at`` (held flat past its ends)."""
    order = np.argsort(xs)
    return np.interp(at, xs[order], ys[order])


def edge_shifts(strip: np.ndarray, upper: np.ndarray, points: np.ndarray, limit: float = MAX_SHIFT) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """How far down (picture pixels) the upper and lower edges of the strip ``strip`` (S, 2
    picture pixels; ``upper`` marks its upper edge) must move to lie on MediaPipe's upper and
    lower inner-lip contours (``points``: 478, 2), at SAMPLES places across the mouth (their x,
    then the two shifts); None when a shift is beyond ``limit`` inter-ocular distances, too large
    to be the lips'."""
    eyes = [points[list(pair)].mean(0) for pair in EYE_CORNERS]
    eye_distance = float(np.linalg.norm(eyes[0] - eyes[1]))
    upper_inner, lower_inner = points[list(UPPER_INNER)], points[list(LOWER_INNER)]
    left, right = sorted((upper_inner[0, 0], upper_inner[-1, 0]))
    if eye_distance <= 0 or right - left < 1:
        return None
    xs = np.linspace(left, right, SAMPLES)
    upper_shift = _curve(upper_inner[:, 0], upper_inner[:, 1], xs) - _curve(strip[upper, 0], strip[upper, 1], xs)
    lower_shift = _curve(lower_inner[:, 0], lower_inner[:, 1], xs) - _curve(strip[~upper, 0], strip[~upper, 1], xs)
    if max(np.abs(upper_shift).max(), np.abs(lower_shift).max()) > limit * eye_distance:
        return None
    return xs, upper_shift, lower_shift
