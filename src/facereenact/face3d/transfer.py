"""Which pose and expression the output face takes: motion transfer modes.

``absolute`` takes the driving head orientation and expression as they are; ``relative`` adds the
driving's change since its first frame to the source's own pose and expression (the right choice
when the driving person starts from a different pose than the source). In both modes the head's
position and size follow the driving's *change* since its first frame, scaled to the source
face, so the head stays where it is in the source photo. The identity is always the source's,
and the lips never pass through each other (:func:`keep_lips_apart`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

from facereenact.face3d.expression_basis import LOWER_INNER_LIP, UPPER_INNER_LIP
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import FaceParams


class MotionMode(str, Enum):
    absolute = "absolute"
    relative = "relative"


@dataclass(frozen=True)
class MotionOptions:
    mode: MotionMode = MotionMode.relative
    transfer_pose: bool = True
    transfer_expression: bool = True


def target_params(source: FaceParams, driving: FaceParams, reference: FaceParams, options: MotionOptions) -> FaceParams:
    """Parameters of the output faces (B,) from the source (batch 1), the driving frames (B,)
    and the driving reference frame (batch 1, usually the first frame)."""
    batch = len(driving)
    if options.transfer_pose:
        if options.mode is MotionMode.relative:
            rotation = driving.rotation @ reference.rotation.transpose(-1, -2) @ source.rotation
        else:
            rotation = driving.rotation
        size_ratio = source.scale / reference.scale
        scale = driving.scale * size_ratio
        translation = source.translation + (driving.translation - reference.translation) * size_ratio[:, None]
    else:
        rotation = source.rotation.expand(batch, -1, -1)
        scale = source.scale.expand(batch)
        translation = source.translation.expand(batch, -1)
    if options.transfer_expression:
        if options.mode is MotionMode.relative:
            expression = source.expression + driving.expression - reference.expression
        else:
            expression = driving.expression
    else:
        expression = source.expression.expand(batch, -1)
    return FaceParams(
        rotation=rotation.contiguous(),
        scale=scale.contiguous(),
        translation=translation.contiguous(),
        shape=source.shape.expand(batch, -1).clone(),
        expression=expression.contiguous(),
    )


def lip_gap(model: MorphableModel, shape: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
    """(B,) how far the inner lips stand apart in the unposed model (its units, y up): zero when
    they touch, negative when the upper lip has passed below the lower one."""
    landmarks = model.model_space_landmarks(shape, expression)[..., 1]
    return landmarks[:, torch.from_numpy(UPPER_INNER_LIP)].mean(1) - landmarks[:, torch.from_numpy(LOWER_INNER_LIP)].mean(1)


def keep_lips_apart(model: MorphableModel, params: FaceParams) -> FaceParams:
    """The same faces, with lips that never pass through each other. Relative motion from a
    driving clip that starts with the mouth open asks, when that mouth closes, for a source mouth
    shut beyond shut: the lips cross and the mouth region crumples. The gap is linear in the
    expression coefficients, so the smallest change of them that brings the lips back to
    touching is one step along the gap's gradient."""
    gap = lip_gap(model, params.shape, params.expression)
    if not bool((gap < 0).any()):
        return params
    count = params.expression.shape[1]
    no_shape = params.shape.new_zeros(count + 1, params.shape.shape[1])
    steps = torch.cat([params.expression.new_zeros(1, count), torch.eye(count, dtype=params.expression.dtype, device=params.expression.device)])
    at_steps = lip_gap(model, no_shape, steps)
    gradient = at_steps[1:] - at_steps[0]  # (E,)
    correction = (-gap).clamp(min=0)[:, None] * gradient / gradient.square().sum().clamp(min=1e-12)
    return params.replace(expression=params.expression + correction)
