"""``facereenact prepare``: a folder of talking-head videos → stable face crops and 3DMM fits.

Per clip: the face is tracked (detector on the first frame and when lost), a crop box framed
like ``animate``'s source crop is smoothed over time so crops do not jitter, every frame is
cropped to ``size``² and JPEG-coded, and the fits are stored in crop pixels
(:mod:`facereenact.train.clipstore`). Clips run in parallel processes, each written under a
temporary name and renamed when complete, so a re-run skips what is done and a killed run leaves
no half-written clip. A manifest lists every prepared clip with its identity.

Identities: in VoxCeleb-style nested folders (``id/video/clip.mp4``) the first folder is the
identity. For a flat folder each clip is its own identity unless an identities file groups
clips of one person: one group per line, clip names (file stems) separated by spaces or commas,
``#`` starts a comment. ``identities.txt`` inside the videos folder is read by default.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from facereenact.assets import Assets
from facereenact.composite import crop, reenactment_box
from facereenact.errors import FaceReenactError, InputError
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.pncc import params_to_crop
from facereenact.io.atomic import atomic_output
from facereenact.io.video import iter_frames, probe_video
from facereenact.train.clipstore import PreparedClip, encode_crops, read_meta, save_clip

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".m4v"}
MANIFEST = "manifest.json"
IDENTITIES_FILE = "identities.txt"
#: Crop side over the landmarks' extent: the framing of ``animate``'s source crop, so the
#: network trains on what it is given at inference.
CROP_SCALE = 2.0
#: Temporal smoothing of the crop box (seconds): slow enough that crops hold still while the
#: head moves inside them, fast enough to follow a person walking across the frame.
BOX_SMOOTHING_S = 1.0


@dataclass(frozen=True)
class ClipJob:
    video: Path
    clip: str
    identity: str


@dataclass
class PrepareReport:
    prepared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    manifest: Path | None = None


def find_videos(root: Path) -> list[Path]:
    """Every video file under ``root`` (any depth), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def read_identity_groups(path: Path) -> dict[str, str]:
    """clip name → identity (the first name of its group) from an identities file."""
    mapping: dict[str, str] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise InputError(f"cannot read identities file {path}: {error.strerror or error}") from None
    for line in lines:
        names = line.split("#", 1)[0].replace(",", " ").split()
        for name in names:
            mapping[name] = names[0]
    return mapping


def plan_jobs(videos_dir: Path, groups: dict[str, str]) -> list[ClipJob]:
    """One job per video, with a unique clip name and its identity."""
    jobs = []
    for video in find_videos(videos_dir):
        parts = video.relative_to(videos_dir).with_suffix("").parts
        clip = "__".join(parts)
        identity = parts[0] if len(parts) > 1 else groups.get(parts[0], parts[0])
        jobs.append(ClipJob(video, clip, identity))
    return jobs


def stable_boxes(landmarks: np.ndarray, found: np.ndarray, fps: float, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """Square crop boxes (T, 4) from landmarks (T, 68, 3+): each frame's framing, its centre and
    side smoothed over time (lost frames take their neighbours')."""
    framing = np.stack([reenactment_box(points, crop_scale) for points in landmarks])
    centre = (framing[:, :2] + framing[:, 2:]) / 2
    side = framing[:, 2] - framing[:, 0]
    good = np.flatnonzero(found) if found.any() else np.arange(len(found))
    frames = np.arange(len(found))
    track = np.stack([np.interp(frames, good, values) for values in (centre[good, 0], centre[good, 1], side[good])], 1)
    track = gaussian_filter1d(track, sigma=max(BOX_SMOOTHING_S * fps, 1e-3), axis=0, mode="nearest")
    half = track[:, 2:3] / 2
    return np.concatenate([track[:, :2] - half, track[:, :2] + half], 1)


def prepare_clip(fitter: FaceFitter, job: ClipJob, out_file: Path, size: int, max_frames: int | None) -> int:
    """Track, crop and store one clip; returns its frame count."""
    info = probe_video(job.video)
    fit = fitter.track(iter_frames(job.video, max_frames), info.fps)
    boxes = stable_boxes(fit.landmarks, fit.found, info.fps)
    crops = [crop(frame, box, size) for frame, box in zip(iter_frames(job.video, len(fit)), boxes)]
    if len(crops) != len(fit):
        raise InputError(f"{job.video}: decoded {len(crops)} frames on the second pass, {len(fit)} on the first")
    box_t = torch.from_numpy(boxes).float()
    params = params_to_crop(fit.params, box_t, size)
    scale = (size / (boxes[:, 2] - boxes[:, 0]))[:, None]
    landmarks = (fit.landmarks - np.concatenate([boxes[:, None, :2], np.zeros((len(boxes), 1, 1))], -1)) * scale[:, :, None]
    jpeg, offsets = encode_crops(crops)
    lost = [list(r) for r in fit.lost_ranges()]
    meta = {
        "clip": job.clip,
        "identity": job.identity,
        "video": str(job.video),
        "frames": len(fit),
        "fps": info.fps,
        "size": size,
        "crop_scale": CROP_SCALE,
        "lost_frames": lost,
        "max_frames": max_frames,
        "mesh": fitter.model.name,
    }
    arrays = {key: value.detach().cpu().numpy() for key, value in params.as_dict().items()}
    save_clip(out_file, PreparedClip(meta, arrays, landmarks.astype(np.float32), boxes, fit.found, jpeg, offsets))
    return len(fit)


# ---- the pool ------------------------------------------------------------------------------
_worker_fitter: FaceFitter | None = None


def _init_worker(assets_root: str, threads: int) -> None:
    global _worker_fitter
    torch.set_num_threads(threads)
    _worker_fitter = FaceFitter(Assets.resolve(assets_root))


def _run_job(job: ClipJob, out_file: Path, size: int, max_frames: int | None) -> tuple[str, int, str | None]:
    """(clip, frames, error message or None): a bad video is reported, never fatal to the run."""
    assert _worker_fitter is not None
    try:
        return job.clip, prepare_clip(_worker_fitter, job, out_file, size, max_frames), None
    except FaceReenactError as error:
        return job.clip, 0, str(error)
    except Exception as error:  # noqa: BLE001 (a codec failure on one odd file must not stop thousands)
        return job.clip, 0, f"{type(error).__name__}: {error}"


def prepare_dataset(
    videos_dir: Path,
    out_dir: Path,
    assets: Assets,
    size: int = 256,
    workers: int | None = None,
    max_frames: int | None = None,
    identities: Path | None = None,
    on_clip: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] = print,
) -> PrepareReport:
    """Prepare every video under ``videos_dir`` into ``out_dir`` (see the module docstring)."""
    if not videos_dir.is_dir():
        raise InputError(f"videos folder {videos_dir} does not exist")
    identities = identities or (videos_dir / IDENTITIES_FILE if (videos_dir / IDENTITIES_FILE).is_file() else None)
    jobs = plan_jobs(videos_dir, read_identity_groups(identities) if identities else {})
    if not jobs:
        raise InputError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {videos_dir}")
    clips_dir = out_dir / "clips"
    try:
        clips_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create {clips_dir}: {error.strerror or error}") from None
    report = PrepareReport()
    todo = []
    for job in jobs:
        meta = read_meta(clips_dir / f"{job.clip}.npz")
        done = meta is not None and meta.get("size") == size and meta.get("max_frames") == max_frames
        (report.skipped.append(job.clip) if done else todo.append(job))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    started = time.perf_counter()
    finished = 0
    if todo:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(str(assets.root), threads)) as pool:
            futures = [pool.submit(_run_job, job, clips_dir / f"{job.clip}.npz", size, max_frames) for job in todo]
            for future in as_completed(futures):
                clip, frames, error = future.result()
                finished += 1
                if error is None:
                    report.prepared.append(clip)
                    report.frames += frames
                else:
                    report.failed.append((clip, error))
                    log(f"skipped {clip}: {error}")
                if on_clip is not None:
                    on_clip(finished, len(todo))
    report.seconds = time.perf_counter() - started
    report.manifest = write_manifest(out_dir, jobs, report.failed)
    return report


def write_manifest(out_dir: Path, jobs: list[ClipJob], failed: list[tuple[str, str]]) -> Path:
    """The manifest of every prepared clip in ``out_dir`` (this run's and earlier runs')."""
    entries: list[dict[str, Any]] = []
    for file in sorted((out_dir / "clips").glob("*.npz")):
        meta = read_meta(file)
        if meta is None:
            continue
        entries.append({key: meta[key] for key in ("clip", "identity", "frames", "fps", "size", "lost_frames", "video")} | {"file": f"clips/{file.name}"})
    manifest = {"clips": entries, "failed": [{"clip": clip, "reason": reason} for clip, reason in failed]}
    path = out_dir / MANIFEST
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return path
