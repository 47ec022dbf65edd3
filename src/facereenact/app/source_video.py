"""Video-to-video: a source video re-acted by a driving video.

Both videos are tracked as a driving video is (:func:`facereenact.app.tracking.track`); the
frames are made by :mod:`facereenact.pipeline.source_video` (each source frame with the driver's
motion added, pasted back into it) and written here. The output runs at the source's frame rate;
the driver is resampled by time.
"""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facereenact.app.cores import generating_threads
from facereenact.app.output import fit_height, fit_size, is_frame_folder, open_writer
from facereenact.app.progress import ProgressFactory
from facereenact.app.report import AnimateReport, spans
from facereenact.app.tracking import TrackedVideo, track
from facereenact.errors import InputError, NoFaceError, OptionError
from facereenact.face3d.fitter import FaceFitter, true_ranges
from facereenact.io.image import IMAGE_EXTENSIONS
from facereenact.io.media import MovingMedia, open_media
from facereenact.io.prefetch import prefetch
from facereenact.io.video import VIDEO_EXTENSIONS, AudioTrack
from facereenact.pipeline.composite import crop, reenactment_box
from facereenact.pipeline.reenactor import ReenactOptions
from facereenact.pipeline.request import AnimateRequest, AudioFrom
from facereenact.pipeline.source_video import VideoBatch, output_frames, reenacted_batches, timeline
from facereenact.stage import StageMethod


def animate_source_video(
    fitter: FaceFitter,
    request: AnimateRequest,
    source_reader: MovingMedia,
    source: Path,
    driving: Path,
    output: Path,
    progress: ProgressFactory,
    method: StageMethod | None,
) -> AnimateReport:
    """Re-act the source video (opened as ``source_reader``; this closes it) with ``driving``
    into ``output``; see the module docstring."""
    with source_reader:
        if output.suffix.lower() in IMAGE_EXTENSIONS:
            raise InputError(
                f"the source {source} is a video, so the result is one too: name a video output "
                f"({', '.join(VIDEO_EXTENSIONS)}) or a folder for PNG frames (a name without extension), not {output.name}"
            )
        if request.face_index != 0:
            raise OptionError(("face_index",), "is for a source photo: a source video's largest face is the one animated", request.face_index)
        driving_media = open_media(driving, with_audio=request.audio is AudioFrom.driving)
        if isinstance(driving_media, np.ndarray):
            raise InputError(f"the driving {driving} is a still image: a source video needs a driving video (or an animated image) to follow")
        options = request.reenact_options(source_video=True)
        with driving_media:
            limit = None if request.max_frames is None else math.ceil(request.max_frames * driving_media.fps / source_reader.fps) + 1
            # The two clips are tracked at once: each waits on MediaPipe's own threads part of the
            # time, which the other fills.
            with ThreadPoolExecutor(1) as pool:
                source_job = pool.submit(_tracked, fitter, source_reader, request, request.max_frames, progress, f"source video {source.name}")
                try:
                    driving_track = _tracked(fitter, driving_media, request, limit, progress, f"driving video {driving.name}", keep=options.uses_driving_frames or request.compare)
                except BaseException:
                    _closed_when_done(source_job)
                    raise
                source_track = source_job.result()
        audio = {AudioFrom.driving: driving_media.audio, AudioFrom.source: source_reader.audio, AudioFrom.none: None}[request.audio]
        try:
            report = _write(fitter, request, options, source_track, driving_track, output, audio, progress, method)
        finally:
            _close(source_track)
            _close(driving_track)
    if audio is None and request.audio is AudioFrom.source and not is_frame_folder(output):
        report.audio_missing = f"source video {source.name}"
    return report


def _tracked(fitter: FaceFitter, reader: MovingMedia, request: AnimateRequest, limit: int | None, progress: ProgressFactory, what: str, keep: bool = True) -> TrackedVideo:
    """``reader`` tracked, with a face-less video named as ``what``."""
    try:
        return track(fitter, reader, request.smooth, limit, progress, keep)
    except NoFaceError as error:
        raise NoFaceError(f"{error} ({what})") from None


def _closed_when_done(job: Future[TrackedVideo]) -> None:
    """Close the frames of a tracking that is no longer wanted, once it has ended."""
    try:
        _close(job.result())
    except Exception:  # noqa: BLE001 (its own failure is not the one being reported)
        pass


def _close(tracked: TrackedVideo) -> None:
    if tracked.frames is not None:
        tracked.frames.close()


def _order(tracked: TrackedVideo) -> np.ndarray:
    """Tracked frame per frame at the clip's rate (an animated image's frames each last their holds)."""
    count = len(tracked.fit)
    return np.repeat(np.arange(count), tracked.holds) if tracked.holds is not None else np.arange(count)


def _write(
    fitter: FaceFitter,
    request: AnimateRequest,
    options: ReenactOptions,
    source: TrackedVideo,
    driving: TrackedVideo,
    output: Path,
    audio: AudioTrack | None,
    progress: ProgressFactory,
    method: StageMethod | None,
) -> AnimateReport:
    """Generate and write the output frames of the tracked ``source`` and ``driving``."""
    source_order, driving_order = _order(source), _order(driving)
    source_at, driving_at = timeline(len(source_order), source.fps, len(driving_order), driving.fps, request.length)
    if request.max_frames is not None:
        source_at, driving_at = source_at[: request.max_frames], driving_at[: request.max_frames]
    source_at, driving_at = source_order[source_at], driving_order[driving_at]
    report = AnimateReport(output, 0, warnings=[*source.warnings, *driving.warnings])
    report.lost_ranges, report.unread_ranges = driving.fit.lost_ranges(), driving.fit.unread_ranges()
    report.resampled = (source.fps, driving.fps) if abs(source.fps - driving.fps) > 1e-3 else None
    shown_lost = sorted(set(source_at[~source.fit.found[source_at]].tolist()))
    if shown_lost:
        lost = spans(true_ranges(np.isin(np.arange(len(source.fit)), shown_lost)))
        report.warnings.append(f"the source face was lost in frames {lost} of the source video: those frames pass through unchanged")
    assert source.frames is not None
    batches = reenacted_batches(fitter.model, options, source.frames, source.fit, driving.frames, driving.fit, source_at, driving_at, method)
    tick = progress("animating", len(source_at))
    written = 0
    report.audio_left_out = is_frame_folder(output) and audio is not None
    with generating_threads(method), open_writer(output, source.fps, audio, request.crf) as writer:  # generate, paste, encode: three threads
        for batch in prefetch(batches, depth=2):
            made = output_frames(batch, request.crop_only, options.crop_size)
            for offset, frame in enumerate(made):
                if request.compare:
                    frame = _panel(batch, offset, frame, request.crop_only, options.crop_size, options.crop_scale)
                writer.write(fit_size(frame, request.max_size))
            written += len(batch.frames)
            tick(written - 1)
        report.frames = writer.frames_written
    return report


def _panel(batch: VideoBatch, offset: int, made: np.ndarray, crop_only: bool, crop_size: int, crop_scale: float) -> np.ndarray:
    """``compare``: source frame | driving frame | result, at the result's height."""
    height = made.shape[0]
    source = crop(batch.frames[offset], batch.boxes[offset], crop_size) if crop_only else batch.frames[offset]
    pictures = [source]
    if batch.driving_frames is not None:
        frame = batch.driving_frames[offset]
        pictures.append(crop(frame, reenactment_box(batch.driving_landmarks[offset], crop_scale), height) if crop_only else frame)
    return np.concatenate([*(fit_height(p, height) for p in pictures), made], axis=1)
