"""The expression basis of the 64×64 grid model: the file the package ships, and the lips' line.

Why it exists: the grid asset ``3ddfa/Model_PAF.pkl`` ships a defective expression basis (a copy
of identity columns at a scale where the regressor's coefficients move vertices by ~1e-7 of the
face). The basis used instead was estimated from video, from what the regressor's 10 expression
coefficients do to 68 landmarks, and spread smoothly over the grid with the lips free to part;
``benchmarks/estimate_expression_basis.py`` makes it (``benchmarks/expression_estimation.py``
holds the method). This module only loads it (:func:`load_expression_basis`: (4096·3, 10), rows
vertex-major like ``MorphableModel.basis``'s expression columns, model units) and finds the
triangles that bridge the lips.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from facereenact.face3d.blendshapes import CHANNEL_NAMES, N_BLENDSHAPES
from facereenact.face3d.params import N_EXPRESSION

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


# ---- the lips ------------------------------------------------------------------------------------
def lip_line(landmarks: np.ndarray) -> np.ndarray:
    """The line where the lips meet (5, 2) in the frontal (x, y) plane: inner corner 60, the
    midpoints of the inner-lip pairs (61, 67), (62, 66), (63, 65), inner corner 64."""
    p = np.asarray(landmarks, np.float64)[:, :2]
    middle = (p[UPPER_INNER_LIP] + p[LOWER_INNER_LIP]) / 2
    return np.concatenate([p[60:61], middle, p[64:65]])


def _segments_cross(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Whether segments a-b (E, 2) cross segment c-d (2,) (proper crossings, vectorised)."""

    def side(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])

    d1, d2 = side(c, d, a), side(c, d, b)
    d3, d4 = side(a, b, c), side(a, b, d)
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def crosses_lip_line(a: np.ndarray, b: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Whether frontal-plane segments a-b (E, 2) cross the lips' contact line."""
    line = lip_line(landmarks)
    cut = np.zeros(len(a), bool)
    for start, end in zip(line[:-1], line[1:], strict=True):
        cut |= _segments_cross(a, b, start, end)
    return cut


def mouth_gap_triangles(mean: np.ndarray, triangles: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Boolean mask (F,) of the triangles that bridge the lips (an edge crosses the contact line).

    The grid mesh has no mouth hole: an opened mouth stretches these triangles across the gap.
    Leaving them out when rendering shows the gap as background instead.
    """
    mean = np.asarray(mean, np.float64)
    tri = np.asarray(triangles, np.int64)
    edges = np.stack([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]], 1).reshape(-1, 2)
    cut = crosses_lip_line(mean[edges[:, 0], :2], mean[edges[:, 1], :2], landmarks)
    # cast: numpy's stub types any(axis) as np.bool | NDArray; over an axis of a 2-D array it is an array.
    return cast(np.ndarray, cut.reshape(-1, 3).any(1))


# ---- storage -------------------------------------------------------------------------------------
GRID_KEY = "expression_basis"
LANDMARK_KEY = "landmark_expression_basis"


def _read(path: str | Path | None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open

    path = Path(path) if path is not None else DEFAULT_BASIS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"expression basis file not found: {path}")
    with safe_open(str(path), framework="numpy") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, dict(file.metadata() or {})


def load_expression_basis(path: str | Path | None = None) -> np.ndarray:
    """The grid expression basis (4096·3, 10) float32, rows vertex-major like ``MorphableModel.basis``."""
    tensors, _ = _read(path)
    basis = tensors[GRID_KEY]
    if basis.shape != (N_GRID_VERTICES * 3, N_EXPRESSION):
        raise ValueError(f"{path}: expression basis has shape {basis.shape}, expected (12288, 10)")
    return basis


def load_landmark_expression_basis(path: str | Path | None = None) -> np.ndarray:
    """The 68-landmark expression basis (68·3, 10) float32, rows landmark-major like
    ``MorphableModel.landmark_basis``'s expression columns. It equals the grid basis read with
    cut-aware weights (see ``benchmarks/expression_estimation.py``); use it for the landmarks so that the inner lips part fully."""
    tensors, _ = _read(path)
    basis = tensors[LANDMARK_KEY]
    if basis.shape != (N_LANDMARKS * 3, N_EXPRESSION):
        raise ValueError(f"{path}: landmark basis has shape {basis.shape}, expected (204, 10)")
    return basis


#: The blendshape components (a derived model, estimated by ``benchmarks/estimate_blendshape_basis.py``).
BLENDSHAPE_BASIS_PATH = DEFAULT_BASIS_PATH.with_name("grid_blendshape_basis.safetensors")
BLENDSHAPE_KEY = "blendshape_basis"


def load_blendshape_basis(path: str | Path | None = None) -> np.ndarray:
    """The grid's blendshape components (4096·3, N_BLENDSHAPES) float32, one column per
    :data:`blendshapes.CHANNEL_NAMES` entry, checked against the names stored with them."""
    path = Path(path) if path is not None else BLENDSHAPE_BASIS_PATH
    tensors, metadata = _read(path)
    basis = tensors[BLENDSHAPE_KEY]
    if basis.shape != (N_GRID_VERTICES * 3, N_BLENDSHAPES) or metadata.get("channels") != ",".join(CHANNEL_NAMES):
        raise ValueError(f"{path}: blendshape basis of shape {basis.shape} does not match this version's channels")
    return basis


#: Where each of MediaPipe's 478 landmarks lies on the mean face (stored with the components).
MEDIAPIPE_KEY = "mediapipe_on_mean_face"


def load_mediapipe_on_mean_face(path: str | Path | None = None) -> np.ndarray:
    """MediaPipe's 478 landmarks placed on the grid's mean face (478, 3) float32, as the
    blendshape components were estimated with them."""
    tensors, _ = _read(Path(path) if path is not None else BLENDSHAPE_BASIS_PATH)
    points = tensors.get(MEDIAPIPE_KEY)
    if points is None:
        raise ValueError(f"{path or BLENDSHAPE_BASIS_PATH}: no {MEDIAPIPE_KEY} in it")
    if points.shape != (478, 3):
        raise ValueError(f"{path or BLENDSHAPE_BASIS_PATH}: MediaPipe's landmarks have shape {points.shape}, expected (478, 3)")
    return points


def expression_basis_metadata(path: str | Path | None = None) -> dict[str, str]:
    """The provenance stored with a basis file (method, clips, held-out identities, date, …)."""
    return _read(path)[1]
