"""File-level jobs: read inputs, run the stages, write outputs atomically.

The CLI (and later the web app) call these; they hold no argument parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facereenact.errors import InputError
from facereenact.face3d.fitter import FaceFitter, VideoFit
from facereenact.face3d.morphable import identity_matched
from facereenact.face3d.params import FaceParams
from facereenact.face3d.pncc import render_pncc
from facereenact.face3d.records import params_arrays, pose_summary, save_json, save_npz
from facereenact.io.image import is_image_file, read_image, write_image
from facereenact.io.video import VideoWriter, is_video_file, iter_frames, probe_video
from facereenact.visualize import fit_overlay, to_uint8_image

Progress = Callable[[int], None]
#: Called once with the number of frames, then once per frame done.
ProgressFactory = Callable[[str, int], Progress]


def _no_progress(_: str, __: int) -> Progress:
    return lambda _: None


def media_kind(path: Path) -> str:
    """'image' or 'video', judged by content; a clear error for anything else."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if is_image_file(path):
        return "image"
    if is_video_file(path):
        return "video"
    raise InputError(f"{path} is neither an image nor a video that can be decoded")


@dataclass
class FitOutputs:
    arrays: Path
    summary: Path
    overlay: Path


def fit_file(
    fitter: FaceFitter,
    source: Path,
    out_dir: Path,
    smoothing: bool = True,
    max_frames: int | None = None,
    progress: ProgressFactory = _no_progress,
) -> FitOutputs:
    """Fit every face of an image, or track the face through a video, and save the results."""
    kind = media_kind(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = source.stem
    overlay_suffix = ".png" if kind == "image" else ".mp4"
    outputs = FitOutputs(out_dir / f"{stem}.fit.npz", out_dir / f"{stem}.fit.json", out_dir / f"{stem}.overlay{overlay_suffix}")
    if kind == "image":
        image = read_image(source)
        faces = fitter.fit_image(image)
        if not faces:
            raise InputError(f"no face found in {source}")
        params = FaceParams.cat([face.params for face in faces])
        arrays = params_arrays(params)
        arrays["landmarks"] = np.stack([face.landmarks for face in faces]).astype(np.float32)
        arrays["detection_boxes"] = np.array([face.detection.box for face in faces], np.float32)
        arrays["detection_scores"] = np.array([face.detection.score for face in faces], np.float32)
        summary: dict[str, Any] = {
            "input": str(source),
            "kind": "image",
            "size": [int(image.shape[1]), int(image.shape[0])],
            "mesh": fitter.model.name,
            "faces": [
                {"box": [round(v, 1) for v in face.detection.box], "score": round(face.detection.score, 4), **pose}
                for face, pose in zip(faces, pose_summary(params))
            ],
        }
        overlay = fit_overlay(image, fitter.model, params.to(fitter.device))
        save_npz(outputs.arrays, arrays)
        save_json(outputs.summary, summary)
        write_image(outputs.overlay, overlay)
        return outputs

    info = probe_video(source)
    total = min(info.frame_count, max_frames) if max_frames else info.frame_count
    fit = fitter.track(iter_frames(source, max_frames), info.fps, smoothing, on_frame=progress("fitting", total))
    arrays = params_arrays(fit.params)
    arrays.update(landmarks=fit.landmarks.astype(np.float32), crop_boxes=fit.boxes.astype(np.float32), found=fit.found)
    summary = {
        "input": str(source),
        "kind": "video",
        "size": [info.width, info.height],
        "fps": info.fps,
        "frames": len(fit),
        "frames_with_face": int(fit.found.sum()),
        "lost_ranges": [list(r) for r in fit.lost_ranges()],
        "full_frame_detections": fit.detections,
        "smoothing": smoothing,
        "mesh": fitter.model.name,
        "pose_range": _pose_range(fit),
    }
    tick = progress("overlay", len(fit))
    with VideoWriter(outputs.overlay, info.fps) as writer:
        for index, frame in enumerate(iter_frames(source, len(fit))):
            writer.write(fit_overlay(frame, fitter.model, fit.params[index].to(fitter.device)))
            tick(index)
    save_npz(outputs.arrays, arrays)
    save_json(outputs.summary, summary)
    return outputs


def _pose_range(fit: VideoFit) -> dict[str, list[float]]:
    angles = fit.params.angles().cpu().numpy()
    return {name: [round(float(angles[:, i].min()), 1), round(float(angles[:, i].max()), 1)] for i, name in enumerate(("yaw", "pitch", "roll"))}


def pncc_file(
    fitter: FaceFitter,
    source: Path,
    driving: Path,
    output: Path,
    smoothing: bool = True,
    max_frames: int | None = None,
    face_index: int = 0,
    progress: ProgressFactory = _no_progress,
) -> Path:
    """Each driving frame beside the identity-matched PNCC: SOURCE identity, DRIVING pose and
    expression. A still driving image gives a still output image."""
    source_image = read_image(source) if media_kind(source) == "image" else next(iter_frames(source, 1))
    source_fit = fitter.fit_one(source_image, face_index, what=f"source {source.name}")
    driving_kind = media_kind(driving)
    if driving_kind == "image":
        frame = read_image(driving)
        driving_fit = fitter.fit_one(frame, 0, what=f"driving image {driving.name}")
        write_image(output, _pncc_panel(fitter, source_fit.params, driving_fit.params, frame[None])[0])
        return output
    info = probe_video(driving)
    total = min(info.frame_count, max_frames) if max_frames else info.frame_count
    fit = fitter.track(iter_frames(driving, max_frames), info.fps, smoothing, on_frame=progress("fitting", total))
    tick = progress("rendering", len(fit))
    batch = 8
    with VideoWriter(output, info.fps, audio_from=driving) as writer:
        frames: list[np.ndarray] = []
        for index, frame in enumerate(iter_frames(driving, len(fit))):
            frames.append(frame)
            if len(frames) == batch or index == len(fit) - 1:
                first = index + 1 - len(frames)
                panel = _pncc_panel(fitter, source_fit.params, fit.params[first : index + 1], np.stack(frames))
                writer.write_batch(panel)
                frames.clear()
            tick(index)
    return output


@torch.inference_mode()
def _pncc_panel(fitter: FaceFitter, source: FaceParams, driving: FaceParams, frames: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) driving frames → (B, H, 2W, 3): frame | identity-matched PNCC."""
    matched = identity_matched(source.to(fitter.device), driving.to(fitter.device))
    pncc, _, _ = render_pncc(fitter.model, fitter.model.vertices(matched), frames.shape[1], frames.shape[2])
    return np.concatenate([frames, to_uint8_image(pncc)], axis=2)
