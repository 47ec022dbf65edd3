"""An expression basis for the 64×64 grid model, estimated from video.

Why this exists: the grid asset ``3ddfa/Model_PAF.pkl`` ships a defective expression basis (a
copy of identity columns at a scale where the regressor's coefficients move vertices by ~1e-7
of the face), and the dense BFM expression basis is not available. The regressor still
predicts meaningful expression coefficients, so the basis is re-estimated from what those
coefficients do to 2D landmarks in real footage:

1. per landmark, a robust ridge least-squares fit of ``target - P_f(L0 + S·a_shp)`` against
   ``P_f(offset + B·a_exp)`` over many frames with known pose ``P_f`` (:func:`estimate_landmark_basis`);
2. a thin-plate-spline spread of the 68 landmark displacements to every grid vertex, in the
   frontal plane of the mean face with the mouth cut open (so that lips can part) and the upper
   face and border anchored (:func:`extend_to_grid`).

The result (:func:`load_expression_basis`) has the layout of ``MorphableModel.basis``'s
expression columns: (4096·3, 10), rows vertex-major (x, y, z of vertex 0 first), model units.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facereenact.face3d.params import N_EXPRESSION
from facereenact.face3d.regressor import _BLOCKS, INPUT_SIZE, FaceRegressor

N_LANDMARKS = 68
N_GRID_VERTICES = 64 * 64
#: The basis shipped with the package (a derived model, estimated by
#: ``benchmarks/estimate_expression_basis.py``).
DEFAULT_BASIS_PATH = Path(__file__).resolve().parent / "data" / "grid_expression_basis.safetensors"

# iBUG-68 groups.
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)
UPPER_INNER_LIP = np.array([61, 62, 63])
LOWER_INNER_LIP = np.array([67, 66, 65])


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
    info: dict[str, float] = field(default_factory=dict)


def estimate_landmark_basis(
    residual: np.ndarray,
    rows: np.ndarray,
    expression: np.ndarray,
    nuisance: np.ndarray | None = None,
    ridge: float = 1e-3,
    depth_ridge: float = 1e-1,
    iterations: int = 5,
    huber: float = 1.5,
) -> LandmarkBasisFit:
    """Per landmark k, solve ``residual[f, k] ≈ rows[f] @ (offset_k + B_k @ a_f + N_k @ n_f)``.

    ``residual`` (F, 68, 2): target landmarks minus our neutral-expression landmarks, divided by
    each frame's scale (model units); ``rows`` (F, 2, 3): :func:`projection_rows`; ``expression``
    (F, 10): the regressor's coefficients; ``nuisance`` (F, Q): other per-frame regressors (pose)
    whose effect should not leak into B.

    Why this form: for fixed pose the model is linear in the unknowns, so each landmark is a small
    (3·(1+10+Q))-unknown least-squares problem. Ridge: coefficients are standardised first and
    ``ridge`` (x, y) or ``depth_ridge`` (z, seen only through head rotation) times the total
    weight is added per unknown, so the penalty is independent of the number of frames. Robust:
    iteratively reweighted (Huber at ``huber`` × the landmark's robust residual scale), since
    reference landmarks sometimes fail outright (occlusion, blur).
    """
    residual = np.asarray(residual, np.float64)
    rows = np.asarray(rows, np.float64)
    alpha = np.asarray(expression, np.float64)
    n_frames, n_landmarks = residual.shape[:2]
    extra = np.zeros((n_frames, 0)) if nuisance is None else np.asarray(nuisance, np.float64).reshape(n_frames, -1)
    regressors = np.concatenate([alpha, extra], axis=1)
    centre = regressors.mean(0)
    spread = regressors.std(0)
    spread = np.where(spread > 1e-12, spread, 1.0)
    z = np.concatenate([np.ones((n_frames, 1)), (regressors - centre) / spread], axis=1)  # (F, P)
    p = z.shape[1]
    # Unknowns per landmark: X (3, P), vectorised column-major: vec(X)[3j + c] = X[c, j].
    # rows_f @ X @ z_f = kron(z_f, rows_f) @ vec(X).
    design = np.einsum("fj,frc->frjc", z, rows).reshape(n_frames, 2, 3 * p)  # (F, 2, 3P)
    penalty = np.zeros(3 * p)
    for j in range(1, p):
        penalty[3 * j : 3 * j + 2] = ridge
        penalty[3 * j + 2] = depth_ridge
    penalty[2] = depth_ridge * 1e-3  # the intercept's depth: barely observed, keep it finite
    solutions = np.zeros((n_landmarks, 3 * p))
    scales = np.zeros(n_landmarks)
    weights = np.ones((n_frames, n_landmarks))
    gram = np.einsum("fai,faj->fij", design, design)  # (F, 3P, 3P)
    for _ in range(max(1, iterations)):
        for k in range(n_landmarks):
            w = weights[:, k]
            normal = np.einsum("f,fij->ij", w, gram)
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
    offset = x[:, :, 0] - slopes @ centre  # the intercept at zero coefficients
    n_exp = alpha.shape[1]
    basis = slopes[:, :, :n_exp].reshape(n_landmarks * 3, n_exp)
    return LandmarkBasisFit(
        offset=offset,
        basis=basis,
        nuisance=slopes[:, :, n_exp:],
        scale=scales,
        frames=n_frames,
        info={"ridge": ridge, "depth_ridge": depth_ridge, "huber": huber, "iterations": iterations},
    )
