"""``animate``: a source portrait made to move like a driving video (or image), written with the
driving clip's audio. The command line, the batch runner and the web page all come here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from facereenact.app.progress import Progress, ProgressFactory, no_progress
from facereenact.app.tracking import Held, track
from facereenact.errors import InputError
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.transfer import MotionMode, neutral_reference
from facereenact.io.image import IMAGE_EXTENSIONS, write_image
from facereenact.io.media import open_media, read_still
from facereenact.io.prefetch import prefetch
from facereenact.io.sequence import FrameFolderWriter
from facereenact.io.video import VIDEO_EXTENSIONS, AudioTrack, VideoWriter
from facereenact.model.checkpoint import check_checkpoint
from facereenact.pipeline.cache import worker_network
from facereenact.pipeline.composite import crop as crop_image
from facereenact.pipeline.composite import reenactment_box
from facereenact.pipeline.reenactor import ANIMATE_BATCH, ReenactedBatch, Reenactor
from facereenact.pipeline.request import CROP_SIZES, SCALE_RANGE, AnimateRequest, GenerationMethod, region_list, resolve_checkpoint
from facereenact.stage import StageMethod

#: What the interfaces build requests from (they import this layer only).
__all__ = [
    "CROP_SIZES", "SCALE_RANGE", "AnimateReport", "AnimateRequest", "GenerationMethod", "MotionMode", "StageMethod",
    "animate_file", "check_checkpoint", "region_list", "resolve_checkpoint", "worker_network",
]  # fmt: skip


@dataclass
class AnimateReport:
    """What was written, and what the user should hear about it."""

    output: Path
    frames: int
    #: Faces found in the source, and the one animated (largest first).
    faces_found: int = 1
    face_index: int = 0
    #: Inclusive driving-frame ranges where the face was lost (those frames hold the last pose).
    lost_ranges: list[tuple[int, int]] = field(default_factory=list)
    #: Ranges where the face was tracked but its eyes, brows and mouth could not be read.
    unread_ranges: list[tuple[int, int]] = field(default_factory=list)
    #: The driving clip had audio that a folder of frames could not carry.
    audio_left_out: bool = False
    #: What could not be read of the driving (a file cut short, damaged data), one line each:
    #: the result covers what was read.
    warnings: list[str] = field(default_factory=list)

    def notes(self, choose_face: str) -> list[str]:
        """The notes for the user; ``choose_face`` says how this interface picks another face."""
        notes = []
        if self.faces_found > 1:
            notes.append(f"the source has {self.faces_found} faces; animating face {self.face_index} (largest first; {choose_face})")
        if self.lost_ranges:
            spans = ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in self.lost_ranges)
            notes.append(f"the driving face was lost in frames {spans}; those frames hold the last good pose and expression")
        if self.unread_ranges:
            spans = ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in self.unread_ranges)
            notes.append(f"the driving eyes, brows and mouth could not be read in frames {spans}; they move from the frames before to those after")
        if self.audio_left_out:
            notes.append("the frames are PNG images: the driving clip's audio is not in them")
        return notes


def animate_file(
    fitter: FaceFitter,
    request: AnimateRequest,
    source: Path,
    driving: Path,
    output: Path,
    progress: ProgressFactory = no_progress,
    method: StageMethod | None = None,
) -> AnimateReport:
    """Animate ``source`` with ``driving`` into ``output``. ``method`` overrides the request's
    (an already loaded network, say); by default the request's checkpoint is loaded once per
    process. The driving video is opened and decoded once: its frames serve tracking, the
    driving mouths and ``compare``, and its audio comes from the same pass."""
    refuse_to_overwrite(output, {"source": source, "driving": driving})
    media = open_media(driving)
    try:
        check_output_kind(output, driving, still=isinstance(media, np.ndarray))
        if method is None:
            checkpoint = request.checkpoint()
            method = worker_network(checkpoint, str(fitter.device)) if checkpoint is not None else None
        source_image = read_still(source)
        if isinstance(media, np.ndarray):
            return _animate_still(fitter, request, Reenactor(source_image, fitter, request.reenact_options(), method), media, driving, output)
    except BaseException:
        if not isinstance(media, np.ndarray):
            media.close()
        raise

    # The source is prepared (found, fitted, cropped) in a second thread while this one tracks
    # the driving video, which leaves part of the machine idle; a source that cannot be animated
    # still stops the tracking at once.
    options = request.reenact_options()
    keep_frames = request.compare or options.uses_driving_frames
    with ThreadPoolExecutor(1, thread_name_prefix="source") as pool, media as reader:
        preparing = pool.submit(Reenactor, source_image, fitter, options, method)
        try:
            tracked = track(fitter, reader, request.smooth, request.max_frames, _stopped_by(preparing, progress), keep_frames)
        except BaseException:
            _raise_if_failed(preparing)  # the source's error first, as when it was prepared first
            raise
        reenactor = preparing.result()
    report = AnimateReport(output, 0, reenactor.faces_found, request.face_index)
    fit, frames = tracked.fit, tracked.frames
    report.warnings = tracked.warnings
    report.lost_ranges = fit.lost_ranges()
    report.unread_ranges = fit.unread_ranges()
    reference = neutral_reference(fit.params, int(np.flatnonzero(fit.found)[0]))
    tick = progress("animating", len(fit))

    # generate() runs in another thread, which needs the CUDA device made current there.
    device = fitter.device
    cuda_index = (device.index if device.index is not None else torch.cuda.current_device()) if device.type == "cuda" else None

    def generate() -> Iterator[tuple[np.ndarray | None, ReenactedBatch]]:
        if cuda_index is not None:
            torch.cuda.set_device(cuda_index)
        for start in range(0, len(fit), ANIMATE_BATCH):
            stop = min(start + ANIMATE_BATCH, len(fit))
            shown = frames.stack(start, stop) if frames is not None else None
            yield shown, reenactor.reenact(fit.params[start:stop], reference, paste=False, frames=shown, found=fit.found[start:stop])

    # Crops are generated in a background thread (PyTorch releases the GIL) while this thread
    # pastes the previous batch and the writer's thread encodes: three stages on two cores.
    report.audio_left_out = _is_frame_folder(output) and reader.audio is not None
    try:
        with _writer(output, tracked.fps, reader.audio, request) as opened:
            writer = Held(opened, tracked.holds)
            stop = 0
            for shown, batch in prefetch(generate(), depth=2):
                start, stop = stop, stop + len(batch.crops)
                results = batch.crops if request.crop_only else reenactor.pasted(batch)
                for offset, produced in enumerate(results):  # one frame at a time: a huge photo's frames are large
                    shown_driving = (shown[offset], fit.landmarks[start + offset]) if shown is not None else None
                    writer.write(_fit_size(_shown(reenactor, request, produced, shown_driving), request.max_size))
                tick(stop - 1)
    finally:
        if frames is not None:
            frames.close()
    report.frames = writer.frames_written
    return report


def _animate_still(fitter: FaceFitter, request: AnimateRequest, reenactor: Reenactor, frame: np.ndarray, driving: Path, output: Path) -> AnimateReport:
    """One picture: the source with a still driving image's pose and expression."""
    driving_params = fitter.fit_one(frame, 0, what=f"driving image {driving.name}").params
    batch = reenactor.reenact(driving_params, driving_params, paste=not request.crop_only, frames=frame[None])
    produced = batch.crops[0] if request.crop_only else next(reenactor.pasted(batch))
    write_image(output, _fit_size(_shown(reenactor, request, produced, (frame, None)), request.max_size))
    return AnimateReport(output, 1, reenactor.faces_found, request.face_index)


def _stopped_by(preparing: Future[Reenactor], progress: ProgressFactory) -> ProgressFactory:
    """``progress``, whose every tick raises the source's error once its preparation has failed."""

    def factory(stage: str, total: int) -> Progress:
        tick = progress(stage, total)

        def checked(index: int) -> None:
            _raise_if_failed(preparing)
            tick(index)

        return checked

    return factory


def _raise_if_failed(preparing: Future[Reenactor]) -> None:
    error = preparing.exception() if preparing.done() else None
    if error is not None:
        raise error


def check_output_kind(output: Path, driving: Path, still: bool) -> None:
    """Refuse an output that cannot hold what ``driving`` gives: one picture for a still image,
    a moving picture for a video or an animation (refused naming both, before any work)."""
    if still and output.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(
            f"the driving {driving} is a still image, so the result is one picture: "
            f"name an image output ({', '.join(IMAGE_EXTENSIONS)}), not {output.name}"
        )
    if not still and output.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(
            f"the driving {driving} moves, so the result does too: name a video output "
            f"({', '.join(VIDEO_EXTENSIONS)}) or a folder for PNG frames (a name without extension), not {output.name}"
        )


def refuse_to_overwrite(output: Path, inputs: dict[str, Path]) -> None:
    """Raise :class:`InputError` when writing ``output`` would replace one of ``inputs`` (named by
    role): the same file under any spelling (``./``, a symlink, a hard link, another case on a
    case-insensitive disk). (A folder of frames is only ever written where none was.)"""
    for role, path in inputs.items():
        if output.exists() and path.exists() and os.path.samefile(output, path):
            raise InputError(f"the output {output} is the {role} {path}: choose another output name")


def _is_frame_folder(output: Path) -> bool:
    """An output named without an extension is a folder of PNG frames."""
    return output.suffix == ""


def _writer(output: Path, fps: float, audio: AudioTrack | None, request: AnimateRequest) -> VideoWriter | FrameFolderWriter:
    if _is_frame_folder(output):
        return FrameFolderWriter(output)
    return VideoWriter(output, fps, audio_from=audio, crf=request.crf)


def _fit_size(frame: np.ndarray, max_size: int | None) -> np.ndarray:
    """A frame (H, W, 3) scaled down (area-averaged) so its longer side is at most ``max_size``."""
    height, width = frame.shape[:2]
    if max_size is None or max(height, width) <= max_size:
        return frame
    scale = max_size / max(height, width)
    return cv2.resize(frame, (max(2, round(width * scale)), max(2, round(height * scale))), interpolation=cv2.INTER_AREA)


def _shown(reenactor: Reenactor, request: AnimateRequest, produced: np.ndarray, driving: tuple[np.ndarray, np.ndarray | None] | None) -> np.ndarray:
    """The result frame, or with ``compare`` the panel source | driving | result. ``driving`` is
    the driving frame and its landmarks (None for a still driving image's)."""
    if not request.compare or driving is None:
        return produced
    height = produced.shape[0]
    source = reenactor.source_crop_uint8() if request.crop_only else reenactor.source_image
    frame, landmarks = driving
    if request.crop_only and landmarks is not None:  # the driving face framed like the source's
        frame = crop_image(frame, reenactment_box(landmarks, reenactor.options.crop_scale), height)
    return np.concatenate([_fit_height(source, height), _fit_height(frame, height), produced], axis=1)


def _fit_height(image: np.ndarray, height: int) -> np.ndarray:
    width = max(2, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if image.shape[0] > height else cv2.INTER_LINEAR)
