"""File-level jobs: read inputs, run the stages, write outputs atomically.

The CLI (and later the web app) call these; they hold no argument parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from facereenact.assets import Assets
from facereenact.composite import crop as crop_image
from facereenact.composite import reenactment_box
from facereenact.errors import InputError
from facereenact.execute import worker_cache
from facereenact.face3d.fitter import FaceFitter, VideoFit
from facereenact.face3d.morphable import identity_matched
from facereenact.face3d.params import FaceParams
from facereenact.face3d.pncc import render_pncc
from facereenact.face3d.records import params_arrays, pose_summary, save_json, save_npz
from facereenact.io.image import is_image_file, read_image, write_image
from facereenact.io.prefetch import prefetch
from facereenact.io.video import (
    VideoInfo,
    VideoWriter,
    is_video_file,
    iter_frames,
    probe_video,
)
from facereenact.pipeline import (
    GenerationStage,
    ReenactedBatch,
    ReenactOptions,
    Reenactor,
)
from facereenact.visualize import fit_overlay, to_uint8_image

Progress = Callable[[int], None]
#: Called once with the number of frames, then once per frame done.
ProgressFactory = Callable[[str, int], Progress]


def worker_fitter(assets: str | Path, device: str = "cpu") -> FaceFitter:
    """The fitter of this worker process, built on its first task and reused by the next ones
    (loading the networks and the face model costs seconds; a clip can take less)."""
    return worker_cache(("fitter", str(assets), device), lambda: FaceFitter(Assets.resolve(assets), device=device))


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


def read_still(path: Path) -> np.ndarray:
    """An image, or the first frame of a video (a source may be either)."""
    return read_image(path) if media_kind(path) == "image" else next(iter_frames(path, 1))


def track_video(
    fitter: FaceFitter, path: Path, smoothing: bool, max_frames: int | None, progress: ProgressFactory
) -> tuple[VideoInfo, VideoFit]:
    """Probe and track a video, with a progress bar over its frames."""
    info = probe_video(path)
    total = min(info.frame_count, max_frames) if max_frames else info.frame_count
    return info, fitter.track(iter_frames(path, max_frames), info.fps, smoothing, on_frame=progress("fitting", total))


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

    info, fit = track_video(fitter, source, smoothing, max_frames, progress)
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
    source_fit = fitter.fit_one(read_still(source), face_index, what=f"source {source.name}")
    driving_kind = media_kind(driving)
    if driving_kind == "image":
        frame = read_image(driving)
        driving_fit = fitter.fit_one(frame, 0, what=f"driving image {driving.name}")
        write_image(output, _pncc_panel(fitter, source_fit.params, driving_fit.params, frame[None])[0])
        return output
    info, fit = track_video(fitter, driving, smoothing, max_frames, progress)
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


@dataclass
class AnimateReport:
    output: Path
    frames: int
    notes: list[str]


def animate_file(
    fitter: FaceFitter,
    source: Path,
    driving: Path,
    output: Path,
    options: ReenactOptions,
    smoothing: bool = True,
    max_frames: int | None = None,
    crop_only: bool = False,
    compare: bool = False,
    progress: ProgressFactory = _no_progress,
    stage: GenerationStage | None = None,
) -> AnimateReport:
    """Animate the source portrait with the driving video (or image) and write the result with
    the driving clip's audio. A still driving image gives a still output image. ``stage`` is the
    generation stage (default: the training-free geometric warp)."""
    notes: list[str] = []
    reenactor = Reenactor(read_still(source), fitter, options, stage)
    if reenactor.faces_found > 1:
        notes.append(
            f"the source has {reenactor.faces_found} faces; animating face {options.face_index} "
            "(largest first; choose with --face-index)"
        )
    if media_kind(driving) == "image":
        frame = read_image(driving)
        driving_params = fitter.fit_one(frame, 0, what=f"driving image {driving.name}").params
        batch = reenactor.reenact(driving_params, driving_params, paste=not crop_only, frames=frame[None])
        picture = _output_frames(reenactor, batch, frame[None], crop_only, compare, None)[0]
        write_image(output, picture)
        return AnimateReport(output, 1, notes)

    info, fit = track_video(fitter, driving, smoothing, max_frames, progress)
    lost = fit.lost_ranges()
    if lost:
        spans = ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in lost)
        notes.append(f"the driving face was lost in frames {spans}; those frames hold the last good pose and expression")
    reference = fit.params[int(np.flatnonzero(fit.found)[0])]
    driving_frames = iter_frames(driving, len(fit)) if compare or reenactor.uses_driving_frames else None
    tick = progress("animating", len(fit))

    # generate() runs in another thread, which needs the CUDA device made current there.
    cuda_index = (fitter.device.index if fitter.device.index is not None else torch.cuda.current_device()) if fitter.device.type == "cuda" else None

    def generate() -> Iterator[tuple[np.ndarray | None, ReenactedBatch]]:
        if cuda_index is not None:
            torch.cuda.set_device(cuda_index)
        for start in range(0, len(fit), ANIMATE_BATCH):
            stop = min(start + ANIMATE_BATCH, len(fit))
            shown = np.stack([next(driving_frames) for _ in range(stop - start)]) if driving_frames else None
            yield shown, reenactor.reenact(fit.params[start:stop], reference, paste=False, frames=shown, found=fit.found[start:stop])

    # Driving frames are decoded and crops generated in a background thread (PyTorch releases
    # the GIL) while this thread pastes the previous batch and the writer's thread encodes:
    # three stages on two cores.
    stop = 0
    with VideoWriter(output, info.fps, audio_from=driving) as writer:
        for shown, batch in prefetch(generate(), depth=2):
            start, stop = stop, stop + len(batch.crops)
            if not crop_only:
                batch.frames = reenactor.paste(batch.crops)
            writer.write_batch(_output_frames(reenactor, batch, shown if compare else None, crop_only, compare, fit.landmarks[start:stop]))
            tick(stop - 1)
    return AnimateReport(output, len(fit), notes)


#: Driving frames generated together (the rasterizer and warp are batched).
ANIMATE_BATCH = 8


def _output_frames(
    reenactor: Reenactor,
    batch: ReenactedBatch,
    driving_frames: np.ndarray | None,
    crop_only: bool,
    compare: bool,
    driving_landmarks: np.ndarray | None,
) -> np.ndarray:
    """The result frames, or with ``compare`` the panel source | driving | result."""
    result = batch.crops if crop_only else batch.frames
    assert result is not None
    if not compare or driving_frames is None:
        return result
    height = result.shape[1]
    source = reenactor.source_crop_uint8() if crop_only else reenactor.source_image
    panels = []
    for index, produced in enumerate(result):
        frame = driving_frames[index]
        if crop_only and driving_landmarks is not None:  # the driving face framed like the source's
            frame = crop_image(frame, reenactment_box(driving_landmarks[index], reenactor.options.crop_scale), height)
        panels.append(np.concatenate([_fit_height(source, height), _fit_height(frame, height), produced], axis=1))
    return np.stack(panels)


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    width = max(2, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR)
