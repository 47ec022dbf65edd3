"""Estimate how the regressor's identity drifts with expression, and validate it on held-out people.

Why: see :mod:`facereenact.face3d.identity_drift`. Within a clip the person is fixed, so the
frame-to-frame movement of the regressor's identity coefficients is error; this script measures
how much of it is a linear function of the expression coefficients, and saves that function.

Steps:

1. Samples of every clip (every ``--every``-th frame, the regressor's own identity and dlib's 68
   landmarks), made and cached exactly as ``estimate_expression_basis.py`` makes them.
2. On the training clips (all but the ``--held-out`` people): pooled within-clip least squares
   of identity on expression (:func:`~facereenact.face3d.identity_drift.estimate_identity_drift`).
3. On the held-out clips, two checks:
   - the share of within-clip identity variance the drift explains (coefficients in units of
     their spread over faces);
   - geometry, against dlib's landmarks (an instrument the regressor never saw): each frame
     rebuilt with the clip's first-frame identity, as self-reenactment rebuilds it, with the
     drift carried along and without; and each frame's own fit, the best either can do.
     Normalised mean error (by the inter-ocular distance), all 68 points and the mouth.
   And, on all clips, the median distance between clips' mean identities with and without
   ``D·expression`` subtracted (why ``D`` is not an identity cleaner).
4. Save ``D`` as safetensors with its provenance (``--out``).

Usage::

    python benchmarks/estimate_identity_drift.py [--data ../shared/data] [--cache /tmp/eb_cache] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from estimate_expression_basis import DEFAULT_HELD_OUT, expand_held_out, load_samples, to_params  # noqa: E402
from identity_drift import DRIFT_FILE, estimate_identity_drift, explained_share, save_identity_drift  # noqa: E402

from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.face3d.expression_basis import MOUTH  # noqa: E402
from facereenact.face3d.morphable import load_morphable_model  # noqa: E402
from facereenact.face3d.regressor import FaceRegressor  # noqa: E402

MIN_FRAMES = 10  # clips with fewer usable samples say little about their own mean


def normalised_error(predicted: np.ndarray, reference: np.ndarray, points: slice | np.ndarray = slice(None)) -> np.ndarray:
    """Per frame, mean distance over ``points`` of ``predicted`` (T, 68, 2+) to ``reference``
    (T, 68, 2), over the distance between the eye centres of ``reference``."""
    eyes = np.linalg.norm(reference[:, 36:42].mean(1) - reference[:, 42:48].mean(1), axis=-1)
    return np.linalg.norm(predicted[:, points, :2] - reference[:, points], axis=-1).mean(-1) / eyes


def median_distance(identities: list[np.ndarray], scale: np.ndarray) -> float:
    """Median distance between every two of ``identities`` (40,), in units of ``scale``."""
    points = np.stack(identities) / scale
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    return round(float(np.median(distances[np.triu_indices(len(points), 1)])), 3)


def geometry_check(samples: dict[str, dict[str, np.ndarray]], clips: list[str], model, drift: torch.Tensor) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    """Landmark error against dlib of: first-frame identity without / with the drift carried,
    and each frame's own fit."""
    errors: dict[str, list[np.ndarray]] = {"first_identity": [], "first_identity_with_drift": [], "own_fit": []}
    mouth: dict[str, list[np.ndarray]] = {key: [] for key in errors}
    for name in clips:
        sample = samples[name]
        usable = np.isfinite(sample["dlib"]).all((1, 2))
        if usable.sum() < MIN_FRAMES:
            continue
        params = to_params(sample)
        first = params[0]
        rebuilt = {
            "first_identity": params.replace(shape=first.shape.expand(len(params), -1).clone()),
            "first_identity_with_drift": params.replace(shape=first.shape + (params.expression - first.expression) @ drift.T),
            "own_fit": params,
        }
        reference = sample["dlib"][usable]
        for key, faces in rebuilt.items():
            landmarks = model.landmarks(faces).numpy()[usable]
            errors[key].append(normalised_error(landmarks, reference))
            mouth[key].append(normalised_error(landmarks, reference, MOUTH))
    return {key: {"nme": round(float(np.concatenate(errors[key]).mean()), 5), "nme_mouth": round(float(np.concatenate(mouth[key]).mean()), 5)} for key in errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--assets", type=Path, default=None, help="asset folder (default: the FACEREENACT_ASSETS setting)")
    parser.add_argument("--held-out", nargs="+", default=list(DEFAULT_HELD_OUT), help="clip stems of the held-out people")
    parser.add_argument("--every", type=int, default=3, help="keep every n-th frame of each clip")
    parser.add_argument("--cache", type=Path, default=None, help="folder for per-clip samples (shared with estimate_expression_basis.py)")
    parser.add_argument("--out", type=Path, default=DRIFT_FILE)
    args = parser.parse_args()

    assets = resolve_assets(args.assets)
    samples = load_samples(args.data, args.every, args.cache, assets)
    held = [name for name in expand_held_out(args.held_out) if name in samples]
    usable = {name for name, sample in samples.items() if len(sample["frame"]) >= MIN_FRAMES}
    train = sorted(usable - set(held))
    test = sorted(usable & set(held))
    scale = FaceRegressor(assets).param_std[12:52].clamp(min=1e-6).double().numpy()

    def arrays(clips: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return [samples[n]["shape"] for n in clips], [samples[n]["expression"] for n in clips]

    drift = estimate_identity_drift(*arrays(train))
    share = {"training": round(explained_share(*arrays(train), drift, scale), 4), "held_out": round(explained_share(*arrays(test), drift, scale), 4)}
    print(f"{sum(len(samples[n]['frame']) for n in train)} training frames from {len(train)} clips; held out: {', '.join(test)}")
    print(f"within-clip identity variance explained by expression: training {share['training']:.3f}, held out {share['held_out']:.3f}")

    # Why the drift must not strip expression out of identity across people (the module's docstring).
    means = [samples[n]["shape"].mean(0) for n in train + test]
    stripped = [samples[n]["shape"].mean(0) - samples[n]["expression"].mean(0) @ drift.T for n in train + test]
    between = {"identity": median_distance(means, scale), "identity_minus_drift_times_expression": median_distance(stripped, scale)}
    print(f"median distance between clips' mean identities: {between['identity']:.2f}; with D·expression subtracted: {between['identity_minus_drift_times_expression']:.2f}")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_morphable_model(assets, prefer_dense=False)
    geometry = geometry_check(samples, test, model, torch.from_numpy(drift).float())
    for key, value in geometry.items():
        print(f"  held-out landmarks vs dlib, {key}: NME {value['nme']:.4f}, mouth {value['nme_mouth']:.4f}")

    save_identity_drift(
        args.out,
        drift,
        {
            "layout": "(40, 10): identity coefficients per expression coefficient, the regressor's raw units",
            "method": "pooled within-clip least squares of identity on expression (facereenact.face3d.identity_drift.estimate_identity_drift)",
            "source": "3DDFA_V2 MobileNet regressor (mb05_120x120.pth)",
            "script": "benchmarks/estimate_identity_drift.py",
            "date": datetime.date.today().isoformat(),
            "every": str(args.every),
            "frames": str(sum(len(samples[n]["frame"]) for n in train)),
            "training_clips": ",".join(train),
            "held_out_clips": ",".join(test),
            "explained_within_clip_variance": share,
            "validation_held_out_vs_dlib": geometry,
            "median_distance_between_clips": between,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
