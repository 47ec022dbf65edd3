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
