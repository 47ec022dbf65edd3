"""Accuracy of the 3D face fitter against independent references (dlib, MediaPipe).

Measures the acceptance points of the face3d issue over ``../shared/data``:

a) landmarks: NME = mean over the 68 points of |ours - dlib| / inter-ocular distance (dlib's
   outer eye corners 36 and 45), on each portrait (``fit_image``) and on every ``--every``-th
   frame of every clip (``track`` on the whole clip with smoothing, then compared at the
   sampled frames) where our |yaw| < 30°. Target: mean < 0.08 for the portrait set and per clip.
b) pose: median |yaw_ours - yaw_MediaPipe| per clip over the same frames. Target: < 8°.
c) mirror: each portrait and its horizontal mirror; |yaw + yaw_mirror| and |roll + roll_mirror|.
   Target: < 3°.
d) tracking: share of frames where the face was found (target ≥ 98 %) and the number of
   full-frame detector runs.

Only the sampled frames go to the references (dlib ~8 ms with a box, MediaPipe ~18 ms, our
detector for dlib's box ~25 ms), so most of the time is our tracker: the full run over the 81
clips (17,465 frames) took 8.4 min with ``--threads 1`` on 2 cores shared with another job.
On a busy machine pass ``--threads 1``: two torch threads competing with another process ran
the tracker ten times slower.

Usage::

    PYTHONPATH=src python benchmarks/accuracy_face3d.py [--data DIR] [--every 10]
        [--out results.json] [--clips lp_d0 grid_bbaf2n.mp4 ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from facereenact.app.locations import resolve_assets  # noqa: E402
from facereenact.errors import FaceReenactError  # noqa: E402
from facereenact.evaluate.references import MEDIAPIPE_TO_68, DlibLandmarks, MediaPipeFace, MediaPipeResult  # noqa: E402
from facereenact.face3d.fitter import FaceFitter  # noqa: E402
from facereenact.io.assets import Assets  # noqa: E402
from facereenact.io.image import read_image  # noqa: E402
from facereenact.io.video import iter_frames, probe_video  # noqa: E402

TARGET_NME = 0.08
TARGET_YAW_DIFF = 8.0
TARGET_MIRROR = 3.0
TARGET_FOUND = 0.98
VIDEO_EXTENSIONS = {".mp4", ".mov", ".avi", ".mkv", ".webm"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
MAPPED_IBUG = np.array(sorted(MEDIAPIPE_TO_68))
MAPPED_MESH = np.array([MEDIAPIPE_TO_68[i] for i in MAPPED_IBUG])


# ---- measures ------------------------------------------------------------------------------------
def nme(ours: np.ndarray, reference: np.ndarray) -> float:
    """Mean point distance over the 68 points, divided by the reference's outer-eye-corner distance."""
    iod = float(np.linalg.norm(reference[36] - reference[45]))
    return float(np.linalg.norm(ours[:, :2] - reference[:, :2], axis=1).mean() / iod)


def nme_mediapipe(ours: np.ndarray, face: MediaPipeResult) -> float:
    """NME over the mapped points only (the fallback reference), normalised by MediaPipe's eye corners."""
    mesh = face.landmarks
    iod = float(np.linalg.norm(mesh[MEDIAPIPE_TO_68[36]] - mesh[MEDIAPIPE_TO_68[45]]))
    return float(np.linalg.norm(ours[MAPPED_IBUG, :2] - mesh[MAPPED_MESH], axis=1).mean() / iod)


def yaw_difference(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def box_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (l, t, r, b) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def landmark_box(points: np.ndarray) -> tuple[float, float, float, float]:
    low, high = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return (float(low[0]), float(low[1]), float(high[0]), float(high[1]))


def closest_mediapipe_face(faces: list[MediaPipeResult], ours: np.ndarray) -> MediaPipeResult | None:
    """The MediaPipe face whose mapped points lie nearest ours (clips can show several people)."""
    if not faces:
        return None
    return min(faces, key=lambda f: float(np.linalg.norm(f.landmarks[MAPPED_MESH] - ours[MAPPED_IBUG, :2], axis=1).mean()))


def finite(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def mean_or_nan(values: list[float]) -> float:
    array = finite(values)
    return float(array.mean()) if array.size else math.nan


def max_or_nan(values: list[float]) -> float:
    array = finite(values)
    return float(array.max()) if array.size else math.nan


def median_or_nan(values: list[float]) -> float:
    array = finite(values)
    return float(np.median(array)) if array.size else math.nan


# ---- the run -------------------------------------------------------------------------------------
class Evaluator:
    def __init__(self, assets: Assets, every: int, max_yaw: float):
        self.fitter = FaceFitter(assets)
        self.dlib = DlibLandmarks()
        self.mediapipe = MediaPipeFace(assets, num_faces=3)
        self.every = every
        self.max_yaw = max_yaw
        self.seconds = {"track": 0.0, "detector_hint": 0.0, "dlib": 0.0, "mediapipe": 0.0, "portraits": 0.0}

    def close(self) -> None:
        self.mediapipe.close()

    def _dlib(self, rgb: np.ndarray, hint: tuple[float, float, float, float]) -> np.ndarray:
        start = time.perf_counter()
        points = self.dlib.landmarks(rgb, box_hint=hint)
        self.seconds["dlib"] += time.perf_counter() - start
        return points  # with a hint dlib always answers

    def _mediapipe(self, rgb: np.ndarray, ours: np.ndarray) -> MediaPipeResult | None:
        start = time.perf_counter()
        face = closest_mediapipe_face(self.mediapipe.analyse_all(rgb), ours)
        self.seconds["mediapipe"] += time.perf_counter() - start
        return face

    # ---- portraits ----
    def portrait(self, path: Path) -> dict[str, Any]:
        start = time.perf_counter()
        rgb = read_image(path)
        row: dict[str, Any] = {"name": path.name, "size": list(rgb.shape[:2])}
        sides = {}
        for side, image in (("original", rgb), ("mirror", np.ascontiguousarray(rgb[:, ::-1]))):
            faces = self.fitter.fit_image(image)
            if not faces:
                sides[side] = None
                continue
            face = faces[0]
            yaw, pitch, roll = (float(v) for v in face.params.angles()[0])
            reference = self._dlib(image, face.detection.box)
            mp_face = self._mediapipe(image, face.landmarks)
            mp_pose = mp_face.yaw_pitch_roll() if mp_face is not None else (math.nan,) * 3
            sides[side] = {
                "faces": len(faces),
                "yaw": yaw,
                "pitch": pitch,
                "roll": roll,
                "nme": nme(face.landmarks, reference),
                "nme_mediapipe": nme_mediapipe(face.landmarks, mp_face) if mp_face is not None else math.nan,
                "mediapipe_yaw": mp_pose[0],
                "mediapipe_pitch": mp_pose[1],
                "mediapipe_roll": mp_pose[2],
                "yaw_diff": yaw_difference(yaw, mp_pose[0]),
            }
        row.update(sides)
        original, mirror = sides.get("original"), sides.get("mirror")
        if original and mirror:
            row["mirror_yaw"] = abs(original["yaw"] + mirror["yaw"])
            row["mirror_roll"] = abs(original["roll"] + mirror["roll"])
        else:
            row["mirror_yaw"] = row["mirror_roll"] = math.nan
        fails = []
        if not original:
            fails.append("no face")
        else:
            if not original["nme"] < TARGET_NME:
                fails.append(f"NME {original['nme']:.3f}")
        if not (row["mirror_yaw"] < TARGET_MIRROR and row["mirror_roll"] < TARGET_MIRROR):
            fails.append(f"mirror yaw {row['mirror_yaw']:.1f} roll {row['mirror_roll']:.1f}")
        row["fails"] = fails
        self.seconds["portraits"] += time.perf_counter() - start
        return row

    # ---- clips ----
    def clip(self, path: Path) -> dict[str, Any]:
        info = probe_video(path)
        sampled: dict[int, np.ndarray] = {}
        decoded = [0]

        def frames() -> Iterator[np.ndarray]:
            for index, frame in enumerate(iter_frames(path)):
                decoded[0] = index + 1
                if index % self.every == 0:
                    sampled[index] = frame
                yield frame

        row: dict[str, Any] = {"name": path.name, "fps": info.fps, "size": [info.height, info.width]}
        start = time.perf_counter()
        try:
            fit = self.fitter.track(frames(), info.fps, smoothing=True)
        except FaceReenactError as error:
            row.update(frames=decoded[0], found=0.0, detections=0, error=str(error), samples=[])
            row["track_seconds"] = time.perf_counter() - start
            return self._clip_summary(row)
        row["track_seconds"] = time.perf_counter() - start
        self.seconds["track"] += row["track_seconds"]
        row.update(frames=len(fit), found=float(fit.found.mean()), detections=int(fit.detections))
        row["lost_ranges"] = fit.lost_ranges()
        angles = fit.params.angles().cpu().numpy()
        samples = []
        for index in sorted(sampled):
            if index >= len(fit):
                break
            frame = sampled[index]
            ours = fit.landmarks[index]
            yaw, pitch, roll = (float(v) for v in angles[index])
            sample: dict[str, Any] = {"frame": index, "found": bool(fit.found[index]), "yaw": yaw, "pitch": pitch, "roll": roll}
            samples.append(sample)
            if not fit.found[index] or abs(yaw) >= self.max_yaw:
                continue
            hint, source = self._hint(frame, ours)
            sample["hint"] = source
            sample["nme"] = nme(ours, self._dlib(frame, hint))
            mp_face = self._mediapipe(frame, ours)
            if mp_face is not None:
                mp_yaw, mp_pitch, mp_roll = mp_face.yaw_pitch_roll()
                sample.update(
                    mediapipe_yaw=mp_yaw,
                    mediapipe_pitch=mp_pitch,
                    mediapipe_roll=mp_roll,
                    yaw_diff=yaw_difference(yaw, mp_yaw),
                    nme_mediapipe=nme_mediapipe(ours, mp_face),
                )
        row["samples"] = samples
        return self._clip_summary(row)

    def _hint(self, frame: np.ndarray, ours: np.ndarray) -> tuple[tuple[float, float, float, float], str]:
        """Where dlib should look: our detector's box that overlaps our tracked face most.

        If the detector finds nothing there, a HOG-style box built from our landmarks 17-67 (the
        jaw is left out: on a turned head our 3D jaw points of the far side project beyond the
        visible cheek, and dlib started from the box of all 68 points can lock onto the cheek).
        """
        start = time.perf_counter()
        tracked = landmark_box(ours)
        detections = self.fitter.detector.detect(frame)
        self.seconds["detector_hint"] += time.perf_counter() - start
        best = max(detections, key=lambda d: box_overlap(d.box, tracked), default=None)
        if best is not None and box_overlap(best.box, tracked) > 0.2:
            return best.box, "detector"
        return DlibLandmarks.box_from_landmarks(ours[:, :2]), "landmarks"

    @staticmethod
    def _clip_summary(row: dict[str, Any]) -> dict[str, Any]:
        samples = row["samples"]
        compared = [s for s in samples if "nme" in s]
        row["sampled"] = len(samples)
        row["compared"] = len(compared)
        row["skipped_yaw"] = sum(1 for s in samples if s["found"] and "nme" not in s)
        row["skipped_lost"] = sum(1 for s in samples if not s["found"])
        row["mediapipe_missing"] = sum(1 for s in compared if "yaw_diff" not in s)
        row["nme_mean"] = mean_or_nan([s["nme"] for s in compared])
        row["nme_max"] = float(max((s["nme"] for s in compared), default=math.nan))
        row["nme_mediapipe_mean"] = mean_or_nan([s.get("nme_mediapipe", math.nan) for s in compared])
        row["yaw_diff_median"] = median_or_nan([s.get("yaw_diff", math.nan) for s in compared])
        row["hint_from_landmarks"] = sum(1 for s in compared if s.get("hint") == "landmarks")
        fails = []
        if "error" in row:
            fails.append(row["error"])
        if not row["found"] >= TARGET_FOUND:
            fails.append(f"found {100 * row['found']:.1f}%")
        notes = []
        if row["compared"] == 0:
            # Not a failure of a target: nothing was measurable (e.g. the head is turned > 30°
            # in every sampled frame). Reported so that it is not mistaken for a pass either.
            notes.append(f"no frame compared ({row['skipped_yaw']} sampled frames with |yaw| >= max, {row['skipped_lost']} lost)")
        else:
            if not row["nme_mean"] < TARGET_NME:
                fails.append(f"NME {row['nme_mean']:.3f}")
            if not row["yaw_diff_median"] < TARGET_YAW_DIFF:
                fails.append(f"yaw diff {row['yaw_diff_median']:.1f}°")
        row["fails"] = fails
        row["notes"] = notes
        return row


# ---- reporting -----------------------------------------------------------------------------------
def fmt(value: float, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def print_portraits(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'portrait':<12} {'faces':>5} {'yaw':>6} {'NME':>6} {'NMEmir':>6} {'NMEmp':>6} {'yawMP':>6} {'|dYaw|':>6} {'mirYaw':>6} {'mirRoll':>7}  fails")
    for row in rows:
        o = row.get("original") or {}
        m = row.get("mirror") or {}
        print(
            f"{row['name']:<12} {o.get('faces', 0):>5} {fmt(o.get('yaw', math.nan), '6.1f')} {fmt(o.get('nme', math.nan), '6.3f')} "
            f"{fmt(m.get('nme', math.nan), '6.3f')} {fmt(o.get('nme_mediapipe', math.nan), '6.3f')} {fmt(o.get('mediapipe_yaw', math.nan), '6.1f')} "
            f"{fmt(o.get('yaw_diff', math.nan), '6.1f')} {fmt(row['mirror_yaw'], '6.1f')} {fmt(row['mirror_roll'], '7.1f')}  {'; '.join(row['fails'])}"
        )


CLIP_HEADER = (
    f"{'clip':<24} {'frames':>6} {'found%':>6} {'det':>4} {'cmp':>4} {'yaw>':>4} {'NME':>6} {'NMEmax':>6} {'NMEmp':>6} {'dYaw':>5} {'track s':>7}  fails"
)


def clip_line(row: dict[str, Any]) -> str:
    return (
        f"{row['name']:<24} {row['frames']:>6} {100 * row['found']:>6.1f} {row['detections']:>4} {row['compared']:>4} {row['skipped_yaw']:>4} "
        f"{fmt(row['nme_mean'], '6.3f')} {fmt(row['nme_max'], '6.3f')} {fmt(row['nme_mediapipe_mean'], '6.3f')} {fmt(row['yaw_diff_median'], '5.1f')} "
        f"{row['track_seconds']:>7.1f}  {'; '.join(row['fails'] + [f'({n})' for n in row['notes']])}"
    )


def summarise(portraits: list[dict[str, Any]], clips: list[dict[str, Any]]) -> dict[str, Any]:
    originals = [r["original"] for r in portraits if r.get("original")]
    samples = [s for r in clips for s in r["samples"] if "nme" in s]
    frames = sum(r["frames"] for r in clips)
    return {
        "portraits": {
            "count": len(portraits),
            "nme_mean": mean_or_nan([o["nme"] for o in originals]),
            "nme_mean_below_max_yaw": mean_or_nan([o["nme"] for o in originals if abs(o["yaw"]) < 30]),
            "yaw_diff_median": median_or_nan([o["yaw_diff"] for o in originals]),
            "mirror_yaw_max": max_or_nan([r["mirror_yaw"] for r in portraits]),
            "mirror_roll_max": max_or_nan([r["mirror_roll"] for r in portraits]),
            "mirror_yaw_mean": mean_or_nan([r["mirror_yaw"] for r in portraits]),
            "mirror_roll_mean": mean_or_nan([r["mirror_roll"] for r in portraits]),
            "failing": [r["name"] for r in portraits if r["fails"]],
        },
        "clips": {
            "count": len(clips),
            "frames": frames,
            "compared_frames": len(samples),
            "nme_mean_over_frames": mean_or_nan([s["nme"] for s in samples]),
            "nme_mean_over_clips": mean_or_nan([r["nme_mean"] for r in clips]),
            "nme_mediapipe_mean_over_frames": mean_or_nan([s.get("nme_mediapipe", math.nan) for s in samples]),
            "yaw_diff_median_over_frames": median_or_nan([s.get("yaw_diff", math.nan) for s in samples]),
            "found_share": float(sum(r["found"] * r["frames"] for r in clips) / frames) if frames else math.nan,
            "detections": int(sum(r["detections"] for r in clips)),
            "failing": {r["name"]: r["fails"] for r in clips if r["fails"]},
            "not_measured": {r["name"]: r["notes"] for r in clips if r["notes"]},
        },
    }


def print_summary(summary: dict[str, Any], seconds: dict[str, float], total: float) -> None:
    p, c = summary["portraits"], summary["clips"]
    print("\n== overall")
    if p["count"]:
        print(
            f"portraits ({p['count']}): mean NME {fmt(p['nme_mean'], '.3f')} (target < {TARGET_NME}; |yaw| < 30° only: "
            f"{fmt(p['nme_mean_below_max_yaw'], '.3f')}), median |yaw - MediaPipe| {fmt(p['yaw_diff_median'], '.1f')}°, "
            f"mirror |yaw+yaw'| mean {fmt(p['mirror_yaw_mean'], '.1f')}° max {fmt(p['mirror_yaw_max'], '.1f')}°, "
            f"|roll+roll'| mean {fmt(p['mirror_roll_mean'], '.1f')}° max {fmt(p['mirror_roll_max'], '.1f')}° (target < {TARGET_MIRROR}°)"
        )
        print(f"failing portraits: {', '.join(p['failing']) or 'none'}")
    print(
        f"clips ({c['count']}, {c['frames']} frames, {c['compared_frames']} compared): mean NME {fmt(c['nme_mean_over_frames'], '.3f')} over frames, "
        f"{fmt(c['nme_mean_over_clips'], '.3f')} over clips (MediaPipe-mapped: {fmt(c['nme_mediapipe_mean_over_frames'], '.3f')}); "
        f"median |yaw - MediaPipe| {fmt(c['yaw_diff_median_over_frames'], '.1f')}°; found {fmt(100 * c['found_share'], '.2f')}%; "
        f"{c['detections']} full-frame detections"
    )
    print(f"failing clips ({len(c['failing'])}):")
    for name, fails in c["failing"].items():
        print(f"  {name}: {'; '.join(fails)}")
    for name, notes in c["not_measured"].items():
        print(f"  not measured, {name}: {'; '.join(notes)}")
    parts = ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items())
    print(f"time: {total:.0f}s in all ({parts})")


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def select_clips(folder: Path, wanted: list[str] | None) -> list[Path]:
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS) if folder.is_dir() else []
    if wanted:
        names = set(wanted)
        clips = [p for p in clips if p.name in names or p.stem in names]
        missing = names - {p.name for p in clips} - {p.stem for p in clips}
        if missing:
            raise SystemExit(f"no such clip(s) in {folder}: {', '.join(sorted(missing))}")
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder with clips/ and portraits/ (default: ../shared/data beside the repo)")
    parser.add_argument("--every", type=int, default=10, help="compare every N-th frame of each clip (default 10)")
    parser.add_argument("--out", type=Path, default=None, help="write all results to this JSON file")
    parser.add_argument("--clips", nargs="+", default=None, help="only these clips (file names or stems); portraits are then skipped unless --portraits")
    parser.add_argument("--portraits", action="store_true", help="with --clips: evaluate the portraits too")
    parser.add_argument("--assets", type=Path, default=None, help="assets folder (default: FACEREENACT_ASSETS or ../shared/assets)")
    parser.add_argument("--max-yaw", type=float, default=30.0, help="compare clip frames with our |yaw| below this (default 30)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice; 1 on a busy machine)")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error("--every must be at least 1")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    clips = select_clips(args.data / "clips", args.clips)
    portrait_dir = args.data / "portraits"
    portrait_paths = []
    if (args.clips is None or args.portraits) and portrait_dir.is_dir():
        portrait_paths = sorted(p for p in portrait_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not clips and not portrait_paths:
        raise SystemExit(f"nothing to evaluate in {args.data} (expected clips/ and portraits/)")

    evaluator = Evaluator(resolve_assets(args.assets), args.every, args.max_yaw)
    try:
        portraits = [evaluator.portrait(p) for p in portrait_paths]
        if portraits:
            print_portraits(portraits)
        clip_rows = []
        if clips:
            print(f"\n{CLIP_HEADER}", flush=True)
        for path in clips:
            row = evaluator.clip(path)
            clip_rows.append(row)
            print(clip_line(row), flush=True)
    finally:
        evaluator.close()

    total = time.perf_counter() - started
    summary = summarise(portraits, clip_rows)
    print_summary(summary, evaluator.seconds, total)
    if args.out is not None:
        result = {
            "settings": {"every": args.every, "max_yaw": args.max_yaw, "data": str(args.data)},
            "targets": {"nme": TARGET_NME, "yaw_diff": TARGET_YAW_DIFF, "mirror": TARGET_MIRROR, "found": TARGET_FOUND},
            "summary": summary,
            "seconds": {**evaluator.seconds, "total": total},
            "portraits": portraits,
            "clips": clip_rows,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(json_safe(result), indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
