"""How faithfully the output's eyes, brows and mouth follow the driver, across identities.

For every portrait × the driving clips that blink and move their brows most (chosen among the
people held out from the blendshape estimation, by MediaPipe's own blink and brow activity),
``animate`` makes the whole clip (its defaults; the face crop is kept so that the instruments
see the face at one size). Two instruments that share nothing with the 3D fitter read the driver
and the output frame by frame: MediaPipe's blendshapes (the pipeline drives with MediaPipe's
scores, so MediaPipe is not independent for the eyes/brows/mouth corners; dlib is the check) and
dlib's 68 landmarks as eye opening, brow height, mouth opening and mouth width in inter-ocular
units. Per pair: Pearson r over time and amplitude ratio (output std / driver std); reported as
the mean r and median ratio over pairs, for this version and for the same pipeline with the
blendshapes left at zero (the regressor's 10 coefficients alone: the previous behaviour), and
again per driving clip and per portrait: one driver the instruments misread, or one portrait
outside what they know (a painting, a cartoon), shows there rather than hiding in the mean.
``--ceiling`` gives the instruments' ceiling per driving clip as well.

Usage::

    python benchmarks/expression_following.py [--data ../shared/data] [--clips 4] [--out FILE.json] [--skip-previous] [--ceiling]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from estimate_expression_basis import DEFAULT_HELD_OUT, PERSON_OF  # noqa: E402

from facereenact.app.animate import AnimateRequest, animate_file  # noqa: E402
from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.evaluate.metrics import carried_copy  # noqa: E402
from facereenact.evaluate.references import DlibLandmarks, MediaPipeFace  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.io.video import iter_frames  # noqa: E402

MIN_DRIVER_STD = 0.02  # a blendshape the driver moves less than this is not "active"


def read(frames: list[np.ndarray], mediapipe: MediaPipeFace, dlib: DlibLandmarks | None) -> dict[str, np.ndarray]:
    """Per frame: MediaPipe's 52 scores and the dlib signals (NaN where a face was not read, and
    everywhere without ``dlib``)."""
    scores, signals, names = [], [], []
    for frame in frames:
        face = mediapipe.analyse(frame)
        if face is not None and not names:
            names = face.blendshape_names
        scores.append(face.blendshapes if face is not None and len(face.blendshapes) == 52 else np.full(52, np.nan))
        points = None
        if face is not None and dlib is not None:
            low, high = face.landmarks.min(0), face.landmarks.max(0)
            points = dlib.landmarks(frame, box_hint=(low[0], low[1], high[0], high[1]))
        signals.append(dlib_signals(points) if points is not None else np.full(4, np.nan))
    return {"scores": np.array(scores), "dlib": np.array(signals), "names": np.array(names)}


def dlib_signals(p: np.ndarray) -> np.ndarray:
    """Eye opening, brow height, mouth opening, mouth width; in inter-ocular distances."""
    right_eye, left_eye = p[36:42].mean(0), p[42:48].mean(0)
    iod = np.linalg.norm(left_eye - right_eye)
    eyes = (np.linalg.norm(p[37] - p[41]) + np.linalg.norm(p[38] - p[40]) + np.linalg.norm(p[43] - p[47]) + np.linalg.norm(p[44] - p[46])) / 4
    brows = (np.linalg.norm(p[17:22] - right_eye, axis=1).mean() + np.linalg.norm(p[22:27] - left_eye, axis=1).mean()) / 2
    return np.array([eyes, brows, np.linalg.norm(p[62] - p[66]), np.linalg.norm(p[48] - p[54])]) / iod


def agreement(driver: np.ndarray, output: np.ndarray) -> tuple[float, float]:
    """Pearson r and amplitude ratio over the frames both read; NaN for a still driver."""
    ok = np.isfinite(driver) & np.isfinite(output)
    a, b = driver[ok], output[ok]
    if len(a) < 10 or a.std() < 1e-6 or b.std() < 1e-6:
        return float("nan"), float("nan")
    return float(np.corrcoef(a, b)[0, 1]), float(b.std() / a.std())


def pair_metrics(driver: dict[str, np.ndarray], output: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    names = list(driver["names"])
    index = {name: names.index(name) for name in names}

    def mp(data: dict[str, np.ndarray], *channels: str) -> np.ndarray:
        return np.mean([data["scores"][:, index[c]] for c in channels], axis=0)

    out = {
        "blink (MediaPipe)": agreement(mp(driver, "eyeBlinkLeft", "eyeBlinkRight"), mp(output, "eyeBlinkLeft", "eyeBlinkRight")),
        "eye opening (dlib)": agreement(driver["dlib"][:, 0], output["dlib"][:, 0]),
        "brows (dlib)": agreement(driver["dlib"][:, 1], output["dlib"][:, 1]),
        "mouth opening (dlib)": agreement(driver["dlib"][:, 2], output["dlib"][:, 2]),
        "mouth width (dlib)": agreement(driver["dlib"][:, 3], output["dlib"][:, 3]),
        "smile (MediaPipe)": agreement(mp(driver, "mouthSmileLeft", "mouthSmileRight"), mp(output, "mouthSmileLeft", "mouthSmileRight")),
    }
    active = [k for n, k in index.items() if n != "_neutral" and np.nanstd(driver["scores"][:, k]) > MIN_DRIVER_STD]
    rs = [agreement(driver["scores"][:, k], output["scores"][:, k]) for k in active]
    out["all active blendshapes (MediaPipe)"] = (float(np.nanmean([r for r, _ in rs])), float(np.nanmedian([a for _, a in rs])))
    return out


def choose_clips(data: Path, count: int, mediapipe: MediaPipeFace) -> list[Path]:
    """The held-out clips whose drivers blink and move their brows most (MediaPipe, every 2nd frame)."""
    held = {PERSON_OF.get(h, h) for h in DEFAULT_HELD_OUT}
    clips = sorted(p for p in (data / "clips").iterdir() if PERSON_OF.get(p.stem, p.stem) in held)
    activity = {}
    for path in clips:
        frames = list(iter_frames(path))[::2]
        faces = [mediapipe.analyse(f) for f in frames]
        scores = np.array([f.blendshape_dict() for f in faces if f is not None and f.blendshapes.size])
        if len(scores) < 10:
            continue
        blink = np.array([(s["eyeBlinkLeft"] + s["eyeBlinkRight"]) / 2 for s in scores])
        brows = np.array([s["browInnerUp"] + (s["browOuterUpLeft"] + s["browOuterUpRight"]) / 2 - (s["browDownLeft"] + s["browDownRight"]) / 2 for s in scores])
        activity[path] = min(blink.std(), brows.std())
    return sorted(activity, key=activity.get, reverse=True)[:count]  # type: ignore[arg-type]


def summarise(rows: list[dict[str, tuple[float, float]]]) -> dict[str, dict[str, float]]:
    return {
        key: {"r": round(float(np.nanmean([row[key][0] for row in rows])), 3), "amplitude": round(float(np.nanmedian([row[key][1] for row in rows])), 3)}
        for key in rows[0]
    }


def summarise_by(rows: list[dict[str, tuple[float, float]]], names: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`summarise` over the rows of each name (the pair's driving clip, or its portrait)."""
    return {name: summarise([row for row, of in zip(rows, names, strict=True) if of == name]) for name in dict.fromkeys(names)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--method", default=None, help="warp or neural (default: animate's)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--skip-previous", action="store_true", help="measure this version only")
    parser.add_argument("--ceiling", action="store_true", help="only the instruments' ceiling: each driver against its own frames, resampled")
    args = parser.parse_args()
    assets = resolve_assets(None)
    mediapipe, dlib = MediaPipeFace(assets), DlibLandmarks()
    clips = choose_clips(args.data, args.clips, mediapipe)
    portraits = sorted((args.data / "portraits").glob("*.jpg"))
    print("driving clips:", [c.stem for c in clips], flush=True)
    drivers = {clip: read(list(iter_frames(clip)), mediapipe, dlib) for clip in clips}
    if args.ceiling:
        rows = [pair_metrics(drivers[clip], read([carried_copy(frame) for frame in iter_frames(clip)], mediapipe, dlib)) for clip in clips]
        ceiling = {"all": summarise(rows), "by driver": summarise_by(rows, [c.stem for c in clips])}
        print("instruments' ceiling", json.dumps(ceiling, indent=1))
        if args.out is not None:
            args.out.write_text(json.dumps(ceiling, indent=1) + "\n")
        return
    request = AnimateRequest(crop_only=True, **({"method": args.method} if args.method else {}))
    results: dict[str, object] = {"clips": [c.stem for c in clips], "portraits": [p.stem for p in portraits], "method": request.method.value}
    variants = [("this version", True)] + ([] if args.skip_previous else [("blendshapes at zero (previous)", False)])
    for label, blendshapes in variants:
        fitter = FaceFitter(assets, blendshapes=blendshapes)
        rows, frames, start = [], 0, time.perf_counter()
        of_clip, of_portrait = [], []
        for clip in clips:
            for portrait in portraits:
                of_clip.append(clip.stem)
                of_portrait.append(portrait.stem)
                with tempfile.TemporaryDirectory() as folder:
                    output = Path(folder) / "out.mp4"
                    animate_file(fitter, request, portrait, clip, output)
                    produced = list(iter_frames(output))
                frames += len(produced)
                rows.append(pair_metrics(drivers[clip], read(produced, mediapipe, dlib)))
        results[label] = {
            "pairs": len(rows),
            "frames": frames,
            "seconds": round(time.perf_counter() - start, 1),
            **summarise(rows),
            "by driver": summarise_by(rows, of_clip),
            "by portrait": summarise_by(rows, of_portrait),
        }
        print(label, json.dumps(results[label], indent=1), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
