"""``fit``: the 3D face model fitted to every face of an image, or tracked through a video."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facereenact.app.progress import ProgressFactory, no_progress
from facereenact.app.tracking import Held, track
from facereenact.errors import InputError
from facereenact.face3d.fitter import FaceFitter, VideoFit
from facereenact.face3d.params import FaceParams
from facereenact.face3d.records import params_arrays, pose_summary, save_json, save_npz
from facereenact.face3d.visualize import fit_overlay
from facereenact.io.assets import Assets
from facereenact.io.image import write_image
from facereenact.io.media import open_media
from facereenact.io.video import VideoWriter


def load_fitter(assets: Assets, device: str = "cpu") -> FaceFitter:
    """The detector, regressor and morphable model, loaded once and shared by the use cases."""
    return FaceFitter(assets, device=device)


@dataclass
class FitOutputs:
    arrays: Path
    summary: Path
    overlay: Path
    #: What could not be read of a video (a file cut short, damaged data), one line each.
    warnings: list[str] = field(default_factory=list)


def fit_file(
    fitter: FaceFitter,
    source: Path,
    out_dir: Path,
    smoothing: bool = True,
    max_frames: int | None = None,
    progress: ProgressFactory = no_progress,
) -> FitOutputs:
    """Fit every face of an image, or track the face through a video, and save the results."""
    media = open_media(source, with_audio=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = source.stem
    overlay_suffix = ".png" if isinstance(media, np.ndarray) else ".mp4"
    outputs = FitOutputs(out_dir / f"{stem}.fit.npz", out_dir / f"{stem}.fit.json", out_dir / f"{stem}.overlay{overlay_suffix}")
    if isinstance(media, np.ndarray):
        image = media
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

    with media as reader:
        tracked = track(fitter, reader, smoothing, max_frames, progress, keep_frames=True)
    fit, frames = tracked.fit, tracked.frames
    outputs.warnings = tracked.warnings
    assert frames is not None
    with frames:
        height, width = frames[0].shape[:2]
        arrays = params_arrays(fit.params)
        arrays.update(landmarks=fit.landmarks.astype(np.float32), crop_boxes=fit.boxes.astype(np.float32), found=fit.found)
        summary = {
            "input": str(source),
            "kind": "video",
            "size": [width, height],
            "fps": tracked.fps,
            "frames": len(fit),
            "frames_with_face": int(fit.found.sum()),
            "lost_ranges": [list(r) for r in fit.lost_ranges()],
            "full_frame_detections": fit.detections,
            "smoothing": smoothing,
            "mesh": fitter.model.name,
            "pose_range": _pose_range(fit),
        }
        tick = progress("overlay", len(fit))
        with VideoWriter(outputs.overlay, tracked.fps) as opened:
            writer = Held(opened, tracked.holds)
            for index in range(len(fit)):
                writer.write(fit_overlay(frames[index], fitter.model, fit.params[index].to(fitter.device)))
                tick(index)
    save_npz(outputs.arrays, arrays)
    save_json(outputs.summary, summary)
    return outputs


def _pose_range(fit: VideoFit) -> dict[str, list[float]]:
    angles = fit.params.angles().cpu().numpy()
    return {name: [round(float(angles[:, i].min()), 1), round(float(angles[:, i].max()), 1)] for i, name in enumerate(("yaw", "pitch", "roll"))}
