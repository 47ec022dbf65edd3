"""How the grid model's expression basis was estimated from video (research code, not used at
run time: the package ships the result and loads it with
:func:`facereenact.face3d.expression_basis.load_expression_basis`).

1. per landmark, a robust ridge least-squares fit of ``target - P_f(L0 + S·a_shp)`` against
   ``P_f(offset + B·a_exp)`` over many frames with known pose ``P_f`` (:func:`estimate_landmark_basis`);
2. a smooth spread of the 68 landmark displacements to every grid vertex: a discrete thin plate
   (squared Laplacian) over the 64×64 lattice, which is regular in the mean face's frontal plane,
   with the lattice edges across the lips cut (so that the lips can part), lip landmarks read
   from their own side of the mouth, and the upper forehead and the sides anchored
   (:func:`extend_to_grid`).

Which target: the regressor's own auxiliary head ``fc_lm`` (:func:`regressor_landmarks`) gives
the 3DMM's 68 landmarks as the network learned them, real expression basis included, so fitting
to it recovers the geometric meaning of the coefficients; dlib's independent landmarks validate
it (``estimate_expression_basis.py`` prints both).
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facereenact.face3d.expression_basis import (
    BROWS,
    GRID_KEY,
    LANDMARK_KEY,
    MOUTH,
    N_GRID_VERTICES,
    N_LANDMARKS,
    crosses_lip_line,
    lip_line,
)
from facereenact.face3d.params import N_EXPRESSION
from facereenact.face3d.regressor import _BLOCKS, INPUT_SIZE, FaceRegressor


# ---- the regressor's auxiliary landmark head ------------------------------------------------------
@torch.inference_mode()
def regressor_landmarks(regressor: FaceRegressor, crops_rgb: np.ndarray, batch: int = 256) -> torch.Tensor:
    """The raw ``fc_lm`` output (B, 136) for 120×120 RGB crops.

    3DDFA_V2 ships this head unused. It gives 68 landmarks in the crop as 68 x then 68 y values,
    normalised ``(c - 60) / 60`` with y pointing down (see :func:`fc_lm_to_image`). Being trained
    together with the 3DMM head, its points follow the 3DMM landmark definition, including the
    real expression basis' effect, which makes them a useful target for estimating that basis.
    """
    net = regressor.net
    outputs = []
    for start in range(0, len(crops_rgb), batch):
        x = torch.from_numpy(np.ascontiguousarray(crops_rgb[start : start + batch, ..., ::-1])).to(regressor.device)
        x = (x.permute(0, 3, 1, 2).float() - 127.5) / 128.0
        x = F.relu(net.bn1(net.conv1(x)))
        for name, _, _ in _BLOCKS:
            x = getattr(net, name)(x)
        outputs.append(net.fc_lm(x.mean(dim=(2, 3))).cpu())
    return torch.cat(outputs) if outputs else torch.zeros(0, 2 * N_LANDMARKS)


def fc_lm_to_image(raw: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``fc_lm`` output (B, 136) and crop boxes (B, 4) → 68 image-pixel landmarks (B, 68, 2)."""
    raw = np.asarray(raw, np.float64)
    boxes = np.asarray(boxes, np.float64)
    crop = raw.reshape(-1, 2, N_LANDMARKS) * (INPUT_SIZE / 2) + INPUT_SIZE / 2  # (B, 2, 68), crop px
    size = boxes[:, 2:] - boxes[:, :2]  # (B, 2)
    return crop.transpose(0, 2, 1) * (size / INPUT_SIZE)[:, None, :] + boxes[:, None, :2]


# ---- step 1: landmark basis by robust ridge least squares ------------------------------------------
def projection_rows(rotation: np.ndarray) -> np.ndarray:
    """The scale-free image projection (F, 2, 3) of model-space offsets: rows ``r1`` and ``-r2``.

    With params' convention ``x = s·r1·m + tx``, ``y = -s·r2·m + ty``, an offset ``d`` added to a
    model point moves its image by ``s · rows @ d``; dividing pixel residuals by ``s`` puts every
    frame in model units, so faces of any size count alike.
    """
    rotation = np.asarray(rotation, np.float64)
    return np.stack([rotation[:, 0], -rotation[:, 1]], axis=1)


@dataclass
class LandmarkBasisFit:
    """Result of :func:`estimate_landmark_basis` (model units).

    ``offset`` (68, 3): what the target's landmark definition adds to ours at zero expression
    (``a_exp = 0``, not at the mean expression); ``basis`` (68·3, 10): rows landmark-major like
    ``MorphableModel.landmark_basis``; ``nuisance`` (68, 3, Q): per-landmark responses to the
    nuisance regressors (e.g. pose), not part of the expression model; ``scale`` (68,): robust
    residual scale per landmark after the fit; ``frames``: how many frames were used.
    """

    offset: np.ndarray
    basis: np.ndarray
    nuisance: np.ndarray
    scale: np.ndarray
    frames: int
    info: dict[str, float | None] = field(default_factory=dict)


def estimate_landmark_basis(
    residual: np.ndarray,
    rows: np.ndarray,
    expression: np.ndarray,
    nuisance: np.ndarray | None = None,
    ridge: float = 1e-3,
    depth_ridge: float = 1e-1,
    offset_ridge: float | None = None,
    iterations: int = 5,
    huber: float = 1.5,
    standardise: bool = True,
) -> LandmarkBasisFit:
    """Per landmark k, solve ``residual[f, k] ≈ rows[f] @ (offset_k + B_k @ a_f + N_k @ n_f)``.

    ``residual`` (F, 68, 2): target landmarks minus our neutral-expression landmarks, divided by
    each frame's scale (model units); ``rows`` (F, 2, 3): :func:`projection_rows`; ``expression``
    (F, 10): the regressor's coefficients; ``nuisance`` (F, Q): other per-frame regressors (pose)
    whose effect should not leak into B.

    Why this form: for fixed pose the model is linear in the unknowns, so each landmark is a small
    (3·(1+10+Q))-unknown least-squares problem. Ridge: coefficients are standardised first and
    ``ridge`` (x, y) or ``depth_ridge`` (z, seen only through head rotation) times the total
    weight is added per unknown, so the penalty is independent of the number of frames. The
    offset is free unless ``offset_ridge`` is given: a large value forces the expression basis to
    explain the target alone (what a mesh without a landmark offset will do). Robust:
    iteratively reweighted (Huber at ``huber`` × the landmark's robust residual scale), since
    reference landmarks sometimes fail outright (occlusion, blur). ``standardise=False`` puts the
    ridge on the raw slopes instead: right for regressors on one common scale (scores in [0, 1]),
    where a rarely active one must get a small response, not its noise divided by a tiny spread.
    """
    residual = np.asarray(residual, np.float64)
    rows = np.asarray(rows, np.float64)
    alpha = np.asarray(expression, np.float64)
    n_frames, n_landmarks = residual.shape[:2]
    extra = np.zeros((n_frames, 0)) if nuisance is None else np.asarray(nuisance, np.float64).reshape(n_frames, -1)
    regressors = np.concatenate([alpha, extra], axis=1)
    spread = regressors.std(0) if standardise else np.ones(regressors.shape[1])
    spread = np.where(spread > 1e-12, spread, 1.0)
    # Scaled, not centred: the intercept is then the offset at zero coefficients, which is what
    # ``offset_ridge`` shrinks (with a free intercept, centring would not change the slopes).
    z = np.concatenate([np.ones((n_frames, 1)), regressors / spread], axis=1)  # (F, P)
    p = z.shape[1]
    # Unknowns per landmark: X (3, P), vectorised column-major: vec(X)[3j + c] = X[c, j].
    # rows_f @ X @ z_f = kron(z_f, rows_f) @ vec(X).
    design = np.einsum("fj,frc->frjc", z, rows).reshape(n_frames, 2, 3 * p)  # (F, 2, 3P)
    penalty = np.zeros(3 * p)
    for j in range(1, p):
        penalty[3 * j : 3 * j + 2] = ridge
        penalty[3 * j + 2] = depth_ridge
    penalty[2] = depth_ridge * 1e-3  # the intercept's depth: barely observed, keep it finite
    if offset_ridge is not None:
        penalty[:3] = offset_ridge
    solutions = np.zeros((n_landmarks, 3 * p))
    scales = np.zeros(n_landmarks)
    weights = np.ones((n_frames, n_landmarks))
    gram = np.einsum("fai,faj->fij", design, design)  # (F, 3P, 3P)
    for _ in range(max(1, iterations)):
        for k in range(n_landmarks):
            w = weights[:, k]
            normal = np.tensordot(w, gram, axes=1)  # BLAS; einsum's own loop is ~50× slower here
            rhs = np.einsum("f,fai,fa->i", w, design, residual[:, k])
            total = w.sum()
            solutions[k] = np.linalg.solve(normal + np.diag(penalty * total), rhs)
        fitted = np.einsum("fai,ki->fka", design, solutions)
        error = np.linalg.norm(residual - fitted, axis=-1)  # (F, 68)
        scales = 1.4826 * np.median(error, axis=0) + 1e-12
        threshold = huber * scales
        weights = np.where(error <= threshold, 1.0, threshold / np.maximum(error, 1e-12))
    x = solutions.reshape(n_landmarks, p, 3).transpose(0, 2, 1)  # (68, 3, P)
    slopes = x[:, :, 1:] / spread  # back to raw coefficient units
    offset = x[:, :, 0]  # at zero coefficients
    n_exp = alpha.shape[1]
    basis = slopes[:, :, :n_exp].reshape(n_landmarks * 3, n_exp)
    return LandmarkBasisFit(
        offset=offset,
        basis=basis,
        nuisance=slopes[:, :, n_exp:],
        scale=scales,
        frames=n_frames,
        info={"ridge": ridge, "depth_ridge": depth_ridge, "offset_ridge": offset_ridge, "huber": huber, "iterations": iterations},
    )


def grid_edges(grid: int = 64) -> np.ndarray:
    """The 4-neighbour edges (E, 2) of a ``grid``×``grid`` lattice (index = row·grid + col)."""
    index = np.arange(grid * grid).reshape(grid, grid)
    return np.concatenate([
        np.stack([index[:-1, :].ravel(), index[1:, :].ravel()], 1),
        np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], 1),
    ])  # fmt: skip


UPPER_LIP = np.array([49, 50, 51, 52, 53, 61, 62, 63])


LOWER_LIP = np.array([55, 56, 57, 58, 59, 65, 66, 67])


def above_lip_line(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(N,) +1 where a frontal point lies above the lips' contact line, -1 below, 0 beyond the
    mouth corners (where the lips are joined and no side applies)."""
    line = lip_line(landmarks)
    p = np.asarray(points, np.float64)[:, :2]
    inside = (p[:, 0] > line[0, 0]) & (p[:, 0] < line[-1, 0])
    height = np.interp(p[:, 0], line[:, 0], line[:, 1])
    return np.where(inside, np.where(p[:, 1] > height, 1, -1), 0)


def cut_aware_weights(landmark_weights: np.ndarray, mean: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Landmark weights (68, N) with lip landmarks read only from their own side of the mouth.

    The grid's spacing (~4 mm) is coarser than the closed mouth's inner-lip gap (~3 mm), so the
    triangle under an inner-lip landmark often has a vertex of the other lip; read through it, an
    upper-lip landmark would follow the jaw. Dropping the other side's vertices (and
    renormalising) lets the lips part cleanly; other landmarks are unchanged.
    """
    weights = np.array(landmark_weights, np.float64, copy=True)
    side = above_lip_line(mean, landmarks)
    for group, own in ((UPPER_LIP, 1), (LOWER_LIP, -1)):
        for k in group:
            row = weights[k]
            wrong = (row > 0) & (side == -own)
            if wrong.any() and row[~wrong].sum() > 1e-6:
                row[wrong] = 0.0
                weights[k] = row / row.sum()
    return weights


def default_anchors(mean: np.ndarray, landmarks: np.ndarray, forehead: float = 0.35, side_margin: float = 0.04) -> np.ndarray:
    """Grid vertices (bool mask) held still: the upper forehead and the sides beyond the jaw's
    ends, above the mouth. Why: 10 expression coefficients fitted on 2D landmarks say nothing
    about the scalp or the ears, and a smooth spread would otherwise drag them along.

    ``forehead``: the fraction of the brow-to-top height above which the forehead is fixed;
    ``side_margin``: the margin outside the outermost jaw landmarks (0 and 16), as a fraction of
    the face width.
    """
    mean = np.asarray(mean, np.float64)
    p = np.asarray(landmarks, np.float64)
    top, brow = mean[:, 1].max(), p[BROWS, 1].max()
    width = mean[:, 0].max() - mean[:, 0].min()
    above = mean[:, 1] > brow + forehead * (top - brow)
    outside = (mean[:, 0] < p[0, 0] - side_margin * width) | (mean[:, 0] > p[16, 0] + side_margin * width)
    return above | (outside & (mean[:, 1] > p[MOUTH, 1].max()))


def extend_to_grid(
    landmark_basis: np.ndarray,
    landmark_weights: np.ndarray,
    mean: np.ndarray,
    landmarks: np.ndarray,
    anchors: np.ndarray | None = None,
    fit_weight: float = 1e3,
    grid: int = 64,
) -> np.ndarray:
    """Spread a landmark basis (L·3, K) over the grid: (N·3, K), rows vertex-major.

    Minimises the squared graph Laplacian of each displacement field over the grid lattice (a
    discrete thin plate, so displacements fade smoothly away from the landmarks) plus
    ``fit_weight`` × the squared miss of the landmarks, each read off the grid through
    ``landmark_weights`` (L, N): barycentric weights on the grid, best the morphable model's
    own passed through :func:`cut_aware_weights`. Two things make it a face rather than a
    rubber sheet: lattice edges that cross the lips' contact line are removed (the lips part
    independently; an uncut sheet must bend steeply between them and overshoots the lower lip
    by ~3 mm at a wide-open mouth), and the ``anchors`` (default :func:`default_anchors`) are
    held at zero.
    """
    mean = np.asarray(mean, np.float64)
    n = len(mean)
    basis = np.asarray(landmark_basis, np.float64)
    k = basis.shape[1]
    targets = basis.reshape(-1, 3 * k)
    weights = np.asarray(landmark_weights, np.float64)
    if anchors is None:
        anchors = default_anchors(mean, landmarks)
    # (N, 3K) with column c·K + j → rows 3v + c, columns j: vertex-major like MorphableModel.basis.
    return _smooth_fill(weights, targets, mean, landmarks, anchors, fit_weight, grid).reshape(n * 3, k)


def _smooth_fill(
    weights: np.ndarray,
    targets: np.ndarray,
    mean: np.ndarray,
    landmarks: np.ndarray,
    anchors: np.ndarray,
    fit_weight: float,
    grid: int,
) -> np.ndarray:
    from scipy import sparse
    from scipy.sparse.linalg import splu

    n = len(mean)
    edges = grid_edges(grid)
    keep = ~crosses_lip_line(mean[edges[:, 0], :2], mean[edges[:, 1], :2], landmarks)
    edges = edges[keep]
    adjacency = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    adjacency = (adjacency + adjacency.T).tocsr()
    laplacian = sparse.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency
    w = sparse.csr_matrix(weights)
    system = (laplacian.T @ laplacian + fit_weight * (w.T @ w)).tocsc()
    rhs = fit_weight * (w.T @ targets)
    free = np.flatnonzero(~anchors)
    solution = np.zeros((n, targets.shape[1]))
    solution[free] = splu(system[free][:, free].tocsc()).solve(np.asarray(rhs[free]))
    return solution


def save_expression_basis(
    path: str | Path,
    grid_basis: np.ndarray,
    landmark_basis: np.ndarray,
    metadata: dict[str, object],
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write the bases (float32) and provenance to a safetensors file.

    ``metadata`` values are stored as strings (JSON for non-strings); a ``date`` is added.
    """
    from safetensors.numpy import save_file

    grid_basis = np.asarray(grid_basis, np.float32)
    landmark_basis = np.asarray(landmark_basis, np.float32)
    if grid_basis.shape != (N_GRID_VERTICES * 3, N_EXPRESSION) or landmark_basis.shape != (N_LANDMARKS * 3, N_EXPRESSION):
        raise ValueError(f"unexpected basis shapes {grid_basis.shape}, {landmark_basis.shape}")
    tensors = {GRID_KEY: np.ascontiguousarray(grid_basis), LANDMARK_KEY: np.ascontiguousarray(landmark_basis)}
    for key, value in (extra or {}).items():
        tensors[key] = np.ascontiguousarray(np.asarray(value, np.float32))
    text = {key: value if isinstance(value, str) else json.dumps(value) for key, value in metadata.items()}
    text.setdefault("date", datetime.date.today().isoformat())
    text.setdefault("layout", "rows vertex-major (x, y, z of vertex 0 first), model units; columns = the regressor's 10 expression coefficients")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=text)
