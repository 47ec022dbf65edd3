"""Video-to-video (a clip as the source, another person's clip as the driver), measured.

``speed``: end-to-end frames/s of ``animate --crop-only`` (256², the warp) with a source video,
alternating in one process with the same run's still-portrait baseline (the source clip's first
frame as the photo, the same driver), so both see the machine in the same state.

``quality``: over pairs of clips of different people, with the command line's defaults for a
source video (expression only, the full frame pasted back) and the chosen method:

* identity: dlib's face descriptor of each output frame against the same frame of the source
  clip (cosine similarity, CSIM);
* pose kept: the Pearson r of MediaPipe's yaw and pitch between the output and the source clip;
* expression followed: the mean Pearson r, over the blendshapes the driver moves, between
  MediaPipe's scores of the output and of the driver (at the output's times), beside the same
  for still-portrait animation (the source's first frame, the same driver and method), with
  its defaults (pose and expression) and with expression only (what travels here);
* strips (PNG) of source | driver | output at a few frames, with the face crop's edge marked on
  a copy, to look for a seam.

``group``: three portraits side by side as one photo, ``--face-index all``: the output's size, and
each face's dlib CSIM to itself in the photo; then the same with two drivers (Python API); and
the cost of three faces against one (frames/s end to end, the fitter loaded once, alternating).

Usage::

    python benchmarks/video_to_video.py speed [--frames 150] [--rounds 2] [--out FILE.json]
    python benchmarks/video_to_video.py quality [--frames 60] [--method warp] [--out FILE.json] [--strips DIR]
    python benchmarks/video_to_video.py group [--frames 30] [--cost-frames 100] [--rounds 2] [--out FILE.json] [--strips DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facereenact.app.animate import AnimateRequest, animate_file  # noqa: E402
from facereenact.app.fit import load_fitter  # noqa: E402
from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.evaluate.identity import DlibFaceDescriptor  # noqa: E402
from facereenact.evaluate.references import MediaPipeFace  # noqa: E402
from facereenact.io.image import write_image  # noqa: E402
from facereenact.io.video import probe_video, read_frames  # noqa: E402

DATA = REPO.parent / "shared" / "data"
#: (source clip, driving clip): ten different people as sources, each driven by another person.
PAIRS = [
    ("st_markey", "pcavs_00098"), ("st_menendez", "mimic_german"), ("st_radio2", "hdtf_aoc"), ("st_radio34", "r3dp_may"),
    ("mimic_german", "st_markey"), ("mimic_trump", "st_radio34"), ("r3dp_may", "pcavs_00104"), ("hdtf_aoc", "st_menendez"),
    ("pcavs_00098", "mimic_trump"), ("pcavs_00104", "st_radio2"),
]  # fmt: skip
#: The group photo's portraits, left to right.
GROUP = ["lp_s1", "lp_s5", "lp_s7"]
#: A driver's blendshape that moves less than this (std) is not one it drives.
MIN_DRIVER_STD = 0.02


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    good = np.isfinite(a) & np.isfinite(b)
    a, b = a[good], b[good]
    if len(a) < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


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


def _analyse(frames: np.ndarray, mediapipe: MediaPipeFace) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's (yaw, pitch) (T, 2) and 52 blendshape scores (T, 52) per frame (NaN: no face)."""
    poses, scores = [], []
    for frame in frames:
        face = mediapipe.analyse(frame)
        poses.append(face.yaw_pitch_roll()[:2] if face is not None else (np.nan, np.nan))
        scores.append(face.blendshapes if face is not None and len(face.blendshapes) == 52 else np.full(52, np.nan))
    return np.array(poses, np.float64), np.array(scores, np.float64)


def _following(output: np.ndarray, driver: np.ndarray) -> float:
    """Mean Pearson r over the blendshapes the driver moves."""
    active = np.nanstd(driver, axis=0) > MIN_DRIVER_STD
    values = [_pearson(output[:, k], driver[:, k]) for k in np.flatnonzero(active)]
    return float(np.nanmean(values)) if values else float("nan")


def _csim(descriptor: DlibFaceDescriptor, made: np.ndarray, reference: np.ndarray) -> float:
    """Cosine similarity of dlib's descriptors of ``made`` and ``reference``, both read in the box
    dlib finds in ``reference``."""
    boxes = descriptor.landmarks.detect(reference)
    if not boxes:
        return float("nan")
    return _cosine(descriptor.describe(made, boxes[0]), descriptor.describe(reference, boxes[0]))


def quality(args: argparse.Namespace) -> dict[str, object]:
    assets = resolve_assets(None)
    fitter = load_fitter(assets, "cpu")
    descriptor = DlibFaceDescriptor()
    strips = Path(args.strips) if args.strips else None
    if strips is not None:
        strips.mkdir(parents=True, exist_ok=True)
    rows = []
    with MediaPipeFace(assets) as mediapipe, tempfile.TemporaryDirectory() as scratch:
        for source_name, driving_name in PAIRS[: args.pairs]:
            source, driving = args.data / "clips" / f"{source_name}.mp4", args.data / "clips" / f"{driving_name}.mp4"
            request = AnimateRequest(method=args.method, max_frames=args.frames)  # type: ignore[arg-type]
            video_out, still_out, still = Path(scratch) / "video", Path(scratch) / "still", Path(scratch) / "still.png"
            still_expression_out = Path(scratch) / "still_expression"
            for folder in (video_out, still_out, still_expression_out):
                if folder.exists():
                    for file in folder.iterdir():
                        file.unlink()
                    folder.rmdir()
            source_frames = read_frames(source, args.frames)
            write_image(still, source_frames[0])
            start = time.perf_counter()
            report = animate_file(fitter, request, source, driving, video_out)
            seconds = time.perf_counter() - start
            animate_file(fitter, request, still, driving, still_out)
            animate_file(fitter, replace(request, expression_only=True), still, driving, still_expression_out)
            made, from_still, from_still_expression = (_read_folder(folder) for folder in (video_out, still_out, still_expression_out))
            source_fps, driving_fps = probe_video(source).fps, probe_video(driving).fps
            at = np.minimum(np.floor(np.arange(len(made)) * driving_fps / source_fps + 1e-6).astype(int), probe_video(driving).frame_count - 1)
            driver_frames = read_frames(driving, int(at[-1]) + 1)[at]
            count = min(len(made), len(source_frames), len(driver_frames), len(from_still), len(from_still_expression))
            made, source_frames, driver_frames = made[:count], source_frames[:count], driver_frames[:count]
            made_pose, made_scores = _analyse(made, mediapipe)
            source_pose, _ = _analyse(source_frames, mediapipe)
            driver_pose, driver_scores = _analyse(driver_frames, mediapipe)
            _, still_scores = _analyse(from_still[:count], mediapipe)
            _, still_expression_scores = _analyse(from_still_expression[:count], mediapipe)
            csim = [_csim(descriptor, m, s) for m, s in zip(made, source_frames, strict=True)]
            row = {
                "source": source_name, "driving": driving_name, "frames": count, "frames_written": report.frames,
                "seconds": round(seconds, 2),
                "csim_to_source_frame": float(np.nanmean(csim)), "csim_min": float(np.nanmin(csim)),
                "yaw_r_to_source": _pearson(made_pose[:, 0], source_pose[:, 0]),
                "pitch_r_to_source": _pearson(made_pose[:, 1], source_pose[:, 1]),
                "yaw_r_to_driver": _pearson(made_pose[:, 0], driver_pose[:, 0]),
                "pitch_r_to_driver": _pearson(made_pose[:, 1], driver_pose[:, 1]),
                "source_yaw_pitch_std_deg": [round(float(v), 2) for v in np.nanstd(source_pose, axis=0)],
                "yaw_pitch_rmse_to_source_deg": [round(float(v), 2) for v in np.sqrt(np.nanmean((made_pose - source_pose) ** 2, axis=0))],
                "blendshape_r_to_driver": _following(made_scores, driver_scores),
                "still_blendshape_r_to_driver": _following(still_scores, driver_scores),
                "still_expression_only_blendshape_r_to_driver": _following(still_expression_scores, driver_scores),
            }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
            if strips is not None:
                _strip(strips / f"{source_name}__{driving_name}.png", source_frames, driver_frames, made)
    keys = [
        "csim_to_source_frame", "csim_min", "yaw_r_to_source", "pitch_r_to_source", "yaw_r_to_driver", "pitch_r_to_driver",
        "blendshape_r_to_driver", "still_blendshape_r_to_driver", "still_expression_only_blendshape_r_to_driver",
    ]  # fmt: skip
    summary = {key: float(np.nanmean([row[key] for row in rows])) for key in keys}
    return {"method": args.method, "frames": args.frames, "pairs": rows, "mean": summary}


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


def _read_folder(folder: Path) -> np.ndarray:
    """A folder of PNG frames (T, H, W, 3) RGB."""
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.iterdir())])


def _strip(path: Path, source: np.ndarray, driver: np.ndarray, made: np.ndarray, height: int = 256) -> None:
    """Rows source | driver | output at five frames, and the output's difference to the source
    (amplified) to show where the paste-back changed the frame."""
    picks = np.linspace(0, len(made) - 1, 5).astype(int)

    def row(frames: np.ndarray) -> np.ndarray:
        return np.concatenate([cv2.resize(f, (round(f.shape[1] * height / f.shape[0]), height), interpolation=cv2.INTER_AREA) for f in frames[picks]], 1)

    difference = np.clip(np.abs(made.astype(np.int16) - source.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    rows = [row(source), row(driver), row(made), row(difference)]
    width = max(r.shape[1] for r in rows)
    write_image(path, np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "quality", "group"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cost-frames", type=int, default=100, help="group: frames of each cost run")
    parser.add_argument("--pairs", type=int, default=len(PAIRS))
    parser.add_argument("--source", default="st_markey")
    parser.add_argument("--driving", default="hdtf_aoc")
    parser.add_argument("--method", default="warp")
    parser.add_argument("--strips", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.frames is None:
        args.frames = {"speed": 150, "quality": 60, "group": 30}[args.what]
    result = {"speed": speed, "quality": quality, "group": group}[args.what](args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
