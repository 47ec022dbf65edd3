"""Estimate the grid model's expression basis from video, and validate it on held-out people.

Why: ``3ddfa/Model_PAF.pkl`` ships a defective expression basis (a rescaled copy of identity
columns), so the regressor's 10 expression coefficients do not move our mesh. This script fits,
from real footage, the landmark displacements those coefficients cause, then spreads them
smoothly over the 4,096 grid vertices (see :mod:`facereenact.face3d.expression_basis`).

Steps:

1. Track every clip of ``--data``/clips with our fitter (no smoothing) and keep every
   ``--every``-th frame: the fitted parameters, the crop box, the regressor's auxiliary landmark
   head ``fc_lm`` and dlib's 68 landmarks. Cached per clip under ``--cache`` when given.
2. On the training clips (all but the ``--held-out`` identities), per landmark, solve
   ``target - P_f(L0 + S·a_shp) = P_f(offset + B·a_exp [+ pose nuisance])`` by robust ridge
   least squares, with dlib's and with fc_lm's landmarks as the target.
3. Spread each landmark basis over the grid (thin-plate spline in the frontal plane, with the
   mouth cut open and the upper face anchored) and validate both on the held-out clips against
   dlib's landmarks: NME (all 68 and mouth 48-67) and the inner-lip opening correlation.
4. Save the chosen basis (``--target``) as safetensors with its provenance.

Usage::

    python benchmarks/estimate_expression_basis.py [--data ../shared/data] [--out FILE]
        [--held-out lp_d6 grid_bbaf2n ...] [--every 3] [--cache /tmp/eb_cache] [--target fc_lm]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facereenact.assets import Assets  # noqa: E402
from facereenact.errors import FaceReenactError  # noqa: E402
from facereenact.evaluate.references import DlibLandmarks  # noqa: E402
from facereenact.face3d import expression_basis as eb  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.face3d.params import FaceParams  # noqa: E402
from facereenact.face3d.regressor import crop_faces  # noqa: E402
from facereenact.io.video import iter_frames, probe_video  # noqa: E402

VIDEO_EXTENSIONS = {".mp4", ".mov"}
#: Held-out identities (clip stems; a person with several clips is listed with all of them).
#: Chosen to span the footage: exaggerated (lp_d6), acted MEAD emotions (two men, one woman in
#: two clips), GRID read speech (two speakers), HDTF speech, VoxCeleb and interview crops, and a
#: film-style clip. None shares a person with a training clip (data/README.md, "Splitting").
DEFAULT_HELD_OUT = (
    "lp_d6",
    "spc_W023_surprised",
    "spc_M026_disgusted",
    "eamm_fear",
    "eamm_surprised",
    "grid_bbaf2n",
    "grid_lbax4n",
    "st_markey",
    "pcavs_00098",
    "stk_vscodehappy",
    "dpe_d",
)
#: Clips that are the same person (data/README.md): holding out one holds out all.
SAME_PERSON = (
    ("hdtf_aoc", "vr_face3"),
    ("3ddfa_obama", "lia_vox_obama"),
    ("mimic_trump", "stk_trump"),
    ("spc_M003_disgusted", "spc_M003_happy", "eamm_happy"),
    ("eamm_fear", "eamm_surprised"),
    ("pcavs_00104", "pcavs_741400163"),
    ("pcavs_517600055", "pcavs_517600078"),
    ("grid_s2_swwp2s", "grid_pwij3p"),
    ("lp_d9", "lp_d13"),
)
MAX_YAW = 45.0  # frames turned further than this are not used (dlib's contour becomes unreliable)
MAX_NME_TO_OURS = 0.25  # dlib answers this far from our fit are failures, not expressions


# ---- step 1: per-clip samples ------------------------------------------------------------------
def landmark_box(points: np.ndarray) -> tuple[float, float, float, float]:
    low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def extract_clip(path: Path, fitter: FaceFitter, dlib: DlibLandmarks, every: int) -> dict[str, np.ndarray]:
    """Every ``every``-th tracked frame of a clip: params, crop box, fc_lm and dlib landmarks."""
    info = probe_video(path)
    sampled: dict[int, np.ndarray] = {}

    def frames() -> Iterator[np.ndarray]:
        for index, frame in enumerate(iter_frames(path)):
            if index % every == 0:
                sampled[index] = frame
            yield frame

    fit = fitter.track(frames(), info.fps, smoothing=False)
    index = np.array([i for i in sorted(sampled) if fit.found[i]], dtype=np.int64)
    boxes = fit.boxes[index]
    crops = np.concatenate([crop_faces(sampled[i], fit.boxes[i][None]) for i in index]) if len(index) else np.zeros((0, 120, 120, 3), np.uint8)
    fc_lm = eb.regressor_landmarks(fitter.regressor, crops).numpy() if len(index) else np.zeros((0, 136), np.float32)
    ours = fit.landmarks[index]
    reference = np.stack([dlib.landmarks(sampled[i], box_hint=landmark_box(ours[k])) for k, i in enumerate(index)]) if len(index) else np.zeros((0, 68, 2))
    params = fit.params[torch.as_tensor(index)] if len(index) else None
    out = {
        "frame": index,
        "box": boxes.astype(np.float64),
        "fc_lm": fc_lm.astype(np.float64),
        "dlib": reference.astype(np.float64),
        "ours": ours.astype(np.float64),
    }
    for name in ("rotation", "scale", "translation", "shape", "expression"):
        out[name] = getattr(params, name).numpy().astype(np.float64) if params is not None else np.zeros((0,))
    return out


def load_samples(data: Path, every: int, cache: Path | None, assets: Assets) -> dict[str, dict[str, np.ndarray]]:
    """Samples of every clip, from the cache when present."""
    clips = sorted(p for p in (data / "clips").iterdir() if p.suffix in VIDEO_EXTENSIONS)
    if not clips:
        raise SystemExit(f"no clips in {data / 'clips'}")
    fitter: FaceFitter | None = None
    dlib: DlibLandmarks | None = None
    samples = {}
    for path in clips:
        cached = cache / f"{path.stem}_every{every}.npz" if cache is not None else None
        if cached is not None and cached.is_file():
            with np.load(cached) as file:
                samples[path.stem] = dict(file)
            continue
        if fitter is None:
            fitter, dlib = FaceFitter(assets), DlibLandmarks()
        start = time.perf_counter()
        try:
            samples[path.stem] = extract_clip(path, fitter, dlib, every)  # type: ignore[arg-type]
        except FaceReenactError as error:
            print(f"  {path.name}: skipped ({error})", flush=True)
            continue
        print(f"  {path.name}: {len(samples[path.stem]['frame'])} samples in {time.perf_counter() - start:.1f} s", flush=True)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cached, **samples[path.stem])
    return samples


def expand_held_out(names: list[str]) -> list[str]:
    """Add the other clips of every held-out person."""
    held = set(names)
    for group in SAME_PERSON:
        if held & set(group):
            held |= set(group)
    return sorted(held)


# ---- step 2: design arrays -----------------------------------------------------------------------
def to_params(sample: dict[str, np.ndarray]) -> FaceParams:
    return FaceParams(**{name: torch.as_tensor(sample[name], dtype=torch.float32) for name in ("rotation", "scale", "translation", "shape", "expression")})


def prepare(samples: dict[str, dict[str, np.ndarray]], clips: list[str], model) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Concatenate the usable frames of ``clips``: our neutral-expression landmarks, both
    targets, pose rows, coefficients, and which clip each frame came from."""
    parts: dict[str, list[np.ndarray]] = {}
    for number, name in enumerate(clips):
        sample = samples.get(name)
        if sample is None or len(sample["frame"]) == 0:
            continue
        params = to_params(sample)
        neutral = model.landmarks(params.replace(expression=torch.zeros_like(params.expression))).numpy().astype(np.float64)[..., :2]
        yaw = params.angles()[:, 0].numpy()
        reference = sample["dlib"]
        iod = np.linalg.norm(reference[:, 36] - reference[:, 45], axis=-1)
        agreement = np.linalg.norm(neutral - reference, axis=-1).mean(1) / np.maximum(iod, 1e-6)
        keep = (np.abs(yaw) < MAX_YAW) & (agreement < MAX_NME_TO_OURS) & (iod > 1.0)
        values = {
            "clip": np.full(len(yaw), number),
            "neutral": neutral,
            "dlib": reference,
            "fc_lm": eb.fc_lm_to_image(sample["fc_lm"], sample["box"]),
            "rows": eb.projection_rows(sample["rotation"]),
            "scale": sample["scale"],
            "expression": sample["expression"],
            "shape": sample["shape"],
            "angles": params.angles().numpy().astype(np.float64),
            "iod": iod,
        }
        for key, value in values.items():
            parts.setdefault(key, []).append(value[keep])
    return {key: np.concatenate(value) for key, value in parts.items()}


def nuisance_regressors(data: dict[str, np.ndarray]) -> np.ndarray:
    """Pose terms (sin yaw, |sin yaw|, sin pitch): a contour landmark's definition slides with
    the head's turn, and that must not be credited to expression coefficients that correlate with pose."""
    yaw, pitch = np.deg2rad(data["angles"][:, 0]), np.deg2rad(data["angles"][:, 1])
    return np.stack([np.sin(yaw), np.abs(np.sin(yaw)), np.sin(pitch)], axis=1)


def reconstruct(data: dict[str, np.ndarray], offset: np.ndarray | None, basis: np.ndarray | None) -> np.ndarray:
    """Our landmarks (F, 68, 2) in pixels with a landmark offset and expression basis added."""
    shift = np.zeros((len(data["scale"]), 68, 3))
    if offset is not None:
        shift = shift + offset[None]
    if basis is not None:
        shift = shift + (data["expression"] @ basis.T).reshape(-1, 68, 3)
    return data["neutral"] + data["scale"][:, None, None] * np.einsum("frc,fkc->fkr", data["rows"], shift)


def mouth_opening(points: np.ndarray, iod: np.ndarray) -> np.ndarray:
    """Inner-lip opening: mean distance of 61-63 to 67-65, over the inter-ocular distance."""
    return np.linalg.norm(points[:, eb.UPPER_INNER_LIP] - points[:, eb.LOWER_INNER_LIP], axis=-1).mean(1) / iod


def metrics(points: np.ndarray, data: dict[str, np.ndarray], target: str = "dlib") -> dict[str, float]:
    """NME (all, mouth 48-67) vs the target and the opening correlation, pooled over frames;
    also the mean over clips of each clip's opening correlation (speech clips have small range)."""
    reference = data[target]
    error = np.linalg.norm(points - reference, axis=-1) / data["iod"][:, None]
    ours_open, ref_open = mouth_opening(points, data["iod"]), mouth_opening(reference, data["iod"])
    per_clip = []
    for clip in np.unique(data["clip"]):
        mask = data["clip"] == clip
        if mask.sum() >= 8 and ours_open[mask].std() > 1e-9 and ref_open[mask].std() > 1e-9:
            per_clip.append(np.corrcoef(ours_open[mask], ref_open[mask])[0, 1])
    corr = np.corrcoef(ours_open, ref_open)[0, 1] if ours_open.std() > 1e-9 else float("nan")
    return {
        "nme": float(error.mean()),
        "nme_mouth": float(error[:, eb.MOUTH].mean()),
        "nme_jaw": float(error[:, eb.JAW].mean()),
        "open_corr": float(corr),
        "open_corr_clip": float(np.mean(per_clip)) if per_clip else float("nan"),
        "open_bias": float((ours_open - ref_open).mean()),
    }
