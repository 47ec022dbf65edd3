"""The model card's picture: driving frames where the mouth opens most, and what the
training-free warp and the neural model make of a portrait with them.

First row: the source crop. Then one row per driving frame: driving frame (centre square) |
warp with a dark mouth (``--no-driving-mouth``) | warp with the driving frame's mouth | neural
(the default) | where the neural model changed the warp (|neural − warp| × 4). Rows: the driving
frames with the widest mouth opening (inner-lip gap over face height, from the fitted
landmarks), at least ``--spacing`` frames apart. The
picture is made from the data folder, so it is generated here rather than committed:

    python benchmarks/model_strip.py --source ../shared/data/portraits/lp_s12.jpg \\
        --driving ../shared/data/clips/lp_d6.mp4 -o docs/images/model-strip.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from facereenact.app.locations import resolve_assets
from facereenact.face3d.fitter import FaceFitter
from facereenact.io.image import read_image, write_image
from facereenact.io.video import iter_frames, probe_video
from facereenact.model.inference import load_stage
from facereenact.model.release import shipped_checkpoint
from facereenact.pipeline.reenactor import ReenactOptions, Reenactor


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inner-lip gap (landmarks 62–66) over the face's height (27–8)."""
    gap = np.linalg.norm(landmarks[:, 66, :2] - landmarks[:, 62, :2], axis=-1)
    height = np.linalg.norm(landmarks[:, 8, :2] - landmarks[:, 27, :2], axis=-1)
    return gap / np.maximum(height, 1e-6)


def widest_frames(opening: np.ndarray, count: int, spacing: int) -> list[int]:
    chosen: list[int] = []
    for index in np.argsort(-opening):
        if all(abs(int(index) - c) >= spacing for c in chosen):
            chosen.append(int(index))
        if len(chosen) == count:
            break
    return sorted(chosen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--driving", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="checkpoint (default: the shipped model)")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--spacing", type=int, default=15, help="frames between chosen rows, at least")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/images/model-strip.png"))
    args = parser.parse_args()

    fitter = FaceFitter(resolve_assets())
    source = read_image(args.source)
    frames = list(iter_frames(args.driving))
    driving = fitter.track(frames, probe_video(args.driving).fps)
    picks = widest_frames(mouth_opening(driving.landmarks), args.rows, args.spacing)
    dark = Reenactor(source, fitter, ReenactOptions(driving_mouth=False))
    warp = Reenactor(source, fitter)
    neural = Reenactor(source, fitter, method=load_stage(args.model or shipped_checkpoint()))
    reference = driving.params[0]
    shown_frames = np.stack([frames[i] for i in picks])
    darkened = dark.reenact(driving.params[picks], reference, paste=False)
    warped = warp.reenact(driving.params[picks], reference, paste=False, frames=shown_frames)
    generated = neural.reenact(driving.params[picks], reference, paste=False, frames=shown_frames)
    size = warped.crops.shape[1]
    header = [warp.source_crop_uint8()] + [np.full_like(warp.source_crop_uint8(), 255)] * 4
    rows = [np.concatenate(header, 1)]
    for i, index in enumerate(picks):
        frame = frames[index]
        side = min(frame.shape[:2])
        top, left = (frame.shape[0] - side) // 2, (frame.shape[1] - side) // 2
        shown = cv2.resize(frame[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
        difference = np.abs(generated.crops[i].astype(np.int16) - warped.crops[i].astype(np.int16)).max(-1)
        changed = np.repeat(np.clip(difference * 4, 0, 255).astype(np.uint8)[..., None], 3, -1)
        rows.append(np.concatenate([shown, darkened.crops[i], warped.crops[i], generated.crops[i], changed], 1))
    picture = np.concatenate(rows, 0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.output, picture)
    print(f"wrote {args.output}: frames {picks} (mouth opening {np.round(mouth_opening(driving.landmarks)[picks], 3).tolist()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
