"""Several faces of one photo animated at once (``face_index`` ``all`` or a list), each by the
same driver or each by its own.

Each face is cropped, warped and pasted on its own (its own :class:`BoundSources`); the pastes
go one after another into one frame of the photo's size, each changing the frame only as far as
its face moved (:meth:`Paster.paste`'s ``onto``), so boxes that overlap leave no seam. A driver
shared by several faces is tracked once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from facereenact.app.cores import generating_threads
from facereenact.app.output import fit_size, is_frame_folder, open_writer
from facereenact.app.progress import ProgressFactory
from facereenact.app.report import AnimateReport
from facereenact.app.tracking import TrackedVideo, track
from facereenact.errors import FaceIndexError, InputError, NoFaceError
from facereenact.face3d.fitter import FaceFit, FaceFitter
from facereenact.face3d.transfer import clip_reference
from facereenact.io.image import IMAGE_EXTENSIONS
from facereenact.io.media import open_media
from facereenact.io.prefetch import prefetch
from facereenact.io.video import VIDEO_EXTENSIONS, AudioTrack
from facereenact.pipeline.reenactor import ANIMATE_BATCH
from facereenact.pipeline.request import AnimateRequest, AudioFrom
from facereenact.pipeline.sources import BoundSources
from facereenact.stage import StageMethod, WarpResult


def animate_faces(
    fitter: FaceFitter,
    request: AnimateRequest,
    photo: np.ndarray,
    source: Path,
    drivings: Sequence[Path],
    output: Path,
    progress: ProgressFactory,
    method: StageMethod | None,
) -> AnimateReport:
    """Animate the faces of ``photo`` that ``request.face_index`` names with ``drivings`` (one
    for all of them, or one per face in the faces' order) into ``output``."""
    if output.suffix.lower() in IMAGE_EXTENSIONS:
        raise InputError(f"several faces are animated into a video: name a video output ({', '.join(VIDEO_EXTENSIONS)}) or a folder for PNG frames, not {output.name}")
    options = request.reenact_options()
    tracked: dict[Path, TrackedVideo] = {}
    audio: AudioTrack | None = None
    # The photo is fitted in a thread of its own, as a single face's source is: fitted in the
    # thread that then tracks the drivers, MediaPipe's image reader there made the tracking
    # several times slower (100 frames of hdtf_aoc in 18–22 s against 2). The faces asked for
    # are checked before any tracking.
    with ThreadPoolExecutor(1, thread_name_prefix="source") as pool:
        fitting = pool.submit(fitter.fit_image, photo)
        try:
            faces, chosen = _chosen(fitting.result(), request, source, len(drivings))
            for driving in dict.fromkeys(drivings):  # each driver once, in order
                media = open_media(driving, with_audio=request.audio is AudioFrom.driving and not tracked)
                if isinstance(media, np.ndarray):
                    raise InputError(f"the driving {driving} is a still image: several faces are animated by driving videos (or animated images)")
                with media as reader:
                    tracked[driving] = track(fitter, reader, request.smooth, request.max_frames, progress, options.uses_driving_frames)
                    audio = audio or reader.audio
            drivers = [tracked[drivings[0] if len(drivings) == 1 else drivings[k]] for k in range(len(chosen))]
            return _write(fitter, request, photo, [faces[i] for i in chosen], drivers, output, audio, progress, method, faces_found=len(faces), chosen=chosen)
        finally:
            for video in tracked.values():
                if video.frames is not None:
                    video.frames.close()


def _chosen(faces: list[FaceFit], request: AnimateRequest, source: Path, drivers: int) -> tuple[list[FaceFit], list[int]]:
    """The photo's faces and the indices asked for, checked against them and the drivers."""
    if not faces:
        raise NoFaceError(f"no face found in the source image {source.name}")
    choice = request.face_index
    chosen = list(range(len(faces))) if choice == "all" else [choice] if isinstance(choice, int) else [int(i) for i in choice]
    for index in chosen:
        if index >= len(faces):
            raise FaceIndexError(index, len(faces), "source image")
    if drivers not in (1, len(chosen)):
        raise InputError(f"{drivers} drivers for {len(chosen)} faces: give one driver for every face, or one per face")
    return faces, chosen


def _write(
    fitter: FaceFitter,
    request: AnimateRequest,
    photo: np.ndarray,
    faces: list[FaceFit],
    drivers: list[TrackedVideo],
    output: Path,
    audio: AudioTrack | None,
    progress: ProgressFactory,
    method: StageMethod | None,
    faces_found: int,
    chosen: list[int],
) -> AnimateReport:
    """Generate each face's crops batch by batch and paste them all into each output frame."""
    options = request.reenact_options()
    fps = drivers[0].fps
    # Each driver at the first one's rate, by time; the output ends with the shortest.
    count = min(math.ceil(len(d.fit) * fps / d.fps - 1e-6) for d in drivers)
    if request.max_frames is not None:
        count = min(count, request.max_frames)
    at = [np.minimum(np.floor(np.arange(count) * d.fps / fps + 1e-6).astype(np.int64), len(d.fit) - 1) for d in drivers]
    device = fitter.device
    bound = [
        BoundSources(fitter.model, [photo], face.params.to(device), face.landmarks[None], options.crop_size, options.crop_scale, method, [face.points])
        for face in faces
    ]  # fmt: skip
    references = [clip_reference(d.fit) for d in drivers]
    mouths = options.uses_driving_frames
    report = AnimateReport(output, 0, faces_found, chosen[0], warnings=[w for d in drivers for w in d.warnings])
    report.face_indices = chosen
    report.lost_ranges = sorted({r for d in drivers for r in d.fit.lost_ranges()})
    tick = progress("animating", count)

    def generate() -> Iterator[list[tuple[np.ndarray, WarpResult]]]:
        for start in range(0, count, ANIMATE_BATCH):
            made = []
            for face, driver, (reference, reference_points), times in zip(bound, drivers, references, at, strict=True):
                picked = times[start : start + ANIMATE_BATCH]
                frames = np.stack([driver.frames[int(i)] for i in picked]) if mouths and driver.frames is not None else None
                crops, result, _ = face.generate(
                    options.motion, driver.fit.params[picked], reference, driving_frames=frames, found=driver.fit.found[picked],
                    driving_points=driver.fit.points_of(picked), reference_points=reference_points,
                )  # fmt: skip
                made.append((crops, result))
            yield made

    report.audio_left_out = is_frame_folder(output) and audio is not None
    with generating_threads(method), open_writer(output, fps, audio, request.crf) as writer:  # generate, paste, encode: three threads
        for made in prefetch(generate(), depth=2):
            # Face after face into the same frames: the first into the photo, the others onto those.
            frames: list[np.ndarray] | None = None
            for face, (crops, result) in zip(bound, made, strict=True):
                frames = list(face.pasted(crops, result, onto=frames))
            assert frames is not None
            for frame in frames:
                writer.write(fit_size(frame, request.max_size))
            tick(writer.frames_written - 1)
        report.frames = writer.frames_written
    return report
