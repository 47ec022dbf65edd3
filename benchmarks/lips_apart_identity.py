"""dlib CSIM to the source with the lips kept apart and with them allowed to cross.

Relative motion from a driving clip that starts with its mouth open asks a closed source mouth
to shut beyond shut; :func:`facereenact.face3d.transfer.keep_lips_apart` stops the lips there.
This measures what that does to identity, with an instrument that shares nothing with the 3D
fitter: every portrait animated (relative mode, no driving mouth) by each driving clip, every
``--every``-th of its first ``--frames`` frames, CSIM of dlib's descriptors on the 256² crops,
once as ``animate`` runs and once with ``keep_lips_apart`` switched off in the pipeline.

Usage: python benchmarks/lips_apart_identity.py [--data DIR] [--drivers hdtf_aoc lp_d0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from facereenact.app.locations import resolve_assets
from facereenact.evaluate.analysis import FaceAnalyser
from facereenact.evaluate.identity import DescriptorService
from facereenact.evaluate.references import MediaPipeFace
from facereenact.face3d.fitter import FaceFitter
from facereenact.io.image import read_image
from facereenact.io.video import iter_frames, probe_video
from facereenact.pipeline import reenactor as pipeline
from facereenact.pipeline.reenactor import ReenactOptions, Reenactor

REPO = Path(__file__).resolve().parents[1]


def mean_csim(reenactor: Reenactor, fit, picks: list[int], analyser: FaceAnalyser, descriptors: DescriptorService) -> float:  # type: ignore[no-untyped-def]
    crops = np.concatenate([reenactor.reenact(fit.params[picks[i : i + 8]], fit.params[0], paste=False).crops for i in range(0, len(picks), 8)])
    source = reenactor.source_crop_uint8()[None]
    source_descriptor = descriptors.submit(source, analyser.measure(source, fitter=False).boxes).result()[0]
    produced = descriptors.submit(crops, analyser.measure(crops, fitter=False).boxes).result()
    produced = produced[np.isfinite(produced).all(1)]
    cosine = produced @ source_descriptor / (np.linalg.norm(produced, axis=1) * np.linalg.norm(source_descriptor))
    return float(cosine.mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--drivers", nargs="+", default=["hdtf_aoc", "lp_d0"])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--every", type=int, default=10)
    args = parser.parse_args()

    assets = resolve_assets()
    fitter = FaceFitter(assets)
    analyser = FaceAnalyser(fitter, MediaPipeFace(assets))
    options = ReenactOptions(driving_mouth=False)
    kept_apart = pipeline.keep_lips_apart
    results: dict[str, dict[str, float]] = {"apart": {}, "crossing": {}}
    with DescriptorService() as descriptors:
        for name in args.drivers:
            clip = next(p for p in (args.data / "clips").iterdir() if p.stem == name)
            frames = list(iter_frames(clip, args.frames))
            fit = fitter.track(frames, probe_video(clip).fps)
            picks = list(range(0, len(frames), args.every))
            for portrait in sorted((args.data / "portraits").glob("*.jpg")):
                image = read_image(portrait)
                for variant in results:
                    pipeline.keep_lips_apart = kept_apart if variant == "apart" else (lambda model, params: params)
                    try:
                        results[variant][f"{portrait.stem} × {name}"] = mean_csim(Reenactor(image, fitter, options), fit, picks, analyser, descriptors)
                    finally:
                        pipeline.keep_lips_apart = kept_apart
    for pair in results["apart"]:
        print(f"{pair:24s} apart {results['apart'][pair]:.4f}  crossing {results['crossing'][pair]:.4f}")
    print(f"mean over {len(results['apart'])} pairs: apart {np.mean(list(results['apart'].values())):.4f}, crossing {np.mean(list(results['crossing'].values())):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
