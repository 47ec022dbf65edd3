"""Self-reenactment at each clip's own resolution: does the output keep the photo's detail?

Source = a clip's first frame, driving = the whole clip, ``animate``'s defaults; each output frame
is compared with the real frame inside the source's face box (the extent of its 68 landmarks),
at the clip's resolution, before any video encoding. Two paste-backs of the same
generated crops are measured in the same run: the full-resolution resampling of the photo along
the warp field (what ``animate`` does) and the generated crop scaled up into the photo (what it
did before), with the still source frame as the baseline every method must beat.

Per clip: PSNR against the real frames (frames 1…), the still source's PSNR, the sharpness ratio
(mean |Laplacian| of the output over the real frame's, in the face box) and frame 0's PSNR
against the source (nothing has moved there)::

    python benchmarks/native_resolution.py --out /tmp/native.json [--clips a,b] [--method warp]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from facereenact.app.animate import AnimateRequest, GenerationMethod, worker_network
from facereenact.app.fit import load_fitter
from facereenact.app.locations import CHECKOUT_SHARED, resolve_assets
from facereenact.io.video import probe_video, read_frames
from facereenact.pipeline.reenactor import ANIMATE_BATCH, Reenactor


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    error = float(np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2))
    return 10 * np.log10(255.0**2 / max(error, 1e-10))


def detail(image: np.ndarray) -> float:
    """Mean |Laplacian| of the grey image: the energy of its finest detail."""
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean())


def measure_clip(fitter, request: AnimateRequest, clip: Path, max_frames: int | None) -> dict[str, float | int | str]:  # type: ignore[no-untyped-def]
    frames = read_frames(clip, max_frames)
    fit = fitter.track(list(frames), probe_video(clip).fps, request.smooth)
    checkpoint = request.checkpoint()
    method = worker_network(checkpoint, "cpu") if checkpoint is not None else None
    reenactor = Reenactor(frames[0], fitter, request.reenact_options(), method)
    first = int(np.flatnonzero(fit.found)[0])
    reference, reference_points = fit.params[first], fit.points_at(first)
    low, high = reenactor.source.landmarks[:, :2].min(0), reenactor.source.landmarks[:, :2].max(0)  # the face box
    height, width = frames.shape[1:3]
    region = (slice(max(int(low[1]), 0), min(int(high[1]) + 1, height)), slice(max(int(low[0]), 0), min(int(high[0]) + 1, width)))
    scores: dict[str, list[float]] = {"full": [], "crop": [], "still": [], "sharp_full": [], "sharp_crop": [], "sharp_still": []}
    frame0: dict[str, float] = {}
    for start in range(0, len(fit), ANIMATE_BATCH):
        stop = min(start + ANIMATE_BATCH, len(fit))
        batch = reenactor.reenact(
            fit.params[start:stop], reference, paste=False, frames=frames[start:stop], found=fit.found[start:stop],
            points=fit.points_of(slice(start, stop)), reference_points=reference_points,
        )  # fmt: skip
        outputs = {"full": reenactor.paste(batch), "crop": np.stack([reenactor.paster.paste(c) for c in batch.crops])}
        for index in range(start, stop):
            real = frames[index][region]
            for name, produced in outputs.items():
                mine = produced[index - start][region]
                if index == 0:
                    frame0[name] = psnr(mine, real)
                    continue
                scores[name].append(psnr(mine, real))
                scores[f"sharp_{name}"].append(detail(mine) / max(detail(real), 1e-6))
            if index:
                scores["still"].append(psnr(frames[0][region], real))
                scores["sharp_still"].append(detail(frames[0][region]) / max(detail(real), 1e-6))
    result: dict[str, float | int | str] = {"clip": clip.stem, "frames": len(fit), "size": f"{frames.shape[2]}x{frames.shape[1]}"}
    result.update({f"psnr_{k}": statistics.fmean(v) for k, v in scores.items() if not k.startswith("sharp") and v})
    result.update({f"{k}_ratio": statistics.fmean(v) for k, v in scores.items() if k.startswith("sharp") and v})
    result.update({f"frame0_psnr_{k}": v for k, v in frame0.items()})
    return result


def summary(rows: list[dict[str, float | int | str]]) -> dict[str, float]:
    def values(key: str) -> list[float]:
        return [float(r[key]) for r in rows if key in r]

    out: dict[str, float] = {"clips": len(rows)}
    for name in ("full", "crop"):
        out[f"{name}_mean_psnr"] = statistics.fmean(values(f"psnr_{name}"))
        out[f"{name}_median_sharpness_ratio"] = statistics.median(values(f"sharp_{name}_ratio"))
        out[f"{name}_share_above_still"] = statistics.fmean(float(r[f"psnr_{name}"]) > float(r["psnr_still"]) for r in rows if "psnr_still" in r)
        out[f"{name}_min_frame0_psnr"] = min(values(f"frame0_psnr_{name}"))
    out["still_mean_psnr"] = statistics.fmean(values("psnr_still"))
    out["still_median_sharpness_ratio"] = statistics.median(values("sharp_still_ratio"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CHECKOUT_SHARED / "data")
    parser.add_argument("--clips", help="comma-separated clip names (default: every clip)")
    parser.add_argument("--method", choices=[m.value for m in GenerationMethod], default=AnimateRequest().method.value)
    parser.add_argument("--max-frames", type=int, default=None, help="frames per clip (default: the whole clip)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    request = AnimateRequest(method=GenerationMethod(args.method))
    fitter = load_fitter(resolve_assets())
    clips = sorted(p for p in (args.data / "clips").iterdir() if p.suffix in {".mp4", ".mov"})
    if args.clips:
        chosen = set(args.clips.split(","))
        clips = [c for c in clips if c.stem in chosen]
    rows = []
    started = time.perf_counter()
    for clip in clips:
        try:
            rows.append(measure_clip(fitter, request, clip, args.max_frames))
        except Exception as error:  # noqa: BLE001 (a clip without a usable face is reported, the run goes on)
            print(f"{clip.stem}: skipped ({error})")
            continue
        row = rows[-1]
        print(f"{row['clip']:<24} full {row['psnr_full']:.2f} crop {row['psnr_crop']:.2f} still {row['psnr_still']:.2f} dB; "
              f"sharpness {row['sharp_full_ratio']:.2f} / {row['sharp_crop_ratio']:.2f} (still {row['sharp_still_ratio']:.2f}); frame 0 {row['frame0_psnr_full']:.1f} / {row['frame0_psnr_crop']:.1f} dB", flush=True)  # fmt: skip
    report = {"method": args.method, "seconds": round(time.perf_counter() - started), "summary": summary(rows), "clips": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
