"""The pipeline on a CUDA device against the CPU of the same machine: speed and agreement.

Tracks the driving clip, then animates a portrait with the training-free warp and with the
shipped network on each device (crop only, batches of 8, one warm-up batch first), and prints
frames per second per stage with the CUDA/CPU ratio, and how far the CUDA crops are from the
CPU's (the CPU runs the network under ONNX Runtime, CUDA in PyTorch).

Usage: python benchmarks/cuda_vs_cpu.py --clip CLIP --source PORTRAIT [--frames 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from facereenact.app.locations import resolve_assets
from facereenact.face3d.fitter import FaceFitter, VideoFit
from facereenact.io.image import read_image
from facereenact.io.video import iter_frames, probe_video
from facereenact.model.inference import load_stage
from facereenact.model.release import shipped_checkpoint
from facereenact.pipeline.reenactor import Reenactor

BATCH = 8


def _timed(device: str, work, *args):  # type: ignore[no-untyped-def]
    """(seconds, result) of ``work(*args)``, waiting for the GPU at both ends."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = work(*args)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def _animate(reenactor: Reenactor, fit: VideoFit) -> np.ndarray:
    batches = [reenactor.reenact(fit.params[i : i + BATCH], fit.params[0], paste=False).crops for i in range(0, len(fit), BATCH)]
    return np.concatenate(batches)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device on this machine", file=sys.stderr)
        return 1
    frames = list(iter_frames(args.clip, args.frames))
    fps, image, assets = probe_video(args.clip).fps, read_image(args.source), resolve_assets()
    speed: dict[str, dict[str, float]] = {}
    crops: dict[tuple[str, str], np.ndarray] = {}
    for device in ("cpu", "cuda"):
        fitter = FaceFitter(assets, device=device)
        fitter.track(frames[:BATCH], fps)  # warm-up
        seconds, fit = _timed(device, fitter.track, frames, fps)
        speed.setdefault("track", {})[device] = len(frames) / seconds
        for method in ("warp", "neural"):
            stage = None if method == "warp" else load_stage(shipped_checkpoint(), device=device)
            reenactor = Reenactor(image, fitter, method=stage)
            reenactor.reenact(fit.params[:BATCH], fit.params[0], paste=False)  # warm-up
            seconds, produced = _timed(device, _animate, reenactor, fit)
            speed.setdefault(f"{method} (crop only)", {})[device] = len(frames) / seconds
            crops[(device, method)] = np.asarray(produced, dtype=np.int16)
    report = {stage: {**{d: round(v, 1) for d, v in row.items()}, "cuda_over_cpu": round(row["cuda"] / row["cpu"], 2)} for stage, row in speed.items()}
    for method in ("warp", "neural"):
        difference = np.abs(crops[("cpu", method)] - crops[("cuda", method)])
        report[f"{method}: CUDA crops against CPU crops"] = {"mean_levels": round(float(difference.mean()), 3), "share_over_8_levels": round(float((difference > 8).mean()), 4)}
    print(f"frames per second, {len(frames)} frames, {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
