"""Is the output closer to the source person than to the driving person? Three readings.

Issue 3's criterion asks the 3D regressor: are the output's fitted identity coefficients closer
to the source's than to the driving frame's own fit? The regressor is also the fitter that
drives the warp, and its identity estimate drifts with expression
(:mod:`facereenact.face3d.identity_drift`). On the same frames this reports:

- ``regressor``: the criterion as written (identities as fitted);
- ``regressor_expression_matched``: both references carried by the drift to the output's
  fitted expression first (:mod:`facereenact.evaluate.fitted_identity`);
- ``faithful_ceiling``: the as-fitted share that an output which is exactly the source person
  making the driving expression changes would get, predicted from the drift;
- ``dlib``: dlib's face-recognition descriptor, which shares nothing with the fitter: is the
  output's descriptor closer (cosine) to the source photo's than to the driving frame's?

Every portrait animated (``animate``'s defaults: warp, relative mode, driving mouth) by each
driving clip, every 5th frame, pasted frames as ``animate`` writes them.

Usage: python benchmarks/identity_instruments.py [--data DIR] [--drivers lp_d0 lp_d6 hdtf_aoc]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from identity_drift import load_identity_drift

from facereenact.app.locations import resolve_assets
from facereenact.evaluate.analysis import FaceAnalyser
from facereenact.evaluate.fitted_identity import FittedIdentities, faithful_output_votes, identity_votes
from facereenact.evaluate.identity import DescriptorService
from facereenact.evaluate.references import MediaPipeFace
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.params import FaceParams
from facereenact.io.image import read_image
from facereenact.io.video import iter_frames, probe_video
from facereenact.pipeline.reenactor import ReenactOptions, Reenactor

REPO = Path(__file__).resolve().parents[1]
SAMPLE_EVERY = 5
BATCH = 8


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--drivers", nargs="+", default=["lp_d0", "lp_d6", "hdtf_aoc"])
    args = parser.parse_args()

    assets = resolve_assets()
    fitter = FaceFitter(assets)
    # The drift relates the regressor's own coefficients: read identities without MediaPipe's
    # refinement of the expression (the pipeline's fitter refines it).
    reader = FaceFitter(assets, blendshapes=False)
    analyser = FaceAnalyser(fitter, MediaPipeFace(assets))
    scale = fitter.coefficient_scale[:40].cpu().double().numpy()
    drift = load_identity_drift().double().numpy()
    instruments = ("regressor", "regressor_expression_matched", "faithful_ceiling", "dlib")
    rows = []
    with DescriptorService() as descriptors:

        def describe(images: np.ndarray) -> np.ndarray:
            return descriptors.submit(images, analyser.measure(images, fitter=False).boxes).result()

        for name in args.drivers:
            clip = next(p for p in (args.data / "clips").iterdir() if p.stem == name)
            frames = list(iter_frames(clip))
            fit = fitter.track(frames, probe_video(clip).fps)
            read = reader.track(frames, probe_video(clip).fps)
            picks = list(range(0, len(frames), SAMPLE_EVERY))
            driving_descriptors = describe(np.stack([frames[i] for i in picks]))
            for portrait in sorted((args.data / "portraits").glob("*.jpg")):
                image = read_image(portrait)
                reenactor = Reenactor(image, fitter, ReenactOptions())
                source = FittedIdentities.of(reader.fit_one(image).params)
                source_descriptor = describe(image[None])[0]
                outputs = []
                for start in range(0, len(picks), BATCH):
                    chosen = picks[start : start + BATCH]
                    batch = reenactor.reenact(fit.params[chosen], fit.params[0], frames=np.stack([frames[i] for i in chosen]), found=fit.found[chosen])
                    assert batch.frames is not None
                    outputs.append(batch.frames)
                produced = np.concatenate(outputs)
                fitted = [(reader.fit_image(frame), index) for frame, index in zip(produced, picks)]
                found = [(faces[0].params, index) for faces, index in fitted if faces]
                output = FittedIdentities.of(FaceParams.cat([params for params, _ in found]))
                driving = FittedIdentities.of(read.params[[index for _, index in found]])
                votes = identity_votes(output, source, driving, drift, scale)
                ceiling = faithful_output_votes(source, FittedIdentities.of(read.params[picks]), FittedIdentities.of(read.params[0]), drift, scale)
                produced_descriptors = describe(produced)
                usable = np.isfinite(produced_descriptors).all(1) & np.isfinite(driving_descriptors).all(1)
                dlib = _cosine(produced_descriptors[usable], source_descriptor) > _cosine(produced_descriptors[usable], driving_descriptors[usable])
                row = {
                    "pair": f"{portrait.stem} × {name}",
                    "frames": len(picks),
                    "regressor": float(votes["as_fitted"].mean()),
                    "regressor_expression_matched": float(votes["expression_matched"].mean()),
                    "faithful_ceiling": float(ceiling.mean()),
                    "dlib": float(np.mean(dlib)),
                    "dlib_frames": int(usable.sum()),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    for instrument in instruments:
        weights = np.array([r["frames"] for r in rows], float)
        share = float(np.average([r[instrument] for r in rows], weights=weights))
        low = [f"{r['pair']} {100 * r[instrument]:.1f} %" for r in rows if r[instrument] < 0.9]
        print(f"{instrument}: closer to the source on {100 * share:.1f} % of frames; pairs below 90 %: {', '.join(low) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
