"""``animate``: a source portrait made to move like a driving video (or image), written with the
driving clip's audio; a source video goes to :mod:`facereenact.app.source_video`. The command
line, the batch runner and the web page all come here."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from facereenact.app.cores import generating_threads
from facereenact.app.faces import animate_faces
from facereenact.app.output import fit_height, fit_size, is_frame_folder, open_writer
from facereenact.app.progress import Progress, ProgressFactory, no_progress
from facereenact.app.report import AnimateReport
from facereenact.app.source_video import animate_source_video
from facereenact.app.tracking import Held, track
from facereenact.errors import InputError, OptionError
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.transfer import MotionMode, clip_reference
from facereenact.io.image import IMAGE_EXTENSIONS, write_image
from facereenact.io.media import open_media
from facereenact.io.prefetch import prefetch
from facereenact.io.video import VIDEO_EXTENSIONS
from facereenact.model.checkpoint import check_checkpoint
from facereenact.pipeline.cache import worker_network
from facereenact.pipeline.composite import crop as crop_image
from facereenact.pipeline.composite import reenactment_box
from facereenact.pipeline.reenactor import ANIMATE_BATCH, ReenactedBatch, Reenactor
from facereenact.pipeline.request import (
    CROP_SIZES,
    SCALE_RANGE,
    AnimateRequest,
    AudioFrom,
    GenerationMethod,
    LengthPolicy,
    VideoMotion,
    region_list,
    resolve_checkpoint,
)
from facereenact.stage import StageMethod

#: What the interfaces build requests from (they import this layer only).
__all__ = [
    "CROP_SIZES", "SCALE_RANGE", "AnimateReport", "AnimateRequest", "AudioFrom", "GenerationMethod", "LengthPolicy", "MotionMode",
    "StageMethod", "VideoMotion", "animate_file", "check_checkpoint", "region_list", "resolve_checkpoint", "worker_network",
]  # fmt: skip


def animate_file(
    fitter: FaceFitter,
    request: AnimateRequest,
    source: Path,
    driving: Path | Sequence[Path],
    output: Path,
    progress: ProgressFactory = no_progress,
    method: StageMethod | None = None,
) -> AnimateReport:
    """Animate ``source`` (a photo, or a video: see :mod:`facereenact.app.source_video`) with
    ``driving`` into ``output``. ``method`` overrides the request's (an already loaded network,
    say); by default the request's checkpoint is loaded once per process. The driving video is
    opened and decoded once: its frames serve tracking, the driving mouths and ``compare``, and
    its audio comes from the same pass. Several faces of a photo (``face_index`` all or a list)
    take one ``driving`` for all, or a list of them, one per face (see :mod:`facereenact.app.faces`)."""
    drivings = [driving] if isinstance(driving, Path) else list(driving)
    for each in drivings:
        refuse_to_overwrite(output, {"source": source, "driving": each})
    source_media = open_media(source, with_audio=request.audio is AudioFrom.source)
    if method is None:
        checkpoint = request.checkpoint()
        method = worker_network(checkpoint, str(fitter.device)) if checkpoint is not None else None
    if not isinstance(source_media, np.ndarray):
        if request.several_faces or len(drivings) > 1:
            source_media.close()
            raise OptionError(("face_index",), "is for a source photo: a source video's largest face is the one animated", request.face_index)
        return animate_source_video(fitter, request, source_media, source, drivings[0], output, progress, method)
    if request.audio is AudioFrom.source:
        raise OptionError(("audio",), f"is for a source video; the source {source.name} is a still image, without audio", request.audio.value)
    if request.several_faces or len(drivings) > 1:
        return animate_faces(fitter, request, source_media, source, drivings, output, progress, method)
    driving = drivings[0]
    media = open_media(driving, with_audio=request.audio is AudioFrom.driving)
    try:
        check_output_kind(output, driving, still=isinstance(media, np.ndarray))
        if isinstance(media, np.ndarray):
            return _animate_still(fitter, request, Reenactor(source_media, fitter, request.reenact_options(), method), media, driving, output)
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
        preparing = pool.submit(Reenactor, source_media, fitter, options, method)
        try:
            tracked = track(fitter, reader, request.smooth, request.max_frames, _stopped_by(preparing, progress), keep_frames)
        except BaseException:
            _raise_if_failed(preparing)  # the source's error first, as when it was prepared first
            raise
        reenactor = preparing.result()
    report = AnimateReport(output, 0, reenactor.faces_found, options.face_index)
    fit, frames = tracked.fit, tracked.frames
    report.warnings = tracked.warnings
    report.lost_ranges = fit.lost_ranges()
    report.unread_ranges = fit.unread_ranges()
    reference, reference_points = clip_reference(fit)
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
            batch = slice(start, stop)
            yield shown, reenactor.reenact(
                fit.params[batch], reference, paste=False, frames=shown, found=fit.found[batch], points=fit.points_of(batch), reference_points=reference_points
            )

    # Crops are generated in a background thread (PyTorch releases the GIL) while this thread
    # pastes the previous batch and the writer's thread encodes: three stages on two cores.
    report.audio_left_out = is_frame_folder(output) and reader.audio is not None
    try:
        with generating_threads(method), open_writer(output, tracked.fps, reader.audio, request.crf) as opened:
            writer = Held(opened, tracked.holds)
            stop = 0
            for shown, batch in prefetch(generate(), depth=2):
                start, stop = stop, stop + len(batch.crops)
                results = batch.crops if request.crop_only else reenactor.pasted(batch)
                for offset, produced in enumerate(results):  # one frame at a time: a huge photo's frames are large
                    shown_driving = (shown[offset], fit.landmarks[start + offset]) if shown is not None else None
                    writer.write(fit_size(_shown(reenactor, request, produced, shown_driving), request.max_size))
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
    write_image(output, fit_size(_shown(reenactor, request, produced, (frame, None)), request.max_size))
    return AnimateReport(output, 1, reenactor.faces_found, reenactor.options.face_index)


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
    return np.concatenate([fit_height(source, height), fit_height(frame, height), produced], axis=1)
