"""Temporal smoothing of fitted parameters with the One Euro filter, run forward and backward.

The One Euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cutoff rises with the
signal's speed: still faces lose their frame-to-frame jitter, fast head turns keep their lag low.
A video is smoothed offline, so the filter runs forward and then backward over each stretch of
frames where the face was seen: the two passes' lags cancel (no trailing behind a fast turn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from facereenact.face3d.params import MODEL_FACE_WIDTH, FaceParams, orthonormalize_rows


@dataclass(frozen=True)
class OneEuroSettings:
    """Cutoffs in Hz; ``beta`` scales how fast the cutoff grows with speed (per normalised unit)."""

    min_cutoff: float = 1.0
    beta: float = 0.3
    derivative_cutoff: float = 1.0


def _alpha(cutoff: torch.Tensor | float, period: float) -> torch.Tensor | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


def one_euro(signal: torch.Tensor, fps: float, settings: OneEuroSettings) -> torch.Tensor:
    """Filter a (T, D) signal sampled at ``fps``, causally."""
    period = 1.0 / fps
    out = signal.clone()
    if len(signal) == 0:
        return out
    previous = signal[0]
    speed = torch.zeros_like(previous)
    alpha_d = _alpha(settings.derivative_cutoff, period)
    for t in range(1, len(signal)):
        raw_speed = (signal[t] - previous) / period
        speed = alpha_d * raw_speed + (1 - alpha_d) * speed
        alpha = _alpha(settings.min_cutoff + settings.beta * speed.abs(), period)
        previous = alpha * signal[t] + (1 - alpha) * previous
        out[t] = previous
    return out


def zero_lag(signal: torch.Tensor, fps: float, settings: OneEuroSettings, reset: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`one_euro` forward, then backward over the result, within each stretch between
    rows where ``reset`` is True (after a lost face, so values from before the gap do not bleed in)."""
    starts = [0] + ([int(i) for i in torch.nonzero(reset).flatten() if i > 0] if reset is not None else []) + [len(signal)]
    out = signal.clone()
    for start, stop in zip(starts[:-1], starts[1:]):
        forward = one_euro(signal[start:stop], fps, settings)
        out[start:stop] = one_euro(forward.flip(0), fps, settings).flip(0)
    return out


#: Filter settings per parameter group; identity is constant for a person, so it is smoothed most.
POSE_SETTINGS = OneEuroSettings(min_cutoff=1.5, beta=5.0)
EXPRESSION_SETTINGS = OneEuroSettings(min_cutoff=2.0, beta=5.0)
IDENTITY_SETTINGS = OneEuroSettings(min_cutoff=0.3, beta=0.05)
#: Blendshape scores (in [0, 1]) steady at rest, but a blink closes the eye in ~3 frames: a
#: high ``beta`` opens the filter fully while they move fast.
BLENDSHAPE_SETTINGS = OneEuroSettings(min_cutoff=3.0, beta=20.0)


def smooth_params(
    params: FaceParams,
    fps: float,
    coefficient_scale: torch.Tensor,
    reset: torch.Tensor | None = None,
) -> FaceParams:
    """Smooth a (T,) sequence of parameters.

    Every group is first brought to comparable units (translation in face sizes, scale in log,
    coefficients divided by ``coefficient_scale`` (50,), their spread over faces) so one set of
    cutoffs suits any resolution.
    """
    face_size = params.scale.median().clamp(min=1e-9) * MODEL_FACE_WIDTH  # pixels
    pose = torch.cat(
        [params.rotation[:, :2].reshape(-1, 6), params.scale.log()[:, None], params.translation / face_size], dim=1
    )
    pose = zero_lag(pose, fps, POSE_SETTINGS, reset)
    shape = zero_lag(params.shape / coefficient_scale[:40], fps, IDENTITY_SETTINGS, reset) * coefficient_scale[:40]
    expression = zero_lag(params.expression / coefficient_scale[40:], fps, EXPRESSION_SETTINGS, reset) * coefficient_scale[40:]
    blendshapes = zero_lag(params.blendshapes, fps, BLENDSHAPE_SETTINGS, reset).clamp(0.0, 1.0)
    rotation = orthonormalize_rows(pose[:, 0:3], pose[:, 3:6])
    return FaceParams(
        rotation=rotation,
        scale=pose[:, 6].exp(),
        translation=pose[:, 7:9] * face_size,
        shape=shape,
        expression=expression,
        blendshapes=blendshapes,
    )
