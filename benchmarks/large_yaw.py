"""Large head turns: is the output still a face an independent detector finds?

The clips with the largest yaw range (from the 3D fit, every frame) are self-reenacted with
``animate``'s defaults (source = the clip's first frame, pasted back at the clip's resolution),
and dlib's HOG frontal face detector, which shares nothing with the pipeline, looks for a face in
every output frame and in every real frame (what a faithful output would score). A strip shows
the real and the output frames at the clip's most turned moments::

    python benchmarks/large_yaw.py --out /tmp/yaw.json --strips /tmp/yaw [--top 6] [--clips a,b]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import dlib
import numpy as np

from facereenact.app.animate import AnimateRequest, GenerationMethod, worker_network
from facereenact.app.fit import FaceFitter, load_fitter
from facereenact.app.locations import CHECKOUT_SHARED, resolve_assets
from facereenact.io.video import probe_video, read_frames
from facereenact.pipeline.reenactor import ANIMATE_BATCH, Reenactor

STRIP_FRAMES = 5
STRIP_HEIGHT = 256


def track(fitter, clip: Path):  # type: ignore[no-untyped-def]
    """The clip's fit as ``animate`` tracks it."""
    return fitter.track(list(read_frames(clip)), probe_video(clip).fps, AnimateRequest().smooth)


def detected(detector, images: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Whether dlib's HOG detector finds a face in each (upsampling small frames once)."""
    found = []
    for image in images:
        upsample = 1 if max(image.shape[:2]) < 400 else 0
        found.append(len(detector(np.ascontiguousarray(image), upsample)) > 0)
    return np.array(found)


def reenact(fitter, request: AnimateRequest, frames: np.ndarray, fit) -> np.ndarray:  # type: ignore[no-untyped-def]
    checkpoint = request.checkpoint()
    method = worker_network(checkpoint, "cpu") if checkpoint is not None else None
    reenactor = Reenactor(frames[0], fitter, request.reenact_options(), method)
    reference = fit.params[int(np.flatnonzero(fit.found)[0])]
    outputs = []
    for start in range(0, len(fit), ANIMATE_BATCH):
        stop = min(start + ANIMATE_BATCH, len(fit))
        batch = reenactor.reenact(fit.params[start:stop], reference, paste=False, frames=frames[start:stop], found=fit.found[start:stop])
        outputs.append(reenactor.paste(batch))
    return np.concatenate(outputs)


def strip(real: np.ndarray, made: np.ndarray, yaw: np.ndarray, made_found: np.ndarray, path: Path) -> None:
    """Real frames above, output frames below, at the most turned moments; a red bar marks an
    output frame where dlib found no face."""
    order = np.argsort(-np.abs(yaw))
    chosen: list[int] = []
    for index in order:  # the most turned frames, at least half a second apart
        if all(abs(int(index) - c) > 12 for c in chosen):
            chosen.append(int(index))
        if len(chosen) == STRIP_FRAMES:
            break
    chosen.sort()
    scale = STRIP_HEIGHT / real.shape[1]
    size = (round(real.shape[2] * scale), STRIP_HEIGHT)
    rows = []
    for images in (real, made):
        tiles = [cv2.resize(images[i], size, interpolation=cv2.INTER_AREA) for i in chosen]
        rows.append(np.concatenate(tiles, axis=1))
    for column, index in enumerate(chosen):
        colour = (0, 170, 0) if made_found[index] else (220, 0, 0)
        rows[1][-6:, column * size[0] : (column + 1) * size[0]] = colour
        cv2.putText(rows[0], f"{index} yaw {yaw[index]:+.0f}", (column * size[0] + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CHECKOUT_SHARED / "data")
    parser.add_argument("--clips", help="comma-separated clip names (default: the --top clips by yaw range)")
    parser.add_argument("--top", type=int, default=6, help="clips with the largest yaw range to measure")
    parser.add_argument("--method", choices=[m.value for m in GenerationMethod], default=AnimateRequest().method.value)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--strips", type=Path, help="folder for the PNG strips")
    args = parser.parse_args()
    request = AnimateRequest(method=GenerationMethod(args.method))
    fitter = load_fitter(resolve_assets())
    detector = dlib.get_frontal_face_detector()
    clips = sorted(p for p in (args.data / "clips").iterdir() if p.suffix in {".mp4", ".mov"})
    if args.clips:
        clips = [c for c in clips if c.stem in set(args.clips.split(","))]
    started = time.perf_counter()
    ranges = {}
    ranking = FaceFitter(resolve_assets(), blendshapes=False)  # the pose alone, on every 3rd frame
    for clip in clips:
        fit = ranking.track(list(read_frames(clip)[::3]), probe_video(clip).fps / 3, AnimateRequest().smooth)
        seen = fit.params.angles()[:, 0].numpy()[fit.found]
        ranges[clip.stem] = float(np.percentile(seen, 99) - np.percentile(seen, 1)) if len(seen) else 0.0
    ranked = sorted(ranges, key=ranges.get, reverse=True)[: args.top]  # type: ignore[arg-type]
    print("largest yaw ranges:", ", ".join(f"{name} {ranges[name]:.0f}°" for name in ranked), flush=True)
    rows = []
    for name in ranked:
        clip = next(c for c in clips if c.stem == name)
        frames, fit = read_frames(clip), track(fitter, clip)
        yaw = fit.params.angles()[:, 0].numpy()
        made = reenact(fitter, request, frames, fit)
        real_found, made_found = detected(detector, frames), detected(detector, made)
        turned = np.abs(yaw) >= 20
        row = {
            "clip": name,
            "frames": len(frames),
            "yaw_range": round(ranges[name], 1),
            "real_found": float(real_found.mean()),
            "output_found": float(made_found.mean()),
            "turned_frames": int(turned.sum()),
            "output_found_turned": float(made_found[turned].mean()) if turned.any() else None,
            "output_missed_where_real_found": int((real_found & ~made_found).sum()),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.strips:
            args.strips.mkdir(parents=True, exist_ok=True)
            strip(frames, made, yaw, made_found, args.strips / f"{name}.png")
    total_frames = sum(r["frames"] for r in rows)
    summary = {
        "clips": len(rows),
        "output_found": sum(r["output_found"] * r["frames"] for r in rows) / total_frames,
        "real_found": sum(r["real_found"] * r["frames"] for r in rows) / total_frames,
        "worst_clip_output_found": min(r["output_found"] for r in rows),
    }
    report = {"method": args.method, "seconds": round(time.perf_counter() - started), "summary": summary, "clips": rows}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
