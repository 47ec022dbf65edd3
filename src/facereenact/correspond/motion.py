"""Which pose and expression the output face takes: motion transfer modes.

``absolute`` takes the driving head orientation and expression as they are; ``relative`` adds the
driving's change since its first frame to the source's own pose and expression (the right choice
when the driving person starts from a different pose than the source). In both modes the head's
position and size follow the driving's *change* since its first frame, scaled to the source
face, so the head stays where it is in the source photo. The identity is always the source's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

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
