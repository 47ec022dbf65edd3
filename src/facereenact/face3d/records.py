"""Fits as files: arrays for programs (``.npz``) and a readable summary (JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np

from facereenact.face3d.params import FaceParams
from facereenact.io.atomic import atomic_output


def params_arrays(params: FaceParams) -> dict[str, np.ndarray]:
    """The parameters and derived pose as float32 arrays with a leading batch/frame axis."""
    arrays = {name: value.detach().cpu().numpy().astype(np.float32) for name, value in params.as_dict().items()}
    arrays["angles"] = params.angles().detach().cpu().numpy().astype(np.float32)
    return arrays


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            # cast: mypy checks **-unpacked values against allow_pickle: bool too (no array is named that).
            np.savez_compressed(handle, **cast("dict[str, Any]", arrays))


def save_json(path: Path, summary: dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")


def pose_summary(params: FaceParams) -> list[dict[str, Any]]:
    """Per face or frame: yaw/pitch/roll (degrees), translation (pixels) and scale."""
    angles = params.angles().cpu().numpy()
    translation = params.translation.cpu().numpy()
    scale = params.scale.cpu().numpy()
    return [
        {
            "yaw": round(float(a[0]), 2),
            "pitch": round(float(a[1]), 2),
            "roll": round(float(a[2]), 2),
            "translation": [round(float(v), 2) for v in t],
            "scale": float(s),
        }
        for a, t, s in zip(angles, translation, scale)
    ]
