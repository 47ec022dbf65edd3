"""The eyelids of the model: how far apart they stand, kept from crossing, matched to a photo.

The lid gaps are linear in the eye scores (blink, squint, wide: :attr:`Region.eyes`), so both
corrections here are least-norm steps of those scores along the gaps' gradients: the smallest
change of the eye scores that gives each eye the gap it should have.

The regressor's 68 landmarks put the lids of an open eye too close together (over the
portraits in ``../shared/data`` the model's lid gap is about half the one MediaPipe's 478
landmarks measure), so a blink that closes the model's eye would close only half the eye in the
picture. :func:`match_eyelids` opens the model's eyes to the gaps measured on the photo.
"""

from __future__ import annotations

import numpy as np
import torch

from facereenact.face3d.blendshapes import Region, region_mask
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import FaceParams

#: Per eye (the subject's right, then left), the 68-landmark indices of the upper and the lower
#: lid, in matching order.
EYELIDS = ((torch.tensor([37, 38]), torch.tensor([41, 40])), (torch.tensor([43, 44]), torch.tensor([47, 46])))
#: Per eye, the corners in the 68 landmarks.
EYE_CORNERS = ((36, 39), (42, 45))
#: An eye opens at most this many times as wide as the source's own (a driver who starts squinting).
MAX_OPENING = 1.5
#: A change of an eye's gap this small, relative to the gap, is float rounding.
STILL = 1e-4
#: Per eye, MediaPipe's 478-landmark indices of the upper and the lower lid's middle third.
MEDIAPIPE_EYELIDS = (((158, 159, 160), (144, 145, 153)), ((385, 386, 387), (373, 374, 380)))


def eyelid_gaps(model: MorphableModel, shape: torch.Tensor, expression: torch.Tensor, blendshapes: torch.Tensor) -> torch.Tensor:
    """(B, 2) how far each eye's lids stand apart in the unposed model (y up): zero when closed,
    negative when the upper lid has passed below the lower one."""
    heights = model.model_space_landmarks(shape, expression, blendshapes)[..., 1]
    return torch.stack([heights[:, upper].mean(1) - heights[:, lower].mean(1) for upper, lower in EYELIDS], dim=1)


def _eye_steps(params: FaceParams) -> torch.Tensor:
    """(K + 1, K): no change, then a unit step of each eye score (zero rows for the others)."""
    count = params.blendshapes.shape[1]
    eyes = torch.from_numpy(region_mask([Region.eyes])).to(params.blendshapes)
    return torch.cat([params.blendshapes.new_zeros(1, count), torch.diag(eyes)])


def _least_norm(gradients: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """The smallest step s (K,) with ``gradients.T @ s == change`` (gradients (K, A)); for
    ``change`` (A, B), one step per column (K, B)."""
    return gradients @ torch.linalg.solve(gradients.T @ gradients, change)


def keep_eyelids_apart(model: MorphableModel, params: FaceParams) -> FaceParams:
    """The same faces, with eyelids that never pass through each other. A driver's blink added
    to a source that squints asks for an eye shut beyond shut: the lids would cross and fold the
    eye. Crossed eyes are brought back to just closed (an eye that the step would cross in turn
    joins the crossed ones)."""
    gaps = eyelid_gaps(model, params.shape, params.expression, params.blendshapes)
    if not bool((gaps < 0).any()):
        return params
    gradients = _gap_gradients(model, params)
    corrections = torch.zeros_like(params.blendshapes)
    for face in torch.nonzero((gaps < 0).any(1)).flatten().tolist():
        crossed = gaps[face] < 0
        for _ in range(len(EYELIDS)):
            step = _least_norm(gradients[:, crossed], -gaps[face, crossed])
            after = gaps[face] + gradients.T @ step
            if not bool((after < -1e-6 * gaps[face].abs().max()).any()):
                break
            crossed = crossed | (after < 0)
        corrections[face] = step
    return params.replace(blendshapes=params.blendshapes + corrections)


def _gap_gradients(model: MorphableModel, params: FaceParams) -> torch.Tensor:
    """(K, 2) how much each eye's lid gap (model units) opens per unit of each score (zero rows
    outside the eye scores). The gaps are linear in the scores, whatever the shape."""
    steps = _eye_steps(params)
    count = len(steps)
    at_steps = eyelid_gaps(model, params.shape.new_zeros(count, params.shape.shape[1]), params.expression.new_zeros(count, params.expression.shape[1]), steps)
    return at_steps[1:] - at_steps[0]


def follow_eyelids(model: MorphableModel, source: FaceParams, driving: FaceParams, reference: FaceParams, targets: FaceParams, scale: float = 1.0) -> FaceParams:
    """The target faces (B,) with eyes as open, relative to the source's, as the driver's are
    relative to its reference: a driver's blink closes the source's eye whatever the two eyes'
    sizes (an added change of the scores would leave a large eye half open and shut a small
    one early). ``scale`` multiplies the driver's change of opening."""
    def gaps(params: FaceParams) -> torch.Tensor:
        return eyelid_gaps(model, params.shape, params.expression, params.blendshapes)

    at_rest = gaps(reference).clamp(min=1e-6)
    opening = (1 + scale * (gaps(driving) / at_rest - 1)).clamp(0.0, MAX_OPENING)
    wanted = gaps(source) * opening  # (B, 2)
    change = wanted - gaps(targets)
    # Rounding is not motion: a face already as open as wanted stays bit for bit (a still frame is the photo).
    change = torch.where(change.abs() <= STILL * wanted.abs().clamp(min=1e-6), torch.zeros_like(change), change)
    gradients = _gap_gradients(model, targets)
    return targets.replace(blendshapes=targets.blendshapes + _least_norm(gradients, change.T).T)


def _pictured_gaps(landmarks: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """(B, 2) each eye's lid gap in the picture (68 landmarks (B, 68, ≥2) in pixels), measured
    along ``normals`` (B, 2, 2): the direction across each eye, towards the chin."""
    gaps = [
        ((landmarks[:, lower, :2].mean(1) - landmarks[:, upper, :2].mean(1)) * normals[:, eye]).sum(-1)
        for eye, (upper, lower) in enumerate(EYELIDS)
    ]
    return torch.stack(gaps, dim=1)


def _normals(landmarks: torch.Tensor) -> torch.Tensor:
    """(B, 2, 2) per eye, the unit direction across it (perpendicular to its corners' line) that
    points towards the chin."""
    normals = []
    for first, last in EYE_CORNERS:
        along = landmarks[:, last, :2] - landmarks[:, first, :2]
        across = torch.stack([-along[:, 1], along[:, 0]], dim=-1)
        towards_chin = landmarks[:, 8, :2] - (landmarks[:, first, :2] + landmarks[:, last, :2]) / 2
        across = torch.where(((across * towards_chin).sum(-1) < 0)[:, None], -across, across)
        normals.append(across / across.norm(dim=-1, keepdim=True).clamp(min=1e-6))
    return torch.stack(normals, dim=1)


def measured_gaps(mediapipe_landmarks: np.ndarray, params: FaceParams, model: MorphableModel) -> torch.Tensor:
    """(1, 2) the lid gaps MediaPipe's 478 landmarks (pixels) show, across the eyes of the fitted
    face ``params`` (batch 1)."""
    normals = _normals(model.landmarks(params))
    points = torch.from_numpy(np.asarray(mediapipe_landmarks, np.float32)[:, :2]).to(normals)
    gaps = [
        ((points[list(lower)].mean(0) - points[list(upper)].mean(0)) * normals[0, eye]).sum(-1)
        for eye, (upper, lower) in enumerate(MEDIAPIPE_EYELIDS)
    ]
    return torch.stack(gaps)[None]


def match_eyelids(model: MorphableModel, params: FaceParams, gaps: torch.Tensor) -> FaceParams:
    """The faces (B,) with eye scores changed least so that the model's lids stand ``gaps`` (B, 2)
    pixels apart in the picture (never less than closed). The change may take a score outside
    [0, 1]: it stands for the eye as pictured, not for a reading."""
    normals = _normals(model.landmarks(params))
    steps = _eye_steps(params)
    corrections = torch.zeros_like(params.blendshapes)
    for face in range(len(params)):
        one = params[face]
        trials = FaceParams.cat([one.replace(blendshapes=one.blendshapes + step[None]) for step in steps])
        pictured = _pictured_gaps(model.landmarks(trials), normals[face : face + 1].expand(len(steps), -1, -1))
        gradients = pictured[1:] - pictured[0]  # (K, 2) pixels per unit of each eye score
        corrections[face] = _least_norm(gradients, gaps[face].clamp(min=0) - pictured[0])
    return params.replace(blendshapes=params.blendshapes + corrections)
