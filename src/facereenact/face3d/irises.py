"""The irises on the morphable model, and where looking sideways moves them.

Why: the grid mesh has only a few vertices across an eye, and the gaze components (estimated
from MediaPipe's iris landmarks, see ``benchmarks/estimate_blendshape_basis.py``) move those
vertices while the lids around them hold still. Warped along that mesh, an iris does not slide:
its middle moves and its rim stays, so it smears. Measured on a portrait, a +0.5 step of
sideways gaze moved the model's iris centre by 0.1 eye widths, but MediaPipe found the warped
picture's iris moved by 0.03. So a warp of the picture renders the face looking as far sideways
as the source does and slides each iris disc inside its eye opening by how far the model moves
the iris centre (:mod:`facereenact.warp.gaze`).

Looking up or down stays with the mesh: there the lids move with the iris (the upper lid
follows it, and MediaPipe reads a look down partly as a closing eye), and holding the eyeballs
while sliding their irises made blinks read weaker (blink amplitude 0.54 → 0.44 over 32 pairs).

MediaPipe's iris landmarks (a centre and four rim points per eye) are bound to the grid by the
same placement on the mean face as the blendshape components were estimated with.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from facereenact.face3d.blendshapes import CHANNEL_NAMES
from facereenact.face3d.expression_basis import load_mediapipe_on_mean_face
from facereenact.face3d.morphable import MorphableModel, landmark_weights, project
from facereenact.face3d.params import N_EXPRESSION, N_SHAPE, FaceParams

#: Per eye (the subject's right, then left), MediaPipe's iris centre and its four rim points.
IRISES = ((468, 469, 470, 471, 472), (473, 474, 475, 476, 477))
#: Per eye, the eye's outline in the 68 landmarks (the same order as :data:`IRISES`).
EYE_OUTLINES = (tuple(range(36, 42)), tuple(range(42, 48)))
#: The gaze scores of looking sideways, which the irises slide for.
SIDEWAYS = ("eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight")


@lru_cache(maxsize=1)
def _irises_on_mean_face() -> np.ndarray:
    """(10, 3) the iris landmarks on the mean face, read once: a source video binds its irises
    batch by batch."""
    return np.asarray(load_mediapipe_on_mean_face(), np.float64)[np.array(IRISES).ravel()]


class IrisModel:
    """The irises' points (2 eyes × 5) bound to the mesh's surface."""

    def __init__(self, model: MorphableModel):
        weights = landmark_weights(_irises_on_mean_face(), model.mean.double().cpu().numpy(), model.triangles.cpu().numpy())
        self.bound = torch.from_numpy(weights).to(model.mean)  # (10, N)
        self.sideways = torch.tensor([name in SIDEWAYS for name in CHANNEL_NAMES], device=model.mean.device)
        self.sideways_basis = model.basis[:, N_SHAPE + N_EXPRESSION + torch.nonzero(self.sideways).flatten()]  # (N·3, 4)

    def points(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, 2, 5, 3) each eye's iris centre and rim points on posed ``vertices`` (B, N, 3)."""
        return torch.einsum("pn,bnc->bpc", self.bound, vertices).view(-1, 2, 5, 3)

    def looking_ahead(self, targets: FaceParams, sources: FaceParams) -> FaceParams:
        """``targets`` looking as far sideways as ``sources`` (B or 1) do."""
        held = torch.where(self.sideways, sources.blendshapes.expand_as(targets.blendshapes), targets.blendshapes)
        return targets.replace(blendshapes=held.contiguous())

    def sideways_motion(self, targets: FaceParams, sources: FaceParams) -> torch.Tensor:
        """(B, N, 3) how far looking sideways as ``targets`` do rather than as ``sources`` (B or
        1) do moves each posed vertex (picture pixels): the vertices of ``targets`` less this are
        those of :meth:`looking_ahead`'s faces, for a fraction of building them."""
        change = (targets.blendshapes - sources.blendshapes.expand_as(targets.blendshapes))[:, self.sideways]  # (B, 4)
        offsets = (change @ self.sideways_basis.T).view(len(change), -1, 3)
        return project(offsets, targets.replace(translation=torch.zeros_like(targets.translation)))
