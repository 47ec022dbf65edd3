"""``facereenact prepare``: a folder of talking-head videos → stable face crops and 3DMM fits.

Per clip: the face is tracked (detector on the first frame and when lost), a crop box framed
like ``animate``'s source crop is smoothed over time so crops do not jitter, every frame is
cropped to ``size``² and JPEG-coded, and the fits are stored in crop pixels
(:mod:`facereenact.train.clipstore`). Clips are tasks of the execution layer
(:mod:`facereenact.execute`: local worker processes or a Ray cluster), each written under a
temporary name and renamed when complete, so a re-run skips what is done and a killed run leaves
no half-written clip. The driver writes the manifest once, listing every prepared clip with its
identity and every failed clip with its reason.

Identities: in VoxCeleb-style nested folders (``id/video/clip.mp4``) the first folder is the
identity. For a flat folder each clip is its own identity unless an identities file groups
clips of one person: one group per line, clip names (file stems) separated by spaces or commas,
``#`` starts a comment. ``identities.txt`` inside the videos folder is read by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from facereenact.errors import InputError
from facereenact.execute import Backend, LocalBackend, RunSummary, Task, TaskOutput, TaskResult, run_all
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.pncc import params_to_crop
from facereenact.io.assets import Assets
from facereenact.io.atomic import atomic_output, remove_partial
from facereenact.io.identities import read_identity_groups
from facereenact.io.video import iter_frames, probe_video
from facereenact.pipeline.cache import worker_fitter
from facereenact.pipeline.composite import crop, reenactment_box
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
class ClipToPrepare:
    video: Path
    clip: str
    identity: str


@dataclass
class PrepareReport:
    summary: RunSummary
    manifest: Path


def find_videos(root: Path) -> list[Path]:
    """Every video file under ``root`` (any depth), sorted."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def plan_jobs(videos_dir: Path, groups: dict[str, str]) -> list[ClipToPrepare]:
    """One job per video, with a unique clip name and its identity."""
    jobs = []
    for video in find_videos(videos_dir):
        parts = video.relative_to(videos_dir).with_suffix("").parts
        clip = "__".join(parts)
        identity = parts[0] if len(parts) > 1 else groups.get(parts[0], parts[0])
        jobs.append(ClipToPrepare(video, clip, identity))
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


def prepare_clip(fitter: FaceFitter, job: ClipToPrepare, out_file: Path, size: int, max_frames: int | None) -> int:
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


# ---- the run ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepareSettings:
    """What every clip's task needs besides its clip (small: it travels with each task)."""

    assets: str
    size: int
    max_frames: int | None


def prepare_task(settings: PrepareSettings, job: ClipToPrepare, out_file: Path) -> TaskOutput:
    """One clip, on whichever worker runs it; the worker's fitter is built once and reused."""
    fitter = worker_fitter(settings.assets, "cpu")
    return TaskOutput(frames=prepare_clip(fitter, job, out_file, settings.size, settings.max_frames))


def prepare_dataset(
    videos_dir: Path,
    out_dir: Path,
    assets: Assets,
    size: int = 256,
    workers: int | None = None,
    max_frames: int | None = None,
    identities: Path | None = None,
    backend: Backend | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    log: Callable[[str], None] = print,
    on_start: Callable[[int], None] | None = None,
) -> PrepareReport:
    """Prepare every video under ``videos_dir`` into ``out_dir`` (see the module docstring) on
    ``backend`` (default: local worker processes, ``workers`` of them). ``on_start`` hears how
    many clips are to be prepared, ``on_result`` each clip's result as it arrives."""
    if not videos_dir.is_dir():
        raise InputError(f"videos folder {videos_dir} does not exist")
    # Workers (on other machines, in other folders) read and write these: absolute paths.
    videos_dir, out_dir = videos_dir.absolute(), out_dir.absolute()
    identities = identities or (videos_dir / IDENTITIES_FILE if (videos_dir / IDENTITIES_FILE).is_file() else None)
    jobs = plan_jobs(videos_dir, read_identity_groups(identities) if identities else {})
    if not jobs:
        raise InputError(f"no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under {videos_dir}")
    clips_dir = out_dir / "clips"
    try:
        clips_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create {clips_dir}: {error.strerror or error}") from None
    summary = RunSummary()
    todo = []
    for job in jobs:
        meta = read_meta(clips_dir / f"{job.clip}.npz")
        done = meta is not None and meta.get("size") == size and meta.get("max_frames") == max_frames
        (summary.skipped.append(job.clip) if done else todo.append(job))
    settings = PrepareSettings(str(assets.root.absolute()), size, max_frames)
    tasks = [Task(job.clip, prepare_task, (settings, job, clips_dir / f"{job.clip}.npz")) for job in todo]
    if on_start is not None:
        on_start(len(tasks))
    try:
        run_all(backend or LocalBackend(workers), tasks, summary, on_result, log=log)
    finally:  # also when interrupted (a Ray worker cancelled late may leave one; the next run sweeps it)
        for job in todo:
            remove_partial(clips_dir / f"{job.clip}.npz")
    return PrepareReport(summary, write_manifest(out_dir, jobs, summary.failed))


def write_manifest(out_dir: Path, jobs: list[ClipToPrepare], failed: list[tuple[str, str]]) -> Path:
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
