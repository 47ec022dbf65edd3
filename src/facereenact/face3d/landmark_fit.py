"""A fit's expression refined to MediaPipe's dense landmarks: the picture's own geometry.

Why: the regressor's 10 expression coefficients and MediaPipe's blendshape scores both
understate how far a face moves. Measured against dlib's 68 landmarks (an instrument that
shares nothing with either) on four held-out talking clips, the tracked model's brows moved
0.71–0.83 as far as the picture's and its mouth opened 0.62–0.97 as far. MediaPipe's 478
landmarks see the same frames in more detail: solving, per frame, for the small change of the
expression coefficients and blendshape scores that brings the model's surface onto them (ridge
least squares, pose held) raises the correlation over time with dlib (brows 0.61–0.92 →
0.65–0.94, mouth opening 0.32–0.86 → 0.36–0.92) and the amplitudes (brows up to 0.90, mouth
opening 0.73–1.04).

Only landmarks on features the expression moves are fitted: eye contours, irises, brows, the
outer lip contour, plus the nose so that a small misplacement of the whole face is taken up by
a shift and scale rather than by the expression. The inner lips are left out: on the grid their
points sit on the triangles that bridge the lips, which do not part, so fitting them would close
the mouth. The face's own shape stays the identity coefficients': a constant part of the change
(the fitted identity's mismatch with the picture) is removed per clip by the tracker, and cancels
in relative motion.
"""

from __future__ import annotations

import numpy as np
import torch

from facereenact.face3d.morphable import MorphableModel, landmark_weights
from facereenact.face3d.params import N_EXPRESSION, N_SHAPE, FaceParams

#: MediaPipe's 478-landmark indices that are fitted (see the module's docstring).
EYES = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
        263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)  # fmt: skip
IRISES = tuple(range(468, 478))
BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
OUTER_LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
NOSE = (1, 2, 4, 5, 6, 168, 197, 195, 98, 327)
FITTED = np.array(sorted(EYES + IRISES + BROWS + OUTER_LIPS + NOSE))
#: Ridge weight on the change, per unit of each coefficient's spread (the expression
#: coefficients' standard deviations, 1 for a score), against landmark misses in face widths.
#: On the four clips 0.1 and 0.15 agree within 0.01 and 0.3 barely moves the fit; 0.03 lets
#: landmark noise close the mouth. 0.15 keeps MediaPipe's guesses at hidden eyes (a hand over
#: them) from making the brows and lids flicker.
RIDGE = 0.15
#: Columns of the change that absorb a misplacement of the whole face: x, y shift and scale.
N_RIGID = 3


class ExpressionRefiner:
    """Refines fits (their expression coefficients and blendshape scores) to MediaPipe's
    landmarks. ``mediapipe_on_mean_face`` (478, 3) places each landmark on the model's mean
    face; ``expression_std`` (10,) is the regressor's spread of each expression coefficient."""

    def __init__(self, model: MorphableModel, mediapipe_on_mean_face: np.ndarray, expression_std: torch.Tensor):
        mean = model.mean.double().cpu().numpy()
        weights = torch.from_numpy(landmark_weights(np.asarray(mediapipe_on_mean_face, np.float64)[FITTED], mean, model.triangles.cpu().numpy())).float()
        device, n = model.mean.device, model.n_vertices
        weights = weights.to(device)  # (L, N)
        # The fitted points are linear in all the coefficients: read them off the mesh once.
        self.bound_mean = weights @ model.mean  # (L, 3)
        self.bound_all = torch.einsum("ln,ncj->lcj", weights, model.basis.view(n, 3, -1))  # (L, 3, 40 + 10 + K)
        self.bound_basis = self.bound_all[..., N_SHAPE:]  # expression, then blendshape columns
        columns = self.bound_basis.shape[-1]
        spread = torch.cat([expression_std.float().to(device), torch.ones(columns - len(expression_std), device=device)])
        self.penalty = torch.cat([RIDGE / spread, torch.zeros(N_RIGID, device=device)]).square()

    def change(self, params: FaceParams, points: torch.Tensor) -> torch.Tensor:
        """(B, 10 + K) the change of ``[expression, blendshapes]`` that brings the fits
        ``params`` (B,) onto MediaPipe's landmarks ``points`` (B, 478, ≥2) in picture pixels."""
        coefficients = torch.cat([params.shape, params.expression, params.blendshapes], 1)
        surface = self.bound_mean + torch.einsum("lcj,bj->blc", self.bound_all, coefficients)
        rotation, scale = params.rotation[:, :2], params.scale[:, None, None]  # (B, 2, 3), (B, 1, 1)
        flip = torch.tensor([1.0, -1.0], device=surface.device)  # picture y points down
        placed = torch.einsum("bij,blj->bli", rotation, surface) * scale * flip + params.translation[:, None, :2]
        width = (placed[..., 0].amax(1) - placed[..., 0].amin(1)).clamp(min=1.0)[:, None, None]  # (B, 1, 1)
        miss = (points[:, torch.from_numpy(FITTED).to(points.device), :2].to(placed) - placed) / width  # (B, L, 2)
        expression = torch.einsum("bij,ljc->blic", rotation, self.bound_basis) * ((scale / width) * flip)[..., None]
        rigid = torch.zeros(*miss.shape, N_RIGID, device=miss.device)
        rigid[..., 0, 0] = rigid[..., 1, 1] = 1.0 / width[..., 0]
        rigid[..., 2] = (placed - placed.mean(1, keepdim=True)) / width
        jacobian = torch.cat([expression, rigid], -1).flatten(1, 2)  # (B, 2L, 10 + K + 3)
        normal = jacobian.transpose(1, 2) @ jacobian + torch.diag(self.penalty)
        solved = torch.linalg.solve(normal, jacobian.transpose(1, 2) @ miss.flatten(1)[..., None])[..., 0]
        return solved[:, :-N_RIGID]

    def apply(self, params: FaceParams, change: torch.Tensor) -> FaceParams:
        """``params`` with ``change`` (B or 1, 10 + K) added to their expression and blendshapes."""
        return params.replace(expression=params.expression + change[:, :N_EXPRESSION], blendshapes=params.blendshapes + change[:, N_EXPRESSION:])
