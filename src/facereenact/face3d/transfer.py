"""Which pose and expression the output face takes: motion transfer modes.

``absolute`` takes the driving head orientation and expression as they are; ``relative`` adds the
driving's change since its reference frame to the source's own pose and expression (the right
choice when the driving person starts from a different pose than the source). In both modes the
head's position and size follow the driving's *change* since its reference, scaled to the source
face, so the head stays where it is in the source photo; a driver who travels across the frame
moves it only so far (:func:`within_reach`). The identity is always the source's,
and the lips never pass through each other (:func:`keep_lips_apart`; the eyelids:
:mod:`facereenact.face3d.eyelids`); a mouth opens from the driver's resting mouth even when
the driving clip starts mid-sentence (:func:`follow_lips`).

The reference is the first driving frame, except for a blendshape (eyelids, gaze, brows, mouth
corners) that the first frame holds well above the clip's median (:func:`neutral_reference`):
there the median is the reference. A driver who starts mid-blink or frowning would otherwise
give a portrait that stares wide-eyed or lifts its brows whenever the driver is at rest. Scales multiply the
driving's change (relative) or the driving's values (absolute); per-region choices keep a
region of the source as it is (the 10 regressor coefficients belong to the mouth).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np
import torch

from facereenact.face3d.blendshapes import Region, region_mask
from facereenact.face3d.expression_basis import LOWER_INNER_LIP, UPPER_INNER_LIP
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import MODEL_FACE_WIDTH, FaceParams

if TYPE_CHECKING:
    from facereenact.face3d.fitter import VideoFit


class MotionMode(str, Enum):
    absolute = "absolute"
    relative = "relative"


#: Every region, the default of :attr:`MotionOptions.regions`.
ALL_REGIONS = frozenset(Region)


@dataclass(frozen=True)
class MotionOptions:
    mode: MotionMode = MotionMode.relative
    transfer_pose: bool = True
    transfer_expression: bool = True
    #: Multiplies the head's rotation and movement (1: as driven, 0: held still).
    pose_scale: float = 1.0
    #: Multiplies the expression (1: as driven, 0: the source's own).
    expression_scale: float = 1.0
    #: The regions whose expression comes from the driver; the others keep the source's.
    regions: frozenset[Region] = field(default_factory=lambda: ALL_REGIONS)


#: A first frame's blendshape score this far above the clip's median is not a resting face.
NOT_AT_REST = 0.2


#: How much further than driven the brows move in relative motion. The warp shows only part of a
#: brow's motion: a picture's brow lies a little beside the model's brow line, where the components
#: move the surface less. Driven by their own clips, outputs move their brows 0.68 as far as the
#: real frames by MediaPipe (benchmarks/expression_amplitude.py); see how-it-works.md. Absolute
#: motion takes the driver's own brow posture, which carried further looks less like the source.
BROW_GAIN = 1.46
#: Each channel's gain on the driven change in relative motion.
_RELATIVE_GAIN = torch.from_numpy(np.where(region_mask([Region.brows]), BROW_GAIN, 1.0).astype(np.float32))


def neutral_reference(driving: FaceParams, first: int = 0) -> FaceParams:
    """The reference of relative motion (batch 1): frame ``first`` (the first with a face), with
    each blendshape score that stands :data:`NOT_AT_REST` above its median over ``driving``
    replaced by that median (a resting face scores near zero, and most frames of a clip are
    eyes open, brows at rest). A first frame at rest is kept whole, so a source that is that
    frame stays still."""
    reference = driving[first]
    median = driving.blendshapes.median(dim=0, keepdim=True).values
    resting = reference.blendshapes - median <= NOT_AT_REST
    return reference.replace(blendshapes=torch.where(resting, reference.blendshapes, median))


def clip_reference(fit: VideoFit) -> tuple[FaceParams, np.ndarray | None]:
    """A tracked driving clip's reference of relative motion: :func:`neutral_reference` at its
    first frame with a face, and MediaPipe's landmarks of that frame (None where unread), which
    its lips' motion is measured from."""
    first = int(np.flatnonzero(fit.found)[0])
    return neutral_reference(fit.params, first), fit.points_at(first)


def rotation_power(rotation: torch.Tensor, power: float) -> torch.Tensor:
    """Rotations (B, 3, 3) turned ``power`` times as far about the same axes (axis-angle scaled)."""
    if power == 1.0:
        return rotation
    cos = ((rotation.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    axis = torch.stack([rotation[:, 2, 1] - rotation[:, 1, 2], rotation[:, 0, 2] - rotation[:, 2, 0], rotation[:, 1, 0] - rotation[:, 0, 1]], -1)
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    scaled = (angle * power)[:, None, None]
    cross = torch.zeros_like(rotation)
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    cross = cross - cross.transpose(-1, -2)
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device).expand_as(rotation)
    return eye + scaled.sin() * cross + (1 - scaled.cos()) * (cross @ cross)


#: The head follows the driver's travel across the picture in full up to TRAVEL_KNEE face widths
#: from its place in the photo, and ever more slowly beyond, never past TRAVEL_REACH. Why: the
#: warp moves the background around the head with it only so far (to HEAD_FAR of the warp), so a
#: head carried further leaves the photo's own head behind, and two faces show, smeared between.
TRAVEL_KNEE, TRAVEL_REACH = 0.2, 0.35


def within_reach(moved: torch.Tensor, face_width: torch.Tensor) -> torch.Tensor:
    """Displacements (B, 2, pixels) with their length eased beyond :data:`TRAVEL_KNEE` face widths
    (``face_width`` (B or 1,) pixels) towards :data:`TRAVEL_REACH`, continuously and without a kink."""
    length = moved.norm(dim=-1, keepdim=True) / face_width[:, None]
    room = TRAVEL_REACH - TRAVEL_KNEE
    eased = TRAVEL_KNEE + room * torch.tanh((length - TRAVEL_KNEE).clamp(min=0) / room)
    return torch.where(length > TRAVEL_KNEE, moved * (eased / length.clamp(min=1e-12)), moved)


def target_params(source: FaceParams, driving: FaceParams, reference: FaceParams, options: MotionOptions) -> FaceParams:
    """Parameters of the output faces (B,) from the source (batch 1), the driving frames (B,)
    and the driving reference (batch 1, :func:`neutral_reference`)."""
    batch = len(driving)
    k = options.pose_scale
    if options.transfer_pose:
        if options.mode is MotionMode.relative:
            change = driving.rotation @ reference.rotation.transpose(-1, -2)
            rotation = rotation_power(change, k) @ source.rotation
        else:
            rotation = rotation_power(driving.rotation, k)
        size_ratio = source.scale / reference.scale
        scale = source.scale * (driving.scale / reference.scale) ** k
        moved = k * (driving.translation - reference.translation) * size_ratio[:, None]
        translation = source.translation + within_reach(moved, source.scale * MODEL_FACE_WIDTH)
    else:
        rotation = source.rotation.expand(batch, -1, -1)
        scale = source.scale.expand(batch)
        translation = source.translation.expand(batch, -1)
    expression = source.expression.expand(batch, -1)
    blendshapes = source.blendshapes.expand(batch, -1)
    if options.transfer_expression:
        e = options.expression_scale
        if options.mode is MotionMode.relative:
            driven_expression = source.expression + e * (driving.expression - reference.expression)
            gain = _RELATIVE_GAIN.to(blendshapes.device)
            driven_blendshapes = source.blendshapes + e * gain * (driving.blendshapes - reference.blendshapes)
        else:
            driven_expression = e * driving.expression
            driven_blendshapes = e * driving.blendshapes
        if Region.mouth in options.regions:
            expression = driven_expression
        # Not clamped to MediaPipe's [0, 1]: the scores are refined to the landmarks, whose motion
        # runs past it both ways (a brow lowered below the clip's rest); eyelids and lips that
        # would cross are held apart afterwards (face3d.eyelids, keep_lips_apart).
        chosen = torch.from_numpy(region_mask(options.regions)).to(blendshapes.device)
        blendshapes = torch.where(chosen, driven_blendshapes, blendshapes)
    return FaceParams(
        rotation=rotation.contiguous(),
        scale=scale.contiguous(),
        translation=translation.contiguous(),
        shape=source.shape.expand(batch, -1).clone(),
        expression=expression.contiguous(),
        blendshapes=blendshapes.contiguous(),
    )


def lip_gap(model: MorphableModel, shape: torch.Tensor, expression: torch.Tensor, blendshapes: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) how far the inner lips stand apart in the unposed model (its units, y up): zero when
    they touch, negative when the upper lip has passed below the lower one."""
    landmarks = model.model_space_landmarks(shape, expression, blendshapes)[..., 1]
    return landmarks[:, torch.from_numpy(UPPER_INNER_LIP)].mean(1) - landmarks[:, torch.from_numpy(LOWER_INNER_LIP)].mean(1)


#: How far a photo's fit and a tracked video's fit of the same frame disagree on the lip gap, in
#: face heights (up to 0.02 over the first frames of 8 clips): a driver's reference mouth this
#: much more open than the source's is the same mouth.
LIP_GAP_NOISE = 0.03


def _opened(model: MorphableModel, params: FaceParams, change: torch.Tensor) -> FaceParams:
    """The faces with their lip gaps changed by ``change`` (B,): the smallest change of the
    expression coefficients that does it (the gap is linear in them: one step along its gradient)."""
    count = params.expression.shape[1]
    no_shape = params.shape.new_zeros(count + 1, params.shape.shape[1])
    steps = torch.cat([params.expression.new_zeros(1, count), torch.eye(count, dtype=params.expression.dtype, device=params.expression.device)])
    at_steps = lip_gap(model, no_shape, steps)
    gradient = at_steps[1:] - at_steps[0]  # (E,)
    return params.replace(expression=params.expression + change[:, None] * gradient / gradient.square().sum().clamp(min=1e-12))


def keep_lips_apart(model: MorphableModel, params: FaceParams) -> FaceParams:
    """The same faces, with lips that never pass through each other. A driver's mouth closing
    further than its reference, added to a closed source mouth, asks for a mouth shut beyond
    shut: the lips would cross and the mouth region crumple. Crossed lips are brought back to
    just touching."""
    gap = lip_gap(model, params.shape, params.expression, params.blendshapes)
    if not bool((gap < 0).any()):
        return params
    return _opened(model, params, (-gap).clamp(min=0))


def follow_lips(model: MorphableModel, source: FaceParams, driving: FaceParams, reference: FaceParams, targets: FaceParams, scale: float = 1.0) -> FaceParams:
    """The target faces (B,) with the mouth opening as far as relative motion says, measured
    from a reference mouth no more open than the source's own. Why: a driving clip that starts
    mid-sentence has its reference mouth open; added to a closed source mouth, its change would
    ask for lips shut beyond shut whenever the driver's mouth is less open than at the start,
    and the output would open only when the driver opens wider than that. So the target's gap is
    ``source + scale·(driving − min(reference, source + noise))``: for a source that is the
    driver's own first frame that is plain relative motion (its first frame gives it back), for a
    closed source mouth it opens as the driver's does. Gaps are read on the source's face shape;
    ``noise`` (:data:`LIP_GAP_NOISE`) is how far two fits of one picture may disagree."""
    count = max(len(source), len(targets))

    def gap(params: FaceParams) -> torch.Tensor:  # (count,) on the source's face shape
        return lip_gap(model, source.shape.expand(count, -1), params.expression.expand(count, -1), params.blendshapes.expand(count, -1))

    fit_noise = LIP_GAP_NOISE * float(model.mean[:, 1].max() - model.mean[:, 1].min())
    own = gap(source)
    at_rest = torch.minimum(gap(reference), own + fit_noise)
    wanted = own + scale * (gap(driving) - at_rest)
    change = wanted - gap(targets)
    # Rounding is not motion: a target already as open as wanted stays bit for bit.
    change = torch.where(change.abs() <= 1e-6 * wanted.abs().clamp(min=1e-3), torch.zeros_like(change), change)
    return _opened(model, targets, change)


#: The upper and lower lid landmarks (iBUG-68) of each eye.
