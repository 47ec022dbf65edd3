"""Motion transfer modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.face3d.blendshapes import CHANNEL_NAMES, N_BLENDSHAPES, Region, region_mask
from facereenact.face3d.params import MODEL_FACE_WIDTH, FaceParams, angles_to_rotation
from facereenact.face3d.transfer import (
    BROW_GAIN,
    LIP_GAP_NOISE,
    TRAVEL_KNEE,
    TRAVEL_REACH,
    MotionMode,
    MotionOptions,
    follow_lips,
    keep_lips_apart,
    lip_gap,
    neutral_reference,
    rotation_power,
    target_params,
    within_reach,
)


def _params(yaw: float, tx: float, scale: float, expression: float, shape: float = 0.0) -> FaceParams:
    return FaceParams(
        rotation=angles_to_rotation(torch.tensor([[yaw, 0.0, 0.0]])),
        scale=torch.tensor([scale]),
        translation=torch.tensor([[tx, 50.0]]),
        shape=torch.full((1, 40), shape),
        expression=torch.full((1, 10), expression),
    )


SOURCE = _params(yaw=10, tx=100, scale=2.0, expression=0.5, shape=3.0)
REFERENCE = _params(yaw=-20, tx=300, scale=1.0, expression=0.0, shape=-1.0)
DRIVING = FaceParams.cat([_params(yaw=-20, tx=300, scale=1.0, expression=0.0), _params(yaw=0, tx=310, scale=1.1, expression=1.0)])


def test_relative_adds_the_driving_change_to_the_source() -> None:
    out = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(MotionMode.relative))
    angles = out.angles()
    assert torch.allclose(angles[:, 0], torch.tensor([10.0, 30.0]), atol=1e-4)
    assert torch.allclose(out.expression[:, 0], torch.tensor([0.5, 1.5]))
    assert torch.allclose(out.translation[:, 0], torch.tensor([100.0, 120.0]))  # +10 px × size ratio 2
    assert torch.allclose(out.scale, torch.tensor([2.0, 2.2]))
    assert torch.equal(out.shape, SOURCE.shape.expand(2, -1)), "identity is always the source's"


def test_absolute_takes_orientation_and_expression_as_they_are() -> None:
    out = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(MotionMode.absolute))
    assert torch.allclose(out.angles()[:, 0], torch.tensor([-20.0, 0.0]), atol=1e-4)
    assert torch.allclose(out.expression[:, 0], torch.tensor([0.0, 1.0]))
    assert torch.equal(out.shape, SOURCE.shape.expand(2, -1))


def test_expression_only_and_pose_only() -> None:
    expression_only = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(transfer_pose=False))
    assert torch.allclose(expression_only.angles()[:, 0], torch.tensor([10.0, 10.0]), atol=1e-4)
    assert torch.allclose(expression_only.expression[:, 0], torch.tensor([0.5, 1.5]))
    pose_only = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(transfer_expression=False))
    assert torch.allclose(pose_only.expression[:, 0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(pose_only.angles()[:, 0], torch.tensor([10.0, 30.0]), atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), spread=st.floats(0.5, 3.0))
def test_lips_never_pass_through_each_other(fitter, seed: int, spread: float) -> None:  # type: ignore[no-untyped-def]
    """Crossed lips are brought back to touching by the smallest change of the expression;
    faces whose lips do not cross are left exactly as they were."""
    model, spreads = fitter.model, fitter.coefficient_scale.cpu()  # the regressor's spread of each coefficient
    generator = torch.Generator().manual_seed(seed)
    batch = 8
    params = FaceParams(
        rotation=torch.eye(3).expand(batch, 3, 3),
        scale=torch.ones(batch),
        translation=torch.zeros(batch, 2),
        shape=torch.randn(batch, 40, generator=generator) * spreads[:40],
        expression=torch.randn(batch, 10, generator=generator) * spreads[40:50] * spread,
    )
    before = lip_gap(model, params.shape, params.expression)
    kept = keep_lips_apart(model, params)
    after = lip_gap(model, kept.shape, kept.expression)
    crossed = before < 0
    face_size = float(model.mean[:, 1].max() - model.mean[:, 1].min())
    assert bool((after[crossed].abs() < 1e-4 * face_size).all()), "crossed lips now touch"
    assert torch.equal(kept.expression[~crossed], params.expression[~crossed])
    assert torch.equal(kept.shape, params.shape)
    if bool(crossed.any()):  # the change is along the gap's gradient only: nothing else moves
        change = kept.expression[crossed] - params.expression[crossed]
        direction = torch.nn.functional.normalize(change, dim=1)
        assert bool((direction - direction[:1]).abs().max() < 1e-3)


def test_a_mouth_opens_from_the_drivers_rest_when_the_clip_starts_mid_sentence(fitter) -> None:  # type: ignore[no-untyped-def]
    """A driving clip whose first frame has its mouth open, a source with its mouth closed: the
    output's mouth shuts when the driver's does and opens as far as the driver's opens beyond it,
    instead of staying shut until the driver opens wider than at the start. A source that is the
    driver's first frame is plain relative motion, bit for bit."""
    model = fitter.model
    spreads = fitter.coefficient_scale.cpu()[40:50]

    height = float(model.mean[:, 1].max() - model.mean[:, 1].min())

    def face(opening: float) -> FaceParams:
        """The mean face with its lips ``opening`` face heights apart (a step along the gap)."""
        closed = FaceParams(rotation=torch.eye(3)[None], scale=torch.ones(1), translation=torch.zeros(1, 2), shape=torch.zeros(1, 40), expression=torch.zeros(1, 10))
        closed = keep_lips_apart(model, closed.replace(expression=-3 * spreads[None]))  # just touching
        step = closed.replace(expression=closed.expression + 1e-3 * spreads[None])
        per_step = float(lip_gap(model, step.shape, step.expression) - lip_gap(model, closed.shape, closed.expression))
        return closed.replace(expression=closed.expression + opening * height * spreads[None] * 1e-3 / per_step)

    def gap(params: FaceParams) -> torch.Tensor:
        return lip_gap(model, params.shape, params.expression, params.blendshapes) / height

    source, start = face(0.0), face(0.08)  # the driver starts with its mouth open
    driving = FaceParams.cat([face(0.0), face(0.08), face(0.15)])  # shut, as at the start, wider
    options = MotionOptions()
    targets = keep_lips_apart(model, follow_lips(model, source, driving, start, target_params(source, driving, start, options)))
    # Measured from a rest as open as the source's (and the fits' noise: LIP_GAP_NOISE).
    assert torch.allclose(gap(targets), torch.tensor([0.0, 0.08, 0.15]) - torch.tensor([0.0, LIP_GAP_NOISE, LIP_GAP_NOISE]), atol=0.003)
    plain = keep_lips_apart(model, target_params(source, driving, start, options))
    assert float(gap(plain)[1]) < 0.003, "plain relative motion would have kept the mouth shut"
    as_itself = target_params(start, driving, start, options)
    assert torch.equal(follow_lips(model, start, driving, start, as_itself).expression, as_itself.expression)


def _with_scores(params: FaceParams, **scores: float) -> FaceParams:
    values = torch.zeros(len(params), N_BLENDSHAPES)
    for name, value in scores.items():
        values[:, CHANNEL_NAMES.index(name)] = value
    return params.replace(blendshapes=values)


def test_blendshapes_follow_the_driver_relatively_both_ways() -> None:
    source = _with_scores(SOURCE, eyeBlinkLeft=0.1, browInnerUp=0.9, browDownLeft=0.05)
    reference = _with_scores(REFERENCE, eyeBlinkLeft=0.2, browDownLeft=0.1)
    driving = FaceParams.cat([_with_scores(DRIVING[0], eyeBlinkLeft=0.2, browDownLeft=0.1), _with_scores(DRIVING[1], eyeBlinkLeft=0.9, browInnerUp=0.5, browDownLeft=-0.1)])
    out = target_params(source, driving, reference, MotionOptions(MotionMode.relative))
    blink, brows, lowered = (CHANNEL_NAMES.index(name) for name in ("eyeBlinkLeft", "browInnerUp", "browDownLeft"))
    assert torch.allclose(out.blendshapes[:, blink], torch.tensor([0.1, 0.8]))
    # The whole change (the brows' carried BROW_GAIN times), past MediaPipe's [0, 1] both ways:
    # refined scores run beyond it.
    assert torch.allclose(out.blendshapes[:, brows], torch.tensor([0.9, 0.9 + 0.5 * BROW_GAIN]))
    assert torch.allclose(out.blendshapes[:, lowered], torch.tensor([0.05, 0.05 - 0.2 * BROW_GAIN]))
    wide_open = source.replace(blendshapes=source.blendshapes.clone())
    wide_open.blendshapes[0, blink] = -0.4  # matched to a photo's eyelids
    out = target_params(wide_open, driving, reference, MotionOptions())
    assert torch.allclose(out.blendshapes[:, blink], torch.tensor([-0.4, 0.3])), "a source's own score stays reachable"


def test_the_brows_move_further_than_driven_in_relative_motion() -> None:
    """The warp shows only part of a brow's motion, so in relative motion the brows' change is
    BROW_GAIN times the driven one, every other channel's the driven one; absolute motion takes
    the driver's scores as they are."""
    source = _with_scores(SOURCE, browInnerUp=0.2, browOuterUpLeft=0.1, eyeBlinkLeft=0.1)
    driving = FaceParams.cat([_with_scores(DRIVING[0], browInnerUp=0.1), _with_scores(DRIVING[1], browInnerUp=0.7, browOuterUpLeft=0.4, eyeBlinkLeft=0.6)])
    reference = _with_scores(REFERENCE, browInnerUp=0.1)
    brows = torch.from_numpy(region_mask([Region.brows]))
    out = target_params(source, driving, reference, MotionOptions(MotionMode.relative, expression_scale=0.5))
    driven = 0.5 * (driving.blendshapes - reference.blendshapes)
    change = out.blendshapes - source.blendshapes
    assert torch.allclose(change[:, brows], BROW_GAIN * driven[:, brows], atol=1e-6)
    assert torch.allclose(change[:, ~brows], driven[:, ~brows], atol=1e-6)
    assert torch.allclose(out.blendshapes[0], source.blendshapes[0]), "the driver at its rest leaves the photo as it is"
    absolute = target_params(source, driving, reference, MotionOptions(MotionMode.absolute))
    assert torch.allclose(absolute.blendshapes, driving.blendshapes)
    kept = target_params(source, driving, reference, MotionOptions(MotionMode.relative, regions=frozenset({Region.mouth})))
    assert torch.allclose(kept.blendshapes[:, brows], source.blendshapes.expand(2, -1)[:, brows]), "brows left out keep the photo's"


def test_scales_multiply_the_driven_change() -> None:
    half = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(MotionMode.relative, pose_scale=0.5, expression_scale=0.5))
    assert torch.allclose(half.angles()[:, 0], torch.tensor([10.0, 20.0]), atol=1e-3), "half the yaw change (+20° → +10°)"
    assert torch.allclose(half.translation[:, 0], torch.tensor([100.0, 110.0]))
    assert torch.allclose(half.expression[:, 0], torch.tensor([0.5, 1.0]))
    held = target_params(SOURCE, DRIVING, REFERENCE, MotionOptions(MotionMode.relative, pose_scale=0.0, expression_scale=0.0))
    assert torch.allclose(held.rotation, SOURCE.rotation.expand(2, -1, -1), atol=1e-6)
    assert torch.allclose(held.scale, SOURCE.scale.expand(2))
    assert torch.allclose(held.expression, SOURCE.expression.expand(2, -1))


@settings(max_examples=40, deadline=None)
@given(yaw=st.floats(-60, 60), pitch=st.floats(-40, 40), roll=st.floats(-40, 40), power=st.floats(0.0, 2.0))
def test_a_rotation_scaled_turns_about_the_same_axis(yaw: float, pitch: float, roll: float, power: float) -> None:
    rotation = angles_to_rotation(torch.tensor([[yaw, pitch, roll]], dtype=torch.float64))
    scaled = rotation_power(rotation, power)
    assert torch.allclose(scaled @ scaled.transpose(-1, -2), torch.eye(3, dtype=torch.float64)[None], atol=1e-9), "still a rotation"
    half = rotation_power(rotation, 0.5)
    if power == 1.0:
        assert torch.equal(scaled, rotation)
    assert torch.allclose(half @ half, rotation, atol=1e-6), "two half turns make the whole"


def test_regions_left_out_keep_the_source() -> None:
    source = _with_scores(SOURCE, eyeBlinkLeft=0.1, mouthSmileLeft=0.3)
    driving = FaceParams.cat([_with_scores(DRIVING[0]), _with_scores(DRIVING[1], eyeBlinkLeft=0.9, mouthSmileLeft=0.8)])
    reference = _with_scores(REFERENCE)
    lip_sync = target_params(source, driving, reference, MotionOptions(MotionMode.relative, regions=frozenset({Region.mouth})))
    blink, smile = CHANNEL_NAMES.index("eyeBlinkLeft"), CHANNEL_NAMES.index("mouthSmileLeft")
    assert torch.allclose(lip_sync.blendshapes[:, blink], torch.tensor([0.1, 0.1])), "eyes kept from the source"
    assert torch.allclose(lip_sync.blendshapes[:, smile], torch.tensor([0.3, 1.1])), "the driver's whole change"
    assert torch.allclose(lip_sync.expression[:, 0], torch.tensor([0.5, 1.5])), "the regressor's coefficients are the mouth's"
    eyes = target_params(source, driving, reference, MotionOptions(MotionMode.relative, regions=frozenset({Region.eyes})))
    assert torch.allclose(eyes.expression, SOURCE.expression.expand(2, -1))
    assert torch.allclose(eyes.blendshapes[:, blink], torch.tensor([0.1, 1.0]))


def test_a_driver_starting_mid_blink_is_measured_from_rest() -> None:
    blink = CHANNEL_NAMES.index("eyeBlinkLeft")
    frames = FaceParams.cat([_with_scores(DRIVING[0], eyeBlinkLeft=value) for value in (0.9, 0.1, 0.12, 0.1, 0.8, 0.1)])
    assert float(neutral_reference(frames).blendshapes[0, blink]) == pytest.approx(0.1), "a closed first frame is not the rest"
    at_rest = FaceParams.cat([_with_scores(DRIVING[0], eyeBlinkLeft=value) for value in (0.15, 0.1, 0.12, 0.1, 0.8, 0.1)])
    assert torch.equal(neutral_reference(at_rest).blendshapes, at_rest.blendshapes[:1]), "a first frame at rest is kept whole"


@settings(max_examples=60, deadline=None)
@given(length=st.floats(0.0, 5.0), angle=st.floats(-3.2, 3.2), width=st.floats(20.0, 2000.0))
def test_travel_is_whole_up_to_the_knee_and_never_past_the_reach(length: float, angle: float, width: float) -> None:
    direction = torch.tensor([[np.cos(angle), np.sin(angle)]], dtype=torch.float64)
    moved = direction * length * width
    eased = within_reach(moved, torch.tensor([width], dtype=torch.float64))
    eased_length = float(eased.norm()) / width
    if length <= TRAVEL_KNEE:
        assert torch.allclose(eased, moved), "travel up to the knee is taken whole"
    else:
        assert TRAVEL_KNEE <= eased_length <= TRAVEL_REACH + 1e-12
        assert eased_length <= length
        assert torch.allclose(eased / eased.norm(), direction), "the direction is kept"
    # Continuous and never moving backwards: a little more travel never gives less.
    further = within_reach(direction * (length + 0.01) * width, torch.tensor([width], dtype=torch.float64))
    assert float(further.norm()) / width >= eased_length - 1e-9
    assert float(further.norm()) / width - eased_length <= 0.01 + 1e-9


def test_a_driver_crossing_the_frame_moves_the_head_only_within_reach() -> None:
    """A driver whose head travels two face widths sideways: the portrait's head follows part
    of the way, never as far as the warp's background stops following it."""
    scale = 1e-3  # a face 150 px wide
    width = scale * MODEL_FACE_WIDTH
    source = _params(yaw=0, tx=200, scale=scale, expression=0.0)
    reference = _params(yaw=0, tx=100, scale=scale, expression=0.0)
    driving = FaceParams.cat([_params(yaw=0, tx=100 + step * width, scale=scale, expression=0.0) for step in (0.1, 0.5, 2.0)])
    out = target_params(source, driving, reference, MotionOptions())
    travel = (out.translation[:, 0] - 200) / width
    assert torch.allclose(travel[0], torch.tensor(0.1, dtype=travel.dtype)), "small travel is followed exactly"
    assert 0.2 < float(travel[1]) < float(travel[2]) < TRAVEL_REACH
