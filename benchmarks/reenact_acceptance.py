"""Measures the training-free reenactment on ../shared/data (the warp pipeline's acceptance).

1. Cross-identity: every portrait animated by lp_d0, lp_d6 and hdtf_aoc (relative mode): frame
   count equals the driving clip's, audio present when the clip has it, the detector finds the
   result face on ≥ 98 % of frames (every 5th frame is checked); identity: the output's fitted identity coefficients are closer
   to the source's than to the driving person's on ≥ 90 % of sampled frames. The driving person's
   identity is taken two ways: that frame's own fit (which shares the output's expression and
   pose, so the regressor's expression-to-identity leakage is the same in both), and the
   person's median fit over the whole clip; both are reported, with the distribution of the
   margin (distance to the driver minus distance to the source, normalised coefficients).
   Also reported (:mod:`facereenact.evaluate.fitted_identity`): the same vote with both
   references carried by the regressor's identity drift to the output's fitted expression, and
   the as-fitted share a faithful output (the source person making the driving expression
   changes) would get, predicted from that drift.
2. Pose (absolute mode): yaw/pitch/roll of the output, refitted, against the driving frame.
3. Self-reenactment on every clip (source = first frame): PSNR and SSIM of the face crop against
   the real frames, against the naive baseline (the source frame repeated).

Usage: python benchmarks/reenact_acceptance.py [--data DIR] [--out results.json] [--skip-cross]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from identity_drift import load_identity_drift

from facereenact.app.animate import AnimateRequest, GenerationMethod, animate_file
from facereenact.app.locations import resolve_assets
from facereenact.evaluate.fitted_identity import FittedIdentities, faithful_output_votes, identity_votes
from facereenact.evaluate.metrics import psnr, structural_similarity, to_tensor
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.params import FaceParams
from facereenact.face3d.transfer import MotionMode, MotionOptions
from facereenact.io.image import read_image
from facereenact.io.video import iter_frames, probe_video
from facereenact.pipeline.composite import crop
from facereenact.pipeline.reenactor import ReenactOptions, Reenactor

REPO = Path(__file__).resolve().parents[1]
DRIVERS = ("lp_d0", "lp_d6", "hdtf_aoc")
SAMPLE_EVERY = 5


def _clip(data: Path, name: str) -> Path:
    return next(p for p in (data / "clips").iterdir() if p.stem == name)


def cross_identity(fitter: FaceFitter, data: Path, drivers: tuple[str, ...] = DRIVERS) -> dict:
    scale = fitter.coefficient_scale[:40].cpu().double().numpy()
    drift = load_identity_drift().double().numpy()
    rows, closer, closer_person, margins, pose_errors, matched, faithful = [], [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for portrait in sorted((data / "portraits").glob("*.jpg")):
            source = fitter.fit_one(read_image(portrait)).params
            for name in drivers:
                clip = _clip(data, name)
                info = probe_video(clip)
                output = Path(folder) / f"{portrait.stem}_{name}.mp4"
                report = animate_file(fitter, AnimateRequest(method=GenerationMethod.warp), portrait, clip, output)
                out_info = probe_video(output)
                driving = fitter.track(iter_frames(clip), info.fps)
                person = np.median(driving.params.shape.cpu().numpy() / scale, 0)
                found, sampled = 0, 0
                fitted: list[tuple[FaceParams, int]] = []
                for index, frame in enumerate(iter_frames(output)):
                    if index % SAMPLE_EVERY:
                        continue
                    sampled += 1
                    faces = fitter.fit_image(frame)
                    found += bool(faces)
                    if faces:
                        fitted.append((faces[0].params, index))
                produced = FittedIdentities.of(FaceParams.cat([params for params, _ in fitted]))
                from_source, at_frames = FittedIdentities.of(source), FittedIdentities.of(driving.params[[index for _, index in fitted]])
                votes = identity_votes(produced, from_source, at_frames, drift, scale)
                to_source = np.linalg.norm((produced.shape - from_source.shape) / scale, axis=-1)
                margins += (np.linalg.norm((produced.shape - at_frames.shape) / scale, axis=-1) - to_source).tolist()
                near_person = to_source < np.linalg.norm(produced.shape / scale - person, axis=-1)
                ceiling = faithful_output_votes(from_source, FittedIdentities.of(driving.params[::SAMPLE_EVERY]), FittedIdentities.of(driving.params[0]), drift, scale)
                closer += votes["as_fitted"].tolist()
                closer_person += near_person.tolist()
                matched += votes["expression_matched"].tolist()
                faithful += ceiling.tolist()
                # Absolute mode, crop only: the output's refitted pose against the driving pose.
                absolute = Reenactor(read_image(portrait), fitter, ReenactOptions(motion=MotionOptions(MotionMode.absolute)))
                errors = []
                for start in range(0, len(driving), 8 * SAMPLE_EVERY):
                    picks = list(range(start, min(start + 8 * SAMPLE_EVERY, len(driving)), SAMPLE_EVERY))
                    batch = absolute.reenact(driving.params[picks], driving.params[0], paste=False)
                    for crop_image, index in zip(batch.crops, picks):
                        faces = fitter.fit_image(crop_image)
                        if faces:
                            errors.append((faces[0].params.angles()[0] - driving.params.angles()[index]).abs().cpu().numpy())
                errors_np = np.array(errors)
                pose_errors.append(errors_np)
                row = {
                    "source": portrait.stem,
                    "driving": name,
                    "frames": out_info.frame_count,
                    "driving_frames": info.frame_count,
                    "audio": out_info.has_audio,
                    "driving_audio": info.has_audio,
                    "face_found": found / sampled,
                    "identity_closer_to_source": float(votes["as_fitted"].sum()) / sampled,
                    "identity_closer_to_source_than_driver_median": float(near_person.sum()) / sampled,
                    "identity_closer_to_source_expression_matched": float(votes["expression_matched"].mean()),
                    "identity_closer_faithful_ceiling": float(ceiling.mean()),
                    "abs_pose_error_median": np.median(errors_np, 0).round(2).tolist() if len(errors_np) else None,
                    "notes": report.notes,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    all_errors = np.concatenate(pose_errors)
    return {
        "pairs": rows,
        "identity_closer_share": float(np.mean(closer)),
        "identity_closer_share_driver_median": float(np.mean(closer_person)),
        "identity_closer_share_expression_matched": float(np.mean(matched)),
        "identity_closer_share_faithful_ceiling": float(np.mean(faithful)),
        "identity_margin_quantiles": dict(zip(("p5", "p25", "p50", "p75", "p95"), np.percentile(margins, [5, 25, 50, 75, 95]).round(3).tolist())),
        "pose_error_median_deg": np.median(all_errors, 0).round(2).tolist(),
        "all_frame_counts_match": all(r["frames"] == r["driving_frames"] for r in rows),
        "all_audio_present": all(r["audio"] == r["driving_audio"] for r in rows),
        "min_face_found": min(r["face_found"] for r in rows),
    }


@torch.inference_mode()
def self_reenactment(fitter: FaceFitter, data: Path) -> dict:
    rows = []
    for clip in sorted(p for p in (data / "clips").iterdir() if p.suffix in {".mp4", ".mov"}):
        info = probe_video(clip)
        frames = list(iter_frames(clip))
        try:
            reenactor = Reenactor(frames[0], fitter, ReenactOptions())
        except Exception as error:  # reported per clip; the rest still run
            rows.append({"clip": clip.stem, "error": str(error)})
            continue
        driving = fitter.track(frames, info.fps)
        size = reenactor.options.crop_size
        source_crop = to_tensor(reenactor.source_crop_uint8()[None])
        scores = {"warp_psnr": [], "warp_ssim": [], "base_psnr": [], "base_ssim": []}
        for start in range(1, len(frames), 8):
            stop = min(start + 8, len(frames))
            batch = reenactor.reenact(driving.params[start:stop], driving.params[0], paste=False)
            real = to_tensor(np.stack([crop(f, reenactor.box, size) for f in frames[start:stop]]))
            produced = to_tensor(batch.crops)
            scores["warp_psnr"] += psnr(produced, real).tolist()
            scores["warp_ssim"] += structural_similarity(produced, real).tolist()
            base = source_crop.expand(len(real), -1, -1, -1)
            scores["base_psnr"] += psnr(base, real).tolist()
            scores["base_ssim"] += structural_similarity(base, real).tolist()
        row = {"clip": clip.stem, "frames": len(frames)} | {k: round(statistics.fmean(v), 4) for k, v in scores.items()}
        row["warp_wins"] = row["warp_psnr"] > row["base_psnr"] and row["warp_ssim"] > row["base_ssim"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    scored = [r for r in rows if "error" not in r]
    return {
        "clips": rows,
        "warp_wins_share": sum(r["warp_wins"] for r in scored) / len(scored),
        "mean": {k: round(statistics.fmean(r[k] for r in scored), 4) for k in ("warp_psnr", "warp_ssim", "base_psnr", "base_ssim")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip-cross", action="store_true")
    parser.add_argument("--skip-self", action="store_true")
    parser.add_argument("--drivers", nargs="+", default=list(DRIVERS), help="driving clips for the cross-identity part")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (1 when the machine is shared)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fitter = FaceFitter(resolve_assets())
    results: dict = {}
    start = time.perf_counter()
    if not args.skip_self:
        results["self_reenactment"] = self_reenactment(fitter, args.data)
        print("self-reenactment:", json.dumps({k: v for k, v in results["self_reenactment"].items() if k != "clips"}))
    if not args.skip_cross:
        results["cross_identity"] = cross_identity(fitter, args.data, tuple(args.drivers))
        print("cross-identity:", json.dumps({k: v for k, v in results["cross_identity"].items() if k != "pairs"}))
    results["seconds"] = round(time.perf_counter() - start, 1)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
