"""How far the output's eyes, gaze, brows and mouth move against its driver's, per face region,
on self-reenactment.

Each clip's first frame is animated by the clip itself (the warp, crop only, ``--frames``
frames), so no identity stands between the driver and the output, and MediaPipe reads the scores
of both. Per region: the median over clips and active channels of the output's amplitude over
the driver's (std ratio). The clips are the most expressive ones of people the blendshape
components were estimated from, never the held-out people that ``expression_following.py``
drives with, so the two measurements do not share footage.

Usage::

    python benchmarks/expression_amplitude.py [--data ../shared/data] [--clips 8] [--frames 150]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from estimate_expression_basis import DEFAULT_HELD_OUT, PERSON_OF  # noqa: E402
from expression_following import MIN_DRIVER_STD, read  # noqa: E402

from facereenact.app.animate import AnimateRequest, animate_file  # noqa: E402
from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.evaluate.references import MediaPipeFace  # noqa: E402
from facereenact.face3d.blendshapes import CHANNELS, Region  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.io.image import write_image  # noqa: E402
from facereenact.io.video import iter_frames  # noqa: E402
from facereenact.pipeline.request import GenerationMethod  # noqa: E402


def expressive_training_clips(data: Path, count: int, mediapipe: MediaPipeFace) -> list[Path]:
    """The clips of people outside the held-out set whose scores move most (eyes, brows, mouth
    corners; MediaPipe on every 4th frame), one clip per person."""
    held = {PERSON_OF.get(h, h) for h in DEFAULT_HELD_OUT}
    activity: dict[Path, float] = {}
    for path in sorted((data / "clips").glob("*.mp4")):
        if PERSON_OF.get(path.stem, path.stem) in held:
            continue
        seen = read(list(iter_frames(path))[::4], mediapipe, None)
        if np.isfinite(seen["scores"][:, 0]).sum() < 10:
            continue
        names = list(seen["names"])
        wanted = [names.index(n) for region in (Region.eyes, Region.brows, Region.mouth) for n in CHANNELS[region][:2]]
        activity[path] = float(np.nanmean(np.nanstd(seen["scores"][:, wanted], axis=0)))
    chosen, people = [], set()
    for path in sorted(activity, key=activity.__getitem__, reverse=True):
        person = PERSON_OF.get(path.stem, path.stem)
        if person not in people:
            chosen.append(path)
            people.add(person)
        if len(chosen) == count:
            break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    assets = resolve_assets(None)
    mediapipe, fitter = MediaPipeFace(assets), FaceFitter(assets)
    clips = expressive_training_clips(args.data, args.clips, mediapipe)
    print("clips:", [c.stem for c in clips], flush=True)
    ratios: dict[Region, list[float]] = {region: [] for region in Region}
    request = AnimateRequest(method=GenerationMethod.warp, crop_only=True, max_frames=args.frames)
    for clip in clips:
        frames = list(iter_frames(clip))[: args.frames]
        with tempfile.TemporaryDirectory() as folder:
            source, output = Path(folder) / "source.png", Path(folder) / "out.mp4"
            write_image(source, frames[0])
            animate_file(fitter, request, source, clip, output)
            produced = list(iter_frames(output))
        seen = read(frames, mediapipe, None)
        driver, out, names = seen["scores"], read(produced, mediapipe, None)["scores"], list(seen["names"])
        for region, channels in CHANNELS.items():
            for name in channels:
                k = names.index(name)
                both = np.isfinite(driver[:, k]) & np.isfinite(out[:, k])
                if both.sum() >= 10 and driver[both, k].std() > MIN_DRIVER_STD:
                    ratios[region].append(float(out[both, k].std() / driver[both, k].std()))
        print(clip.stem, {r.value: len(v) for r, v in ratios.items()}, flush=True)
    report = {region.value: {"channels measured": len(values), "amplitude ratio": round(float(np.median(values)), 3)} for region, values in ratios.items() if values}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
