"""Reenacting a source video's frames: each output frame is one source frame with the driver's
motion, measured from the driver's resting reference, added to it, and pasted back into that
frame, so the source keeps its own head movement, background and lighting. The expression the
driver's motion is added to is the source clip's resting one (for the regions that travel), so
the source's own talking does not add to the driver's. Each frame is warped from its own fit
(:attr:`~facereenact.face3d.fitter.VideoFit.frame_fits`), so that what a smoothed fit would
miss of its expression is undone as well; the smoothed track places the crop boxes.

``animate`` with a source video (:mod:`facereenact.app.source_video`) and the evaluation's
video-to-video protocol both make their frames here, from two tracked clips.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from facereenact.face3d.blendshapes import Region, region_mask
from facereenact.face3d.fitter import VideoFit
from facereenact.face3d.morphable import MorphableModel
from facereenact.face3d.params import FaceParams
from facereenact.face3d.transfer import MotionOptions, clip_reference, neutral_reference
from facereenact.pipeline.composite import crop, reenactment_box
from facereenact.pipeline.reenactor import ANIMATE_BATCH, ReenactOptions
from facereenact.pipeline.request import LengthPolicy
from facereenact.pipeline.sources import BoundSources
from facereenact.stage import StageMethod, WarpResult


def timeline(source_count: int, source_fps: float, driving_count: int, driving_fps: float, length: LengthPolicy) -> tuple[np.ndarray, np.ndarray]:
    """For each output frame (at the source's rate), the source frame and the driving frame it
    shows: the driving frame is the one on screen at that output frame's time. ``shortest``
    stops with the shorter clip; ``loop`` and ``pingpong`` last as long as the driver."""
    driving_span = math.ceil(driving_count * source_fps / driving_fps - 1e-6)
    count = min(source_count, driving_span) if length is LengthPolicy.shortest else driving_span
    k = np.arange(count)
    driving = np.minimum(np.floor(k * driving_fps / source_fps + 1e-6).astype(np.int64), driving_count - 1)
    if length is LengthPolicy.pingpong and source_count > 1:
        period = 2 * (source_count - 1)
        phase = k % period
        source = np.where(phase < source_count, phase, period - phase)
    else:
        source = k % source_count
    return source, driving


@dataclass
class VideoBatch:
    """One batch of output frames: the source frames they show, which of them had a face, and
    (for those) the bound sources and the generated crops."""

    frames: list[np.ndarray]
    live: np.ndarray
    boxes: np.ndarray
    driving_frames: np.ndarray | None
    driving_landmarks: np.ndarray
    bound: BoundSources | None = None
    crops: np.ndarray | None = None
    stage: WarpResult | None = None


def _bases(params: FaceParams, reference: FaceParams, motion: MotionOptions) -> FaceParams:
    """The source frames' fits (T,), with the resting expression of the source clip in the
    regions the driver moves: the driver's change is added to that, not to the source's own
    expression of the moment (which would make two people's talking add up)."""
    if not motion.transfer_expression:
        return params
    chosen = torch.from_numpy(region_mask(motion.regions)).to(params.blendshapes.device)
    blendshapes = torch.where(chosen, reference.blendshapes.expand_as(params.blendshapes), params.blendshapes)
    expression = reference.expression.expand_as(params.expression) if Region.mouth in motion.regions else params.expression
    return params.replace(expression=expression.contiguous(), blendshapes=blendshapes.contiguous())


class Frames(Protocol):
    """Decoded frames by index: a :class:`~facereenact.io.video.FrameStore` or a list."""

    def __getitem__(self, index: int) -> np.ndarray: ...


def reenacted_batches(
    model: MorphableModel,
    options: ReenactOptions,
    source_frames: Frames,
    source_fit: VideoFit,
    driving_frames: Frames | None,
    driving_fit: VideoFit,
    source_at: np.ndarray,
    driving_at: np.ndarray,
    method: StageMethod | None,
) -> Iterator[VideoBatch]:
    """The output frames' batches: output frame k is source frame ``source_at[k]`` with the
    motion of driving frame ``driving_at[k]`` (see the module docstring). The frames are read
    here alone, so this may run in a background thread. ``animate`` and the evaluation's
    video-to-video protocol both make their frames here."""
    motion, crop_size, crop_scale = options.motion, options.crop_size, options.crop_scale
    device = model.triangles.device
    cuda_index = (device.index if device.index is not None else torch.cuda.current_device()) if device.type == "cuda" else None
    if cuda_index is not None:
        torch.cuda.set_device(cuda_index)
    found = source_fit.found
    reference, reference_points = clip_reference(driving_fit)
    # Each source frame is warped from its own fit; its crop box follows the smoothed one, steady.
    own = source_fit.frame_fits
    bases = _bases(own, neutral_reference(own, int(np.flatnonzero(found)[0])), motion)
    mouths = driving_frames is not None and options.uses_driving_frames
    for start in range(0, len(source_at), ANIMATE_BATCH):
        at, by = source_at[start : start + ANIMATE_BATCH], driving_at[start : start + ANIMATE_BATCH]
        shown = [source_frames[int(i)] for i in at]
        live = found[at]
        boxes = np.stack([reenactment_box(points, crop_scale) for points in source_fit.landmarks[at]])
        frames_of_driving = np.stack([driving_frames[int(i)] for i in by]) if driving_frames is not None else None
        batch = VideoBatch(shown, live, boxes, frames_of_driving, driving_fit.landmarks[by])
        if live.any():
            chosen = at[live]
            pictures = [f for f, keep in zip(shown, live, strict=True) if keep]
            points = source_fit.points_of(chosen)
            batch.bound = BoundSources(model, pictures, own[chosen].to(device), source_fit.landmarks[chosen], crop_size, crop_scale, method, points)
            donors = frames_of_driving[live] if mouths and frames_of_driving is not None else None
            batch.crops, batch.stage, _ = batch.bound.generate(
                motion, driving_fit.params[by[live]], reference, bases[chosen], donors, driving_fit.found[by[live]], driving_fit.points_of(by[live]), reference_points
            )  # fmt: skip
        yield batch


def output_frames(batch: VideoBatch, crop_only: bool, crop_size: int) -> Iterator[np.ndarray]:
    """The batch's output frames in order: generated where the source face was tracked, the
    source frame (or its crop) as it is elsewhere."""
    results: Iterator[np.ndarray] = iter(())
    if batch.bound is not None and batch.crops is not None:
        results = iter(batch.crops) if crop_only or batch.stage is None else batch.bound.pasted(batch.crops, batch.stage)
    for frame, live, box in zip(batch.frames, batch.live, batch.boxes, strict=True):
        if live:
            yield next(results)
        else:
            yield crop(frame, box, crop_size) if crop_only else frame
