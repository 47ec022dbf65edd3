"""The 3D Morphable Model: parameters → vertices, 68 landmarks, and the identity-matched rebuild.

Two meshes are supported. The default is the 64×64 grid model from ``3ddfa/Model_PAF.pkl``
(the BFM identity basis at 4,096 face vertices; two triangles per grid cell, dropping the
stretched cells at the border). That file's expression basis is defective, so the grid model
uses an expression basis estimated from video, shipped with the package, and blendshape
components (eyelids, gaze, brows, mouth corners driven by MediaPipe's scores) estimated the
same way. When a user supplies the dense ``3ddfa/bfm_noneck_v3.pkl`` it is used
instead. Both give a mesh whose vertices carry an NCC colour (normalised mean-face position), so
PNCC renders of either mesh are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from facereenact.errors import AssetError
from facereenact.face3d.blendshapes import N_BLENDSHAPES
from facereenact.face3d.expression_basis import (
    load_blendshape_basis,
    load_expression_basis,
    load_landmark_expression_basis,
    mouth_gap_triangles,
)
from facereenact.face3d.params import N_EXPRESSION, N_SHAPE, FaceParams
from facereenact.io.assets import Assets

N_LANDMARKS = 68
GRID = 64
#: Grid cells with an edge longer than this multiple of the median edge lie outside the face.
_MAX_EDGE_RATIO = 3.0


@dataclass
class MorphableModel:
    """Linear face model. Shapes: mean (N, 3); basis (N·3, 50 + K) = 40 identity, 10 expression
    and K blendshape columns, rows vertex-major (x, y, z of vertex 0 first); triangles (F, 3) wound
    counter-clockwise when seen from the front; ncc (N, 3) in [0, 1]; landmark_mean (68, 3);
    landmark_basis (68·3, 50 + K). A model without blendshape components has zero columns there."""

    mean: torch.Tensor
    basis: torch.Tensor
    triangles: torch.Tensor
    ncc: torch.Tensor
    landmark_mean: torch.Tensor
    landmark_basis: torch.Tensor
    name: str

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    @cached_property
    def has_blendshape_components(self) -> bool:
        """Whether MediaPipe's scores move this model (the grid's estimated components do; the
        dense model has none, and reads the scores without deforming)."""
        components = self.basis[:, N_SHAPE + N_EXPRESSION :]
        return components.numel() > 0 and bool(components.abs().amax() > 0)

    @cached_property
    def mouth_gap(self) -> torch.Tensor:
        """(F,) bool: the triangles bridging the lips of the mean face, which an opening mouth
        stretches across the gap. Computed once per model: every warp (one per training sample
        in the loader workers) needs it."""
        mask = mouth_gap_triangles(self.mean.cpu().numpy(), self.triangles.cpu().numpy(), self.landmark_mean.cpu().numpy())
        return torch.from_numpy(mask).to(self.triangles.device)

    def to(self, device: torch.device | str) -> MorphableModel:
        return MorphableModel(
            mean=self.mean.to(device),
            basis=self.basis.to(device),
            triangles=self.triangles.to(device),
            ncc=self.ncc.to(device),
            landmark_mean=self.landmark_mean.to(device),
            landmark_basis=self.landmark_basis.to(device),
            name=self.name,
        )

    # ---- geometry -------------------------------------------------------------------------
    def model_space(self, shape: torch.Tensor, expression: torch.Tensor, blendshapes: torch.Tensor | None = None) -> torch.Tensor:
        """Unposed vertices (B, N, 3) for identity (B, 40), expression (B, 10) and blendshape
        (B, K) coefficients (none: the face at zero blendshapes)."""
        return self.mean + _combine(self.basis, shape, expression, blendshapes).view(-1, self.n_vertices, 3)

    def vertices(self, params: FaceParams, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Posed vertices (B, N, 3) in image pixels; z is depth, larger nearer the camera.
        ``offsets`` (B or 1, N, 3) are added in model space first (a face's own correction)."""
        surface = self.model_space(params.shape, params.expression, params.blendshapes)
        return project(surface if offsets is None else surface + offsets, params)

    def model_space_landmarks(self, shape: torch.Tensor, expression: torch.Tensor, blendshapes: torch.Tensor | None = None) -> torch.Tensor:
        """Unposed 68 landmarks (B, 68, 3), without building the whole mesh."""
        return self.landmark_mean + _combine(self.landmark_basis, shape, expression, blendshapes).view(-1, N_LANDMARKS, 3)

    def landmarks(self, params: FaceParams) -> torch.Tensor:
        """The 68 landmarks (B, 68, 3) in image pixels, without building the whole mesh."""
        return project(self.model_space_landmarks(params.shape, params.expression, params.blendshapes), params)

    def identity_matched_vertices(self, source: FaceParams, driving: FaceParams) -> torch.Tensor:
        """The driving faces rebuilt with the source identity: (B, N, 3) image-space vertices.

        ``source`` has batch 1 (broadcast) or B; the driving person's own shape is discarded, so
        nothing of the driving identity reaches what is rendered from these vertices.
        """
        return self.vertices(identity_matched(source, driving))


def _combine(basis: torch.Tensor, shape: torch.Tensor, expression: torch.Tensor, blendshapes: torch.Tensor | None) -> torch.Tensor:
    """The offsets ``basis @ [shape, expression, blendshapes]`` (B, rows); the blendshape columns
    are skipped when there are none, or no scores."""
    fixed = shape.shape[-1] + expression.shape[-1]
    offsets = torch.cat([shape, expression], dim=-1) @ basis[:, :fixed].T
    if blendshapes is not None and basis.shape[1] > fixed:
        offsets = offsets + blendshapes @ basis[:, fixed:].T
    return offsets


def identity_matched(source: FaceParams, driving: FaceParams) -> FaceParams:
    """Parameters with the SOURCE identity and the DRIVING pose and expression."""
    return driving.replace(shape=source.shape.expand_as(driving.shape).clone())


def project(points: torch.Tensor, params: FaceParams) -> torch.Tensor:
    """Model-space points (B, N, 3) → image space with the convention of :mod:`params`."""
    rotated = points @ params.rotation.transpose(-1, -2) * params.scale[:, None, None]
    flip = torch.tensor([1.0, -1.0, 1.0], dtype=points.dtype, device=points.device)
    offset = torch.cat([params.translation, torch.zeros_like(params.translation[:, :1])], dim=-1)
    return rotated * flip + offset[:, None, :]


# ---- loading ------------------------------------------------------------------------------
def load_morphable_model(assets: Assets, prefer_dense: bool = True, blendshapes: bool = True) -> MorphableModel:
    """The dense model when ``bfm_noneck_v3.pkl`` is present (and preferred), else the grid model.
    ``blendshapes=False``: the grid model without its blendshape components (zero columns), as
    the script that estimates them needs it."""
    if prefer_dense and assets.has("3ddfa/bfm_noneck_v3.pkl"):
        return _load_dense(assets)
    return _load_grid(assets, blendshapes)


def _dense_mean_face(assets: Assets) -> np.ndarray:
    """The dense BFM mean face (53215, 3), mean identity plus mean expression."""
    u = assets.load_npy("3ddfa/u_shp.npy") + assets.load_npy("3ddfa/u_exp.npy")
    return u.reshape(3, -1, order="F").T.astype(np.float64)


def _dense_landmark_vertices(assets: Assets) -> np.ndarray:
    keypoints = assets.load_npy("3ddfa/keypoints_sim.npy").astype(np.int64)
    return keypoints[::3] // 3


def _ncc_bounds(assets: Assets) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis min and max of the neck-free mean face: the normalisation of the NCC code."""
    face = _dense_mean_face(assets)[assets.load_npy("3ddfa/indices.npy").astype(np.int64)]
    return face.min(0), face.max(0)


def grid_triangles(mean: np.ndarray, max_edge_ratio: float = _MAX_EDGE_RATIO) -> np.ndarray:
    """Two triangles per cell of the 64×64 grid, dropping stretched border cells; (F, 3) int64."""
    index = np.arange(GRID * GRID).reshape(GRID, GRID)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    corners = np.stack([a, b, d, c], 1)
    edges = np.linalg.norm(mean[corners] - mean[np.roll(corners, -1, axis=1)], axis=-1)
    diagonal = np.linalg.norm(mean[a] - mean[d], axis=-1)
    typical = np.median(edges)
    keep = (edges.max(1) < max_edge_ratio * typical) & (diagonal < max_edge_ratio * np.sqrt(2) * typical)
    tris = np.concatenate([np.stack([a, b, d], 1)[keep], np.stack([a, d, c], 1)[keep]])
    return _wind_front_counter_clockwise(tris, mean)


def _wind_front_counter_clockwise(triangles: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Flip triangles whose front-view (x right, y up) winding is clockwise."""
    p = mean[triangles][..., :2]
    signed = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0])
    flipped = triangles.copy()
    flipped[signed < 0] = flipped[signed < 0][:, [0, 2, 1]]
    return flipped


def landmark_weights(points: np.ndarray, mean: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentric weights (K, N) placing each point on the mesh triangle under it (front view).

    The grid has no vertex exactly at the dense model's landmarks; interpolating the bases over
    the triangle below each landmark keeps the landmarks moving with identity and expression.
    """
    corners = mean[triangles]  # (F, 3, 3)
    tri_xy, tri_z = corners[..., :2], corners[..., 2]
    v0 = tri_xy[:, 1] - tri_xy[:, 0]
    v1 = tri_xy[:, 2] - tri_xy[:, 0]
    det = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    det = np.where(np.abs(det) < 1e-9, 1e-9, det)
    weights = np.zeros((len(points), len(mean)))
    for k, point in enumerate(points[:, :2]):
        v2 = point - tri_xy[:, 0]
        w1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / det
        w2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / det
        bary = np.stack([1 - w1 - w2, w1, w2], 1)
        outside = np.clip(-bary, 0, None).sum(1)  # 0 inside; distance-like outside
        # Among containing triangles take the one nearest in depth; else the least-outside one.
        depth_gap = np.abs((bary * tri_z).sum(1) - points[k, 2])
        score = outside * 1e9 + depth_gap
        best = int(np.argmin(score))
        bary_best = np.clip(bary[best], 0, None)
        weights[k, triangles[best]] = bary_best / bary_best.sum()
    return weights


def _to_model(
    mean: np.ndarray,
    shape_basis: np.ndarray,
    expression_basis: np.ndarray,
    triangles: np.ndarray,
    ncc: np.ndarray,
    landmark_interp: np.ndarray,
    landmark_positions: np.ndarray,
    name: str,
    blendshape_basis: np.ndarray | None = None,
) -> MorphableModel:
    if blendshape_basis is None:
        blendshape_basis = np.zeros((len(mean) * 3, N_BLENDSHAPES))
    basis = np.concatenate([shape_basis[:, :N_SHAPE], expression_basis[:, :N_EXPRESSION], blendshape_basis], axis=1)
    n = len(mean)
    basis_per_vertex = basis.reshape(n, 3, -1)
    landmark_basis = np.einsum("kn,ncj->kcj", landmark_interp, basis_per_vertex).reshape(N_LANDMARKS * 3, -1)
    as_tensor = lambda a, dtype=torch.float32: torch.from_numpy(np.ascontiguousarray(a)).to(dtype)  # noqa: E731
    return MorphableModel(
        mean=as_tensor(mean),
        basis=as_tensor(basis),
        triangles=as_tensor(triangles, torch.int64),
        ncc=as_tensor(np.clip(ncc, 0.0, 1.0)),
        landmark_mean=as_tensor(landmark_positions),
        landmark_basis=as_tensor(landmark_basis),
        name=name,
    )


def expression_basis_is_defective(shape_basis: np.ndarray, expression_basis: np.ndarray) -> bool:
    """True when the expression columns merely repeat identity columns: the case of the grid
    asset ``Model_PAF.pkl``, whose expression columns move vertices by ~1e-7 of the face."""
    n = min(expression_basis.shape[1], shape_basis.shape[1], N_EXPRESSION)
    return bool(np.allclose(expression_basis[:, :n], shape_basis[:, :n]))


def _load_grid(assets: Assets, blendshapes: bool) -> MorphableModel:
    data = assets.load_pickle("3ddfa/Model_PAF.pkl")
    try:
        mean = np.asarray(data["mu_filter"], np.float64).reshape(3, -1, order="F").T
        shape_basis = np.asarray(data["w_filter"], np.float64)
        expression_basis = np.asarray(data["w_exp_filter"], np.float64)
    except (KeyError, TypeError, ValueError) as error:
        raise AssetError(f"3ddfa/Model_PAF.pkl does not hold the grid model ({error})") from None
    if mean.shape != (GRID * GRID, 3) or shape_basis.shape[1] < N_SHAPE or expression_basis.shape[1] < N_EXPRESSION:
        raise AssetError("3ddfa/Model_PAF.pkl has unexpected array shapes")
    landmark_expression = None
    blendshape_basis = None
    name = "grid64"
    if expression_basis_is_defective(shape_basis, expression_basis):
        # The asset's expression columns do nothing; use the basis estimated from video that
        # ships with the package (see face3d/expression_basis.py for how it was made).
        try:
            expression_basis = load_expression_basis().astype(np.float64)
            landmark_expression = load_landmark_expression_basis().astype(np.float64)
            blendshape_basis = load_blendshape_basis().astype(np.float64) if blendshapes else None
        except (OSError, ValueError) as error:
            raise AssetError(f"the estimated expression basis could not be read: {error}") from None
        name = "grid64 + estimated expressions and blendshapes"
    triangles = grid_triangles(mean)
    low, high = _ncc_bounds(assets)
    dense_landmarks = _dense_mean_face(assets)[_dense_landmark_vertices(assets)]
    interp = landmark_weights(dense_landmarks, mean, triangles)
    model = _to_model(mean, shape_basis, expression_basis, triangles, (mean - low) / (high - low), interp, dense_landmarks, name, blendshape_basis)
    if landmark_expression is not None:
        # Read the landmarks from their own side of the lips (the grid's triangles span the
        # mouth, so interpolating over them would part the lips only partly).
        model.landmark_basis[:, N_SHAPE : N_SHAPE + N_EXPRESSION] = torch.from_numpy(landmark_expression).float()
    return model


def _load_dense(assets: Assets) -> MorphableModel:
    data = assets.load_pickle("3ddfa/bfm_noneck_v3.pkl")
    try:
        mean = np.asarray(data["u"], np.float64).reshape(3, -1, order="F").T
        shape_basis = np.asarray(data["w_shp"], np.float64)
        expression_basis = np.asarray(data["w_exp"], np.float64)
        triangles = np.asarray(data["tri"], np.int64)
        keypoints = np.asarray(data["keypoints"], np.int64).ravel()
    except (KeyError, TypeError, ValueError) as error:
        raise AssetError(f"3ddfa/bfm_noneck_v3.pkl does not hold a dense model ({error})") from None
    if triangles.shape[0] == 3 and triangles.shape[1] != 3:
        triangles = triangles.T
    n = len(mean)
    if shape_basis.shape[0] != 3 * n or expression_basis.shape[0] != 3 * n or len(keypoints) != 3 * N_LANDMARKS:
        raise AssetError("3ddfa/bfm_noneck_v3.pkl has unexpected array shapes")
    triangles = _wind_front_counter_clockwise(triangles, mean)
    ncc = (mean - mean.min(0)) / (mean.max(0) - mean.min(0))
    landmark_vertices = keypoints[::3] // 3
    interp = np.zeros((N_LANDMARKS, n))
    interp[np.arange(N_LANDMARKS), landmark_vertices] = 1.0
    return _to_model(mean, shape_basis, expression_basis, triangles, ncc, interp, mean[landmark_vertices], "bfm_noneck_v3")
