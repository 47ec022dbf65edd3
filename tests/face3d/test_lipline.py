"""The lips' meeting line moved onto the picture's: a per-face offset of the mesh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.expression_basis import lip_line
from facereenact.face3d.lipline import EYE_CORNERS, LOWER_INNER, MAX_SHIFT, UPPER_INNER, LipLineOffsets
from facereenact.face3d.params import FaceParams, angles_to_rotation

EYE_DISTANCE = 60.0  # picture pixels


def _face(model, pitch: float = 5.0, yaw: float = 10.0) -> FaceParams:  # type: ignore[no-untyped-def]
    landmarks = model.landmark_mean.double().numpy()
    model_eye_distance = np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0))
    return FaceParams(
        rotation=angles_to_rotation(torch.tensor([[pitch, yaw, 0.0]])),
        scale=torch.tensor([EYE_DISTANCE / model_eye_distance], dtype=torch.float32),
        translation=torch.tensor([[200.0, 220.0]]),
        shape=torch.zeros(1, 40),
        expression=torch.zeros(1, 10),
    )


def _edges(model, vertices: torch.Tensor, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Where the upper and lower edges of the strip of triangles bridging the lips run, at
    picture x ``xs``."""
    strip = np.unique(model.triangles[model.mouth_gap].numpy())
    mean = model.mean[strip].double().numpy()
    line = lip_line(model.landmark_mean.double().numpy())
    upper = mean[:, 1] > np.interp(mean[:, 0], line[:, 0], line[:, 1])
    points = vertices[0, strip, :2].double().numpy()

    def edge(which: np.ndarray) -> np.ndarray:
        order = np.argsort(points[which, 0])
        return np.interp(xs, points[which, 0][order], points[which, 1][order])

    return edge(upper), edge(~upper)


def _picture(model, params: FaceParams, upper_shift: float, lower_shift: float) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """MediaPipe-like landmarks of a mouth whose inner lips run ``upper_shift`` and
    ``lower_shift`` pixels below the mesh's strip edges, and the x where the test reads the
    lines (the middle of the mouth)."""
    landmarks = model.landmarks(params)[0].double().numpy()
    points = np.zeros((478, 2))
    for (a, b), (left, right) in zip(EYE_CORNERS, ((36, 39), (42, 45)), strict=True):
        points[a], points[b] = landmarks[left, :2], landmarks[right, :2]
    corners = landmarks[[60, 64], 0]
    xs = np.linspace(corners[0], corners[1], len(UPPER_INNER))
    top, bottom = _edges(model, model.vertices(params), xs)
    points[list(UPPER_INNER)] = np.stack([xs, top + upper_shift], 1)
    points[list(LOWER_INNER)] = np.stack([xs, bottom + lower_shift], 1)
    middle = np.linspace(corners[0], corners[1], 9)[2:-2]
    return points, middle


@pytest.mark.parametrize(("upper_shift", "lower_shift"), [(3.0, 3.0), (-2.0, -2.0), (2.5, 0.5), (-1.0, 2.0)])
def test_the_mesh_lips_part_where_the_pictures_do(model, upper_shift: float, lower_shift: float) -> None:  # type: ignore[no-untyped-def]
    params = _face(model)
    points, middle = _picture(model, params, upper_shift, lower_shift)
    top, bottom = _edges(model, model.vertices(params), middle)
    offsets = LipLineOffsets(model).offsets(model, params, [points])
    moved_top, moved_bottom = _edges(model, model.vertices(params, offsets), middle)
    # The grid's strip zigzags between rows (2.7 pixels apart here); the offset is smooth across
    # the mouth, so the edges land on the picture's lines on average, within a pixel everywhere.
    for missed in (top + upper_shift - moved_top, bottom + lower_shift - moved_bottom):
        assert abs(missed.mean()) < 0.3 and np.abs(missed).max() < 1.0, missed


def test_only_the_lips_move(model) -> None:  # type: ignore[no-untyped-def]
    """Nothing farther from the mouth than its width moves, and the outer lip contour (which
    the expression fit places) stays where it was."""
    params = _face(model)
    points, _ = _picture(model, params, 3.0, 2.0)
    offsets = LipLineOffsets(model).offsets(model, params, [points])[0].numpy()
    assert np.abs(offsets).max() > 0
    mean = model.mean.double().numpy()
    landmarks = model.landmark_mean.double().numpy()
    centre, width = landmarks[48:60].mean(0), np.ptp(landmarks[48:60, 0])
    far = np.linalg.norm(mean[:, :2] - centre[:2], axis=1) > width
    assert np.abs(offsets[far]).max() == 0
    outer_top = landmarks[[50, 51, 52], 1].mean()
    above_lips = (mean[:, 1] > outer_top) & (np.abs(mean[:, 0] - centre[0]) < width / 4)
    assert np.abs(offsets[above_lips]).max() == 0


def test_no_offset_without_a_reading_or_for_a_misread(model) -> None:  # type: ignore[no-untyped-def]
    params = FaceParams.cat([_face(model), _face(model)])
    points, _ = _picture(model, params[0], 0.0, MAX_SHIFT * EYE_DISTANCE * 1.5)
    offsets = LipLineOffsets(model).offsets(model, params, [None, points])
    assert torch.count_nonzero(offsets) == 0


@settings(max_examples=20, deadline=None)
@given(
    upper=st.floats(-0.95, 0.95),
    opening=st.floats(0.0, 0.5),
    pitch=st.floats(-15.0, 15.0),
    yaw=st.floats(-30.0, 30.0),
)
def test_the_lips_vertices_keep_their_order(model, upper: float, opening: float, pitch: float, yaw: float) -> None:  # type: ignore[no-untyped-def]
    """However far the lips' edges move (up to a misread), no triangle outside the strip
    bridging the lips turns over (the strip's own may close: lips that meet)."""
    params = _face(model, pitch, yaw)
    shift = upper * MAX_SHIFT * EYE_DISTANCE
    points, _ = _picture(model, params, shift, min(shift + opening * EYE_DISTANCE, MAX_SHIFT * EYE_DISTANCE))
    offsets = LipLineOffsets(model).offsets(model, params, [points])
    before, after = _signed_areas(model, model.mean), _signed_areas(model, model.mean + offsets[0])
    lips = ~model.mouth_gap.numpy()
    assert (after[lips] * np.sign(before[lips]) > 0).all()


def _signed_areas(model, vertices: torch.Tensor) -> np.ndarray:  # type: ignore[no-untyped-def]
    corners = vertices.double().numpy()[model.triangles.numpy()][..., :2]
    a, b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]


def test_no_triangle_of_a_fitted_face_turns_over(fitter, portraits) -> None:  # type: ignore[no-untyped-def]
    """On real fits (a face's own identity and expression, which the fades worked out on the
    mean face do not know), the offset is held back as far as it must be for no triangle
    outside the strip to turn over, and still moves most faces' lips."""
    model = fitter.model
    corrected = 0
    for picture in portraits.values():
        fit = fitter.fit_one(picture)
        offsets = LipLineOffsets(model).offsets(model, fit.params, [fit.points])
        surface = model.model_space(fit.params.shape, fit.params.expression, fit.params.blendshapes)
        facing = np.sign(_signed_areas(model, model.mean))
        before, after = _signed_areas(model, surface[0]) * facing, _signed_areas(model, (surface + offsets)[0]) * facing
        lips = ~model.mouth_gap.numpy()
        assert not ((before > 0) & (after <= 0) & lips).any()
        corrected += int(torch.count_nonzero(offsets) > 0)
    assert corrected >= len(portraits) * 3 // 4


def _followed(model, source: FaceParams, source_shifts: tuple[float, float], reference_shifts: tuple[float, float] | None, driving_shifts: list[tuple[float, float] | None], scale: float = 1.0) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """The target offsets for a driver (seen straight on, the reference and each frame shifting
    its inner lips off the mesh by the given pixels, None: unread) moving a source's lips."""
    lip_line = LipLineOffsets(model)
    driver = _face(model, pitch=0.0, yaw=-10.0)
    own = lip_line.offsets(model, source, [_picture(model, source, *source_shifts)[0]])
    frames = FaceParams.cat([driver] * len(driving_shifts))
    seen = lip_line.measured_offsets(model, frames, [None if s is None else _picture(model, driver, *s)[0] for s in driving_shifts])
    reference_points = None if reference_shifts is None else _picture(model, driver, *reference_shifts)[0]
    return lip_line.followed(model, FaceParams.cat([source] * len(driving_shifts)), own, seen, driver, reference_points, scale)


def test_the_drivers_lips_move_the_sources_as_far_as_they_moved_from_the_reference(model) -> None:  # type: ignore[no-untyped-def]
    """The driver's inner lips, where the model leaves them, moved 2 pixels up and 3 down
    since its reference: the source's move as far, from where its own picture has them."""
    source = _face(model)
    offsets = _followed(model, source, (1.0, -1.0), (0.5, 0.5), [(0.5, 0.5), (-1.5, 3.5)])
    _, middle = _picture(model, source, 0.0, 0.0)
    still_top, still_bottom = _edges(model, model.vertices(source, offsets[:1]), middle)
    moved_top, moved_bottom = _edges(model, model.vertices(source, offsets[1:]), middle)
    # The source is pitched 5° where the driver is not: its picture shows 0.4 % less of a move.
    assert abs((moved_top - still_top).mean() + 2.0) < 0.2 and abs((moved_bottom - still_bottom).mean() - 3.0) < 0.2


def test_a_driver_at_its_reference_leaves_the_source_as_it_is(model) -> None:  # type: ignore[no-untyped-def]
    source = _face(model)
    own = LipLineOffsets(model).offsets(model, source, [_picture(model, source, 1.0, -1.0)[0]])
    assert torch.equal(_followed(model, source, (1.0, -1.0), (0.5, 2.0), [(0.5, 2.0)]), own)


@pytest.mark.parametrize(("reference", "frame", "scale"), [(None, (-1.5, 3.5), 1.0), ((0.5, 0.5), None, 1.0), ((0.5, 0.5), (-1.5, 3.5), 0.0)])
def test_unread_lips_or_no_expression_carry_nothing(model, reference, frame, scale: float) -> None:  # type: ignore[no-untyped-def]
    source = _face(model)
    own = LipLineOffsets(model).offsets(model, source, [_picture(model, source, 1.0, -1.0)[0]])
    assert torch.equal(_followed(model, source, (1.0, -1.0), reference, [frame], scale), own)
