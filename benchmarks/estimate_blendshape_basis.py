"""Estimate the morphable model's blendshape components from video, and validate them on held-out people.

Why: the regressor's 10 expression coefficients barely move eyelids, brows, gaze or mouth
corners. MediaPipe's blendshape scores do see them; this script learns, from real footage, how
each score moves the face surface, as extra deformation components over the grid mesh (the way
the 10-coefficient basis was estimated, see ``estimate_expression_basis.py``).

Steps:

1. Track every clip with our fitter (no smoothing) and read each frame with MediaPipe (video
   mode, the face nearest ours): our parameters, MediaPipe's 478 landmarks and its scores.
   Cached per clip under ``--cache``.
2. Place MediaPipe's landmarks on our mean face: their model-space position, averaged over
   near-frontal training frames, gives each a barycentric binding to a grid triangle.
3. Per landmark, solve ``MP_f - P_f(bound surface with the 10 coefficients) = P_f(offset + D·b_f
   + N·n_f)`` (``n_f``: pose, and MediaPipe's lip opening) by robust ridge least squares (``expression_estimation.estimate_landmark_basis``),
   ``b_f`` the scores. The 10 coefficients stay as they are; D explains what they leave.
4. Spread D over the grid (discrete thin plate, lips cut, forehead and sides anchored). The irises
   take part only in the gaze components, so a closing lid compresses the whole eye opening.
5. Validate on the held-out clips: how much of MediaPipe's landmark motion (eyes, brows, mouth
   corners) the model explains with and without the components. Save as safetensors.

Usage::

    python benchmarks/estimate_blendshape_basis.py [--data ../shared/data] [--out FILE] [--cache DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

import expression_estimation as estimation  # noqa: E402
from estimate_expression_basis import DEFAULT_HELD_OUT, PERSON_OF, VIDEO_EXTENSIONS  # noqa: E402

from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.errors import FaceReenactError  # noqa: E402
from facereenact.face3d import blendshapes as bs  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.face3d.morphable import landmark_weights  # noqa: E402
from facereenact.face3d.params import FaceParams  # noqa: E402
from facereenact.io.video import iter_frames, probe_video  # noqa: E402

IRIS = np.arange(468, 478)
FRONTAL = 12.0  # degrees: frames this close to frontal place the landmarks on the mean face
MAX_YAW = 40.0  # frames turned further are not used for the components


def extract_clip(path: Path, fitter: FaceFitter, reader: bs.BlendshapeReader) -> dict[str, np.ndarray]:
    info = probe_video(path)
    frames = list(iter_frames(path))
    fit = fitter.track(frames, info.fps, smoothing=False)
    sizes = np.where(fit.found, np.ptp(fit.landmarks[:, :, 0], axis=1), np.nan)
    centres = fit.landmarks[:, :, :2].mean(1)
    read = [bs.nearest_face(reader.faces(frame), centre, size) for frame, centre, size in zip(frames, centres, sizes, strict=True)]
    found = np.array([face is not None for face in read])
    scores = np.stack([face[0] if face else np.zeros(bs.N_BLENDSHAPES, np.float32) for face in read])
    landmarks = np.stack([face[1] if face else np.zeros((478, 3), np.float32) for face in read])
    out = {"found": fit.found & found, "scores": scores, "mp": landmarks}
    for name, value in fit.params.as_dict().items():
        out[name] = value.numpy()
    return out


def load_samples(data: Path, cache: Path, assets) -> dict[str, dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    clips = sorted(p for p in (data / "clips").iterdir() if p.suffix in VIDEO_EXTENSIONS)
    samples: dict[str, dict[str, np.ndarray]] = {}
    fitter = None
    for path in clips:
        cached = cache / f"{path.stem}.npz"
        if cached.is_file():
            with np.load(cached) as file:
                samples[path.stem] = dict(file)
            continue
        if fitter is None:
            fitter = FaceFitter(assets, blendshapes=False)
        reader = bs.BlendshapeReader(assets, video=True)  # fresh per clip: its clock and tracking restart
        start = time.perf_counter()
        try:
            samples[path.stem] = extract_clip(path, fitter, reader)
        except FaceReenactError as error:
            print(f"  {path.name}: skipped ({error})", flush=True)
            continue
        finally:
            reader.close()
        print(f"  {path.name}: {int(samples[path.stem]['found'].sum())} frames in {time.perf_counter() - start:.1f} s", flush=True)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cached, **samples[path.stem])
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/blendshape_cache"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--collect-only", action="store_true")
    args = parser.parse_args()
    assets = resolve_assets(None)
    samples = load_samples(args.data, args.cache, assets)
    print(f"{len(samples)} clips, {sum(int(s['found'].sum()) for s in samples.values())} frames read by both")
    if args.collect_only:
        return
    from facereenact.face3d.morphable import load_morphable_model  # noqa: PLC0415

    model = load_morphable_model(assets, prefer_dense=False, blendshapes=False)
    held_out = {clip for clip in samples if PERSON_OF.get(clip, clip) in {PERSON_OF.get(h, h) for h in DEFAULT_HELD_OUT}}
    train = {k: v for k, v in samples.items() if k not in held_out}
    test = {k: v for k, v in samples.items() if k in held_out}
    print(f"training clips {len(train)}, held-out clips {len(test)}: {sorted(test)}")
    mean = model.mean.double().numpy()
    triangles = model.triangles.numpy()
    landmarks68 = model.landmark_mean.double().numpy()

    # Step 2: MediaPipe's landmarks on our mean face.
    placed = np.concatenate([model_space_points(s, mean, frontal_only=True) for s in train.values()])
    canonical = np.median(placed, axis=0)
    canonical[:, 2] = mean[:, 2].max()  # bind to the front-most surface under each point
    weights = landmark_weights(canonical, mean, triangles)  # (478, N)
    print(f"placed 478 landmarks from {len(placed)} near-frontal frames")

    # Step 3: per-landmark components.
    data = stack(train, model, weights, MAX_FRAMES)
    fit = estimation.estimate_landmark_basis(data["residual"], data["rows"], data["scores"], data["nuisance"], ridge=RIDGE, depth_ridge=DEPTH_RIDGE, iterations=2, standardise=False)
    print(f"components from {fit.frames} frames")

    # Step 4: over the grid; the irises only in the gaze components.
    gaze = bs.region_mask([bs.Region.gaze])
    points = np.setdiff1d(np.arange(478), IRIS)
    per_point = fit.basis.reshape(478, 3, -1)
    grid_basis = np.zeros((len(mean) * 3, bs.N_BLENDSHAPES))
    grid_basis[:, ~gaze] = estimation.extend_to_grid(per_point[points][:, :, ~gaze].reshape(len(points) * 3, -1), weights[points], mean, landmarks68)
    grid_basis[:, gaze] = estimation.extend_to_grid(per_point[:, :, gaze].reshape(478 * 3, -1), weights, mean, landmarks68)

    # Step 5: validation on held-out people.
    report = validate(test, model, weights, grid_basis)
    for name, value in report.items():
        print(f"  {name}: {value}")
    if args.out is not None:
        save(args.out, grid_basis, canonical, {"training_clips": ",".join(sorted(train)), "held_out_clips": ",".join(sorted(test)), "frames": str(fit.frames), "validation": json.dumps(report), "ridge": str(RIDGE), "depth_ridge": str(DEPTH_RIDGE), "source": "MediaPipe Face Landmarker (face_landmarker.task) scores and landmarks; 3DDFA_V2 regressor fits on the grid model"})
        print(f"wrote {args.out}")


#: Ridge on the raw slopes (scores in [0, 1]; an active score varies by ~0.01-0.1 in a clip).
RIDGE = 1e-3
DEPTH_RIDGE = 1e-2
MAX_FRAMES = 5000


def model_space_points(sample: dict[str, np.ndarray], surface: np.ndarray, frontal_only: bool) -> np.ndarray:
    """MediaPipe's landmarks (F, 478, 3) in model space, each on our mean face's surface under
    it: the image position fixes two coordinates through our pose, the surface's depth (taken
    at the current estimate, twice) the third. Without the depth, a head pitched by 10° would
    shift every point by a sixth of the eye-to-mouth distance."""
    from scipy.spatial import cKDTree  # noqa: PLC0415

    params = as_params(sample)
    angles = params.angles().numpy()
    keep = sample["found"] & (np.abs(angles[:, :2]).max(1) < (FRONTAL if frontal_only else 90))
    r = sample["rotation"][keep].astype(np.float64)
    s = sample["scale"][keep].astype(np.float64)
    t = sample["translation"][keep].astype(np.float64)
    p = sample["mp"][keep].astype(np.float64)
    # Equations per point: r1·m = (x - tx)/s, r2·m = -(y - ty)/s, m_z = depth of the surface.
    system = np.concatenate([r[:, :2], np.broadcast_to(np.array([0.0, 0.0, 1.0]), (len(r), 1, 3))], axis=1)
    known = np.stack([(p[..., 0] - t[:, None, 0]) / s[:, None], -(p[..., 1] - t[:, None, 1]) / s[:, None], np.zeros(p.shape[:2])], -1)
    tree = cKDTree(surface[:, :2])
    points = np.zeros_like(known)
    for _ in range(3):
        known[..., 2] = surface[tree.query(points[..., :2])[1], 2] if points.any() else surface[:, 2].max()
        points = np.linalg.solve(system[:, None], known[..., None])[..., 0]
    return points


def as_params(sample: dict[str, np.ndarray]) -> FaceParams:
    return FaceParams(**{name: torch.from_numpy(np.asarray(sample[name], np.float32)) for name in ("rotation", "scale", "translation", "shape", "expression")})


def stack(clips: dict[str, dict[str, np.ndarray]], model, weights: np.ndarray, max_frames: int) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Per-clip centred regression data: MediaPipe minus our bound surface (model units), the
    projection rows, the scores and pose nuisance."""
    rows, residual, scores, nuisance = [], [], [], []
    for sample in clips.values():
        params = as_params(sample)
        angles = params.angles().numpy()
        keep = sample["found"] & (np.abs(angles[:, 0]) < MAX_YAW)
        if keep.sum() < 10:
            continue
        ours = bound_points(model, weights, params[torch.from_numpy(np.flatnonzero(keep))])  # (F, 478, 2)
        r = (sample["mp"][keep, :, :2] - ours) / sample["scale"][keep, None, None]
        b = sample["scores"][keep].astype(np.float64)
        a = angles[keep] / 30.0
        # How far MediaPipe sees the lips apart (in face widths): a nuisance, so that mouth
        # opening the 10 coefficients miss is not blamed on the smile or stretch scores that
        # come with it (the 10 coefficients stay the mouth's opening).
        mp = sample["mp"][keep]
        opening = (np.linalg.norm(mp[:, 13, :2] - mp[:, 14, :2], axis=1) / np.ptp(mp[:, :, 0], axis=1))[:, None] * 10
        n = np.concatenate([a, a**2, opening, opening**2], 1)
        residual.append(r - r.mean(0))
        scores.append(b - b.mean(0))
        nuisance.append(n - n.mean(0))
        rows.append(estimation.projection_rows(sample["rotation"][keep]))
    out = {"residual": np.concatenate(residual), "rows": np.concatenate(rows), "scores": np.concatenate(scores), "nuisance": np.concatenate(nuisance)}
    if len(out["scores"]) > max_frames:
        pick = np.random.default_rng(0).choice(len(out["scores"]), max_frames, replace=False)
        out = {k: v[pick] for k, v in out.items()}
    return out


def bound_points(model, weights: np.ndarray, params: FaceParams, blendshape_basis: np.ndarray | None = None, scores: np.ndarray | None = None) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Image positions (F, 478, 2) of the surface points MediaPipe's landmarks are bound to."""
    with torch.no_grad():
        vertices = model.model_space(params.shape, params.expression).double().numpy()
    if blendshape_basis is not None and scores is not None:
        vertices = vertices + (scores @ blendshape_basis.T).reshape(len(vertices), -1, 3)
    points = np.einsum("kn,fnc->fkc", weights, vertices)
    projected = np.einsum("fij,fkj->fki", params.rotation.double().numpy(), points) * params.scale.double().numpy()[:, None, None]
    return np.stack([projected[..., 0] + params.translation[:, None, 0].numpy(), -projected[..., 1] + params.translation[:, None, 1].numpy()], -1)


GROUPS = {
    "eyelids": np.r_[159, 145, 386, 374, 158, 153, 385, 380],
    "irises": np.r_[468, 473],
    "brows": np.r_[105, 334, 66, 296, 107, 336, 70, 300],
    "mouth corners": np.r_[61, 291, 0, 17],
}


def validate(clips, model, weights, grid_basis) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """Per landmark group: the share of MediaPipe's within-clip landmark motion (pixels, relative
    to the face) that the model explains, with the 10 coefficients only and with the components."""
    out: dict[str, dict[str, float]] = {}
    totals: dict[str, list[np.ndarray]] = {"without": [], "with": [], "motion": []}
    for sample in clips.values():
        params = as_params(sample)
        keep = sample["found"] & (np.abs(params.angles().numpy()[:, 0]) < MAX_YAW)
        if keep.sum() < 10:
            continue
        index = torch.from_numpy(np.flatnonzero(keep))
        target = sample["mp"][keep, :, :2] / sample["scale"][keep, None, None]
        without = bound_points(model, weights, params[index]) / sample["scale"][keep, None, None]
        with_components = bound_points(model, weights, params[index], grid_basis, sample["scores"][keep].astype(np.float64)) / sample["scale"][keep, None, None]
        motion = target - target.mean(0)
        totals["motion"].append(motion)
        totals["without"].append(motion - (without - without.mean(0)))
        totals["with"].append(motion - (with_components - with_components.mean(0)))
    stacked = {k: np.concatenate(v) for k, v in totals.items()}
    for group, index in GROUPS.items():
        energy = np.square(stacked["motion"][:, index]).sum()
        out[group] = {
            "explained_without": round(float(1 - np.square(stacked["without"][:, index]).sum() / energy), 3),
            "explained_with": round(float(1 - np.square(stacked["with"][:, index]).sum() / energy), 3),
        }
    return out


def save(path: Path, grid_basis: np.ndarray, canonical: np.ndarray, metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file  # noqa: PLC0415

    tensors = {"blendshape_basis": np.ascontiguousarray(grid_basis.astype(np.float32)), "mediapipe_on_mean_face": np.ascontiguousarray(canonical.astype(np.float32))}
    metadata = {**metadata, "channels": ",".join(bs.CHANNEL_NAMES), "date": time.strftime("%Y-%m-%d")}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)


if __name__ == "__main__":
    main()
