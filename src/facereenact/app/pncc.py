"""``pncc``: each driving frame beside its identity-matched PNCC (SOURCE identity, DRIVING pose
and expression), the geometry the generator is conditioned on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facereenact.app.animate import check_output_kind
from facereenact.app.progress import ProgressFactory, no_progress
from facereenact.app.tracking import Held, track
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.morphable import identity_matched
from facereenact.face3d.params import FaceParams
from facereenact.face3d.pncc import render_pncc
from facereenact.face3d.visualize import to_uint8_image
from facereenact.io.image import write_image
from facereenact.io.media import open_media, read_still
from facereenact.io.video import VideoWriter

#: Driving frames rendered together.
RENDER_BATCH = 8


def pncc_file(
    fitter: FaceFitter,
    source: Path,
    driving: Path,
    output: Path,
    smoothing: bool = True,
    max_frames: int | None = None,
    face_index: int = 0,
    progress: ProgressFactory = no_progress,
) -> PnccReport:
    """Write the panels; a still driving image gives a still output image."""
    media = open_media(driving)
    try:
        check_output_kind(output, driving, still=isinstance(media, np.ndarray))
        source_fit = fitter.fit_one(read_still(source), face_index, what=f"source {source.name}")
    except BaseException:
        if not isinstance(media, np.ndarray):
            media.close()
        raise
    if isinstance(media, np.ndarray):
        frame = media
        driving_fit = fitter.fit_one(frame, 0, what=f"driving image {driving.name}")
        write_image(output, _pncc_panel(fitter, source_fit.params, driving_fit.params, frame[None])[0])
        return PnccReport(output, 1)
    with media as reader:
        tracked = track(fitter, reader, smoothing, max_frames, progress, keep_frames=True)
    fit, frames = tracked.fit, tracked.frames
    assert frames is not None
    tick = progress("rendering", len(fit))
    with frames, VideoWriter(output, tracked.fps, audio_from=reader.audio) as opened:
        writer = Held(opened, tracked.holds)
        for start in range(0, len(fit), RENDER_BATCH):
            stop = min(start + RENDER_BATCH, len(fit))
            writer.write_batch(_pncc_panel(fitter, source_fit.params, fit.params[start:stop], frames.stack(start, stop)))
            tick(stop - 1)
    return PnccReport(output, writer.frames_written, tracked.warnings)


@dataclass
class PnccReport:
    """What was written, and what could not be read of the driving (one line each)."""

    output: Path
    frames: int
    warnings: list[str] = field(default_factory=list)


@torch.inference_mode()
def _pncc_panel(fitter: FaceFitter, source: FaceParams, driving: FaceParams, frames: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) driving frames → (B, H, 2W, 3): frame | identity-matched PNCC."""
    matched = identity_matched(source.to(fitter.device), driving.to(fitter.device))
    pncc, _, _ = render_pncc(fitter.model, fitter.model.vertices(matched), frames.shape[1], frames.shape[2])
    return np.concatenate([frames, to_uint8_image(pncc)], axis=2)
