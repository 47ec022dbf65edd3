"""Video-to-video (a clip as the source, another person's clip as the driver), measured.

``speed``: end-to-end frames/s of ``animate --crop-only`` (256², the warp) with a source video,
alternating in one process with the same run's still-portrait baseline (the source clip's first
frame as the photo, the same driver), so both see the machine in the same state.

Its quality (identity per frame, the source's pose kept, the driver's expression followed, over
pairs of clips of different people) is the evaluation's video-to-video protocol:
``facereenact evaluate --protocols video`` (see docs/evaluation.md).

``group``: three portraits side by side as one photo, ``--face-index all``: the output's size, and
each face's dlib CSIM to itself in the photo; then the same with two drivers (Python API); and
the cost of three faces against one (frames/s end to end, the fitter loaded once, alternating).

Usage::

    python benchmarks/video_to_video.py speed [--frames 150] [--rounds 2] [--out FILE.json]
    python benchmarks/video_to_video.py group [--frames 30] [--cost-frames 100] [--rounds 2] [--out FILE.json] [--strips DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facereenact.app.animate import AnimateRequest, animate_file  # noqa: E402
from facereenact.app.fit import load_fitter  # noqa: E402
from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.evaluate.identity import DlibFaceDescriptor  # noqa: E402
from facereenact.io.image import write_image  # noqa: E402
from facereenact.io.video import read_frames  # noqa: E402

DATA = REPO.parent / "shared" / "data"
#: The group photo's portraits, left to right.
GROUP = ["lp_s1", "lp_s5", "lp_s7"]


def speed(args: argparse.Namespace) -> dict[str, object]:
    fitter = load_fitter(resolve_assets(None), "cpu")
    source, driving = args.data / "clips" / f"{args.source}.mp4", args.data / "clips" / f"{args.driving}.mp4"
    request = AnimateRequest(method="warp", crop_only=True, max_frames=args.frames)  # type: ignore[arg-type]
    rounds: dict[str, list[float]] = {"still": [], "video": []}
    with tempfile.TemporaryDirectory() as scratch:
        still = Path(scratch) / "still.png"
        write_image(still, read_frames(source, 1)[0])
        for round_ in range(args.rounds):
            for name, given in (("still", still), ("video", source)):
                output = Path(scratch) / f"{name}{round_}.mp4"
                start = time.perf_counter()
                report = animate_file(fitter, request, given, driving, output)
                rate = report.frames / (time.perf_counter() - start)
                rounds[name].append(round(rate, 1))
                print(f"{name}: {rate:.1f} frames/s ({report.frames} frames)", flush=True)
    return {"source": args.source, "driving": args.driving, "frames": args.frames, "frames_per_second": rounds}


def group(args: argparse.Namespace) -> dict[str, object]:
    """Three portraits side by side, every face animated (one driver; then two, through the
    Python API); each face's dlib CSIM to itself in the photo, per output frame."""
    import facereenact

    descriptor = DlibFaceDescriptor()
    pictures = [cv2.cvtColor(cv2.imread(str(args.data / "portraits" / f"{name}.jpg")), cv2.COLOR_BGR2RGB) for name in GROUP]
    photo = np.concatenate([cv2.resize(p, (round(p.shape[1] * 400 / p.shape[0]), 400), interpolation=cv2.INTER_AREA) for p in pictures], 1)
    boxes = sorted(descriptor.landmarks.detect(photo), key=lambda box: box[0])  # left to right
    references = [descriptor.describe(photo, box) for box in boxes]
    clips = args.data / "clips"
    runs = {
        "one driver, face_index all": {"driving": clips / "hdtf_aoc.mp4", "face_index": "all"},
        "two drivers (Python API), faces 0 and 1": {"driving": [clips / "hdtf_aoc.mp4", clips / "pcavs_00098.mp4"], "face_index": [0, 1]},
        "one face (face_index 0), for the cost": {"driving": clips / "hdtf_aoc.mp4", "face_index": 0},
    }
    results: dict[str, object] = {"photo": list(photo.shape[:2]), "portraits": GROUP, "faces_found_by_dlib": len(boxes)}
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "group.png"
        write_image(source, photo)
        # The cost: one face against all three, end to end with the fitter loaded once, alternating.
        fitter = load_fitter(resolve_assets(None), "cpu")
        cost: dict[str, list[float]] = {"one face": [], "three faces": []}
        for round_ in range(args.rounds):
            for name, faces in (("one face", 0), ("three faces", "all")):
                output = Path(scratch) / f"cost{round_}{faces}.mp4"
                start = time.perf_counter()
                report = animate_file(fitter, AnimateRequest(method=args.method, max_frames=args.cost_frames, face_index=faces), source, clips / "hdtf_aoc.mp4", output)  # type: ignore[arg-type]
                cost[name].append(round(report.frames / (time.perf_counter() - start), 2))
                print(name, cost[name][-1], "frames/s", flush=True)
        results["frames_per_second_with_the_fitter_loaded"] = cost
        for name, run in runs.items():
            output = Path(scratch) / f"{len(results)}.mp4"
            start = time.perf_counter()
            report = facereenact.animate(source, run["driving"], output, method=args.method, max_frames=args.frames, face_index=run["face_index"])  # type: ignore[arg-type]
            seconds = time.perf_counter() - start
            frames = read_frames(output)
            csim = [[_cosine(descriptor.describe(frame, box), reference) for frame in frames] for box, reference in zip(boxes, references, strict=True)]
            results[name] = {
                "output_size": list(frames.shape[1:3]), "frames": report.frames, "seconds_with_loading": round(seconds, 2),
                "csim_per_face_left_to_right": [round(float(np.mean(c)), 4) for c in csim],
                "csim_min_per_face": [round(float(np.min(c)), 4) for c in csim],
                "changed_per_face": [round(float(np.mean(np.abs(frames.astype(np.int16) - photo.astype(np.int16))[:, int(b[1]) : int(b[3]), int(b[0]) : int(b[2])])), 2) for b in boxes],
            }  # fmt: skip
            print(name, json.dumps(results[name]), flush=True)
            if args.strips:
                Path(args.strips).mkdir(parents=True, exist_ok=True)
                picks = frames[np.linspace(0, len(frames) - 1, 3).astype(int)]
                write_image(Path(args.strips) / f"group_{len(results)}.png", np.concatenate([photo, *picks], 0))
    return results


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "group"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cost-frames", type=int, default=100, help="group: frames of each cost run")
    parser.add_argument("--source", default="st_markey")
    parser.add_argument("--driving", default="hdtf_aoc")
    parser.add_argument("--method", default="warp")
    parser.add_argument("--strips", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.frames is None:
        args.frames = {"speed": 150, "group": 30}[args.what]
    result = {"speed": speed, "group": group}[args.what](args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
