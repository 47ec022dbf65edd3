"""The regressor's identity coefficients drift with expression: measuring that drift.

Within one video a person's identity is fixed, yet the 3DDFA_V2 regressor's 40 identity
coefficients move from frame to frame, and almost all of that movement (96 % on held-out
people) is a linear function of its 10 expression coefficients: the network spends part of
every expression on identity components. ``D`` (40×10, ``identity change = D·expression
change``) is estimated by pooled within-clip least squares (``benchmarks/estimate_identity_drift.py``)
and ships with the package.

Where it is used: reading whose identity a reenacted face carries
(:mod:`facereenact.evaluate.fitted_identity`), where the faces compared show different
expressions. ``D`` describes changes of expression of one person; it must not be used to take
the expression out of an identity across people (``identity - D·expression``): a person's
average expression coefficients carry identity too, and that subtraction shrinks the median
distance between different people's identities from 1.79 to 0.28 (units of the coefficients'
spread over faces).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from facereenact.face3d.params import N_EXPRESSION, N_SHAPE

DRIFT_FILE = Path(__file__).parent / "data" / "identity_drift.safetensors"
DRIFT_KEY = "identity_per_expression"


def estimate_identity_drift(shapes: Sequence[np.ndarray], expressions: Sequence[np.ndarray]) -> np.ndarray:
    """``D`` (40, 10) from per-clip fits (each clip: shapes (T, 40), expressions (T, 10) of one
    person): the least-squares answer to ``shape_t - mean(shape) = D·(expression_t - mean(expression))``
    over the frames of all clips. Centring per clip removes each person's identity."""
    x = np.concatenate([e - e.mean(0) for e in expressions]).astype(np.float64)
    y = np.concatenate([s - s.mean(0) for s in shapes]).astype(np.float64)
    return np.linalg.lstsq(x, y, rcond=None)[0].T


def explained_share(shapes: Sequence[np.ndarray], expressions: Sequence[np.ndarray], drift: np.ndarray, scale: np.ndarray) -> float:
    """Share of the within-clip identity variance (coefficients divided by ``scale`` (40,))
    that ``drift`` accounts for: 1 is all of it, 0 none."""
    y = np.concatenate([s - s.mean(0) for s in shapes]) / scale
    x = np.concatenate([e - e.mean(0) for e in expressions])
    residual = y - (x @ drift.T) / scale
    return float(1.0 - np.square(residual).sum() / np.square(y).sum())


def save_identity_drift(path: str | Path, drift: np.ndarray, provenance: dict[str, object]) -> None:
    """Write ``D`` with its provenance (strings; other values as JSON)."""
    metadata = {key: value if isinstance(value, str) else json.dumps(value) for key, value in provenance.items()}
    save_file({DRIFT_KEY: np.ascontiguousarray(drift, dtype=np.float32)}, str(path), metadata=metadata)


def load_identity_drift(path: str | Path | None = None) -> torch.Tensor:
    """``D`` (40, 10) float32, shipped with the package unless ``path`` names another file."""
    drift = load_file(str(path or DRIFT_FILE))[DRIFT_KEY]
    if drift.shape != (N_SHAPE, N_EXPRESSION):
        raise ValueError(f"{path or DRIFT_FILE}: identity drift has shape {drift.shape}, expected (40, 10)")
    return torch.from_numpy(drift)


def identity_drift_metadata(path: str | Path | None = None) -> dict[str, str]:
    """The provenance stored with the drift (method, clips, held-out validation, date)."""
    with safe_open(str(path or DRIFT_FILE), "np") as handle:
        return dict(handle.metadata() or {})
