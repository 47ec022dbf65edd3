"""Temporal smoothing of fitted parameters with the One Euro filter.

The One Euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cutoff rises with the
signal's speed: still faces lose their frame-to-frame jitter, fast head turns keep their lag low.
A video is smoothed offline, so the filter runs forward and then backward over each stretch of
frames where the face was seen: the two passes' lags cancel (no trailing behind a fast turn).
Live frames have no future to look at: :class:`CausalSmoother` runs the forward pass alone, one
frame at a time, at the frames' own spacing.
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


class OneEuro:
    """The filter's state for one signal (D,): feed it samples one at a time."""

    def __init__(self, settings: OneEuroSettings):
        self.settings = settings
        self.previous: torch.Tensor | None = None
        self.speed: torch.Tensor | None = None

    def __call__(self, sample: torch.Tensor, period: float) -> torch.Tensor:
        """The filtered value of ``sample``, taken ``period`` seconds after the previous one."""
        if self.previous is None or self.speed is None:
            self.previous, self.speed = sample.clone(), torch.zeros_like(sample)
            return self.previous
        settings = self.settings
        alpha_d = _alpha(settings.derivative_cutoff, period)
        self.speed = alpha_d * (sample - self.previous) / period + (1 - alpha_d) * self.speed
        alpha = _alpha(settings.min_cutoff + settings.beta * self.speed.abs(), period)
        self.previous = alpha * sample + (1 - alpha) * self.previous
        return self.previous


def one_euro(signal: torch.Tensor, fps: float, settings: OneEuroSettings) -> torch.Tensor:
    """Filter a (T, D) signal sampled at ``fps``, causally."""
    state = OneEuro(settings)
    return torch.stack([state(sample, 1.0 / fps) for sample in signal]) if len(signal) else signal.clone()


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
#: Blendshape scores are steady at rest, but a blink closes the eye in ~3 frames: a
#: high ``beta`` opens the filter fully while they move fast.
BLENDSHAPE_SETTINGS = OneEuroSettings(min_cutoff=3.0, beta=20.0)
#: The parameter groups of :func:`_to_units`, each with its filter settings.
GROUP_SETTINGS = (POSE_SETTINGS, IDENTITY_SETTINGS, EXPRESSION_SETTINGS, BLENDSHAPE_SETTINGS)


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
    groups = _to_units(params, face_size, coefficient_scale)
    smoothed = [zero_lag(group, fps, settings, reset) for group, settings in zip(groups, GROUP_SETTINGS, strict=True)]
    return _from_units(smoothed, face_size, coefficient_scale)


class CausalSmoother:
    """:func:`smooth_params`'s filters run forward only, one frame (batch 1) at a time: what a
    live camera allows. Its lag is the forward pass's (the offline backward pass cancels it)."""

    def __init__(self, coefficient_scale: torch.Tensor):
        self.coefficient_scale = coefficient_scale
        self.face_size: torch.Tensor | None = None
        self.filters = [OneEuro(settings) for settings in GROUP_SETTINGS]

    def __call__(self, params: FaceParams, period: float) -> FaceParams:
        """The smoothed ``params`` (batch 1), ``period`` seconds after the previous frame."""
        if self.face_size is None:  # the first frame's face size sets the units
            self.face_size = params.scale[0].clamp(min=1e-9) * MODEL_FACE_WIDTH
        groups = _to_units(params, self.face_size, self.coefficient_scale)
        smoothed = [state(group[0], max(period, 1e-3))[None] for state, group in zip(self.filters, groups, strict=True)]
        return _from_units(smoothed, self.face_size, self.coefficient_scale)


def _to_units(params: FaceParams, face_size: torch.Tensor, coefficient_scale: torch.Tensor) -> list[torch.Tensor]:
    """Pose (rotation rows, log scale, translation in face sizes), identity and expression
    (over their spread), blendshapes: each (T, D) in units one set of cutoffs suits."""
    pose = torch.cat([params.rotation[:, :2].reshape(-1, 6), params.scale.log()[:, None], params.translation / face_size], dim=1)
    return [pose, params.shape / coefficient_scale[:40], params.expression / coefficient_scale[40:], params.blendshapes]


def _from_units(groups: list[torch.Tensor], face_size: torch.Tensor, coefficient_scale: torch.Tensor) -> FaceParams:
    """The groups back as parameters. The blendshape scores are not clamped to MediaPipe's
    [0, 1]: refined to the landmarks, their motion also runs below a clip's rest (a brow
    lowered), and a clamp cut up to half of the brows' motion."""
    pose, shape, expression, blendshapes = groups
    return FaceParams(
        rotation=orthonormalize_rows(pose[:, 0:3], pose[:, 3:6]),
        scale=pose[:, 6].exp(),
        translation=pose[:, 7:9] * face_size,
        shape=shape * coefficient_scale[:40],
        expression=expression * coefficient_scale[40:],
        blendshapes=blendshapes,
    )
