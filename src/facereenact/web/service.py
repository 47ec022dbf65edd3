"""What the web app does, without HTTP: check uploads, queue animation jobs, run them, clean up.

One :class:`WebService` lives as long as the server. It owns a temporary folder (uploads/ and
jobs/, each upload and job in a folder of its own) that is deleted when the server stops; a
janitor thread deletes what has gone unused for the keep time in between. A server that was
killed cannot delete its folder: the next one to start deletes it (the folder is held with a
lock the system drops, see :mod:`facereenact.app.scratch`).
The face fitter (and the neural stage) are loaded once and shared by the job threads.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from facereenact.app.animate import AnimateRequest, AudioFrom, GenerationMethod, LengthPolicy, MotionMode, StageMethod, VideoMotion, animate_file, region_list
from facereenact.app.fit import FaceFitter
from facereenact.app.media import count_length, is_image_file, is_video_file, probe_video
from facereenact.app.preview import make_source_preview
from facereenact.app.scratch import claim_scratch_folder
from facereenact.errors import FaceReenactError, InputError
from facereenact.web.examples import ExampleClips
from facereenact.web.jobqueue import Job, JobQueue, Outcome
from facereenact.web.settings import MAX_FPS, ServerSettings
from facereenact.web.uploads import Upload, UploadStore

#: The start of the server's temporary folder's name.
ROOT_PREFIX = "facereenact-web-"

#: Seconds a stopping server waits for its running jobs to notice they are cancelled.
STOP_WAIT_S = 2.0


class NotFound(FaceReenactError):
    """An upload, example or job the request names is not (or no longer) on the server."""


class JobChoices(BaseModel):
    """The page's choices for one run (the JSON body of ``POST /api/jobs``). An option left out
    takes :class:`~facereenact.pipeline.request.AnimateRequest`'s default, and its bounds are
    checked there, as for the command line."""

    source: str = Field(description="id of an uploaded portrait")
    driving: str | None = Field(default=None, description="id of an uploaded driving clip")
    example: str | None = Field(default=None, description="name of an example motion (instead of driving)")
    method: GenerationMethod | None = None
    mode: MotionMode | None = None
    transfer: Literal["both", "expression", "pose"] = "both"
    paste_back: bool = True
    crop_size: int | None = None
    compare: bool | None = None
    face_index: int | list[int] | Literal["all"] | None = Field(default=None, description="the photo's face to animate (largest first), several, or all")
    driving_mouth: bool | None = Field(default=None, description="fill an opening mouth with the driving frame's own teeth and tongue")
    pose_scale: float | None = Field(default=None, description="multiplies the head's rotation and movement")
    expression_scale: float | None = Field(default=None, description="multiplies the expression")
    regions: list[str] | None = Field(default=None, description="face regions that follow the driver: eyes, gaze, brows, mouth")
    video_motion: VideoMotion | None = Field(default=None, description="with a source video: what travels from the driver")
    length: LengthPolicy | None = Field(default=None, description="with a source video: how its length meets the driver's")
    audio: AudioFrom | None = Field(default=None, description="whose audio the result carries")

    def animate_request(self, max_frames: int | None) -> AnimateRequest:
        """The same choices as the request every interface builds."""
        names = {"method", "mode", "crop_size", "compare", "face_index", "driving_mouth", "pose_scale", "expression_scale", "regions", "video_motion", "length", "audio"}
        chosen = self.model_dump(include=names, exclude_none=True)
        return AnimateRequest(
            **chosen, expression_only=self.transfer == "expression", pose_only=self.transfer == "pose", crop_only=not self.paste_back, max_frames=max_frames
        )


@dataclass(frozen=True)
class JobInputs:
    """A job's payload: its inputs (inside the job's folder, or an example clip) and options."""

    source: Path
    driving: Path
    request: AnimateRequest
    download_name: str
    #: Folders whose paths are cut out of messages shown to the page.
    private: tuple[Path, ...]
    #: The inputs' files as the page knows them (the names they were uploaded with).
    shown_as: dict[Path, str]


class WebService:
    def __init__(self, settings: ServerSettings, fitter: FaceFitter, neural: StageMethod | None = None, neural_name: str | None = None):
        self.settings = settings
        self.fitter = fitter
        self.neural = neural
        self.neural_name = neural_name
        self.examples = ExampleClips(settings.data, settings.max_seconds)
        self.queue = JobQueue(self._run, settings.max_jobs, settings.max_waiting, settings.keep_seconds)
        #: Portrait previews fit faces outside the job queue; bound them the same way.
        self._fit_slots = threading.BoundedSemaphore(settings.max_jobs)
        self._root: Path | None = None
        self._root_lock: int | None = None
        self._uploads: UploadStore | None = None
        self._stop = threading.Event()
        self._janitor: threading.Thread | None = None

    # ---- lifetime ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.work_dir is not None:
            self.settings.work_dir.mkdir(parents=True, exist_ok=True)
        self._root, self._root_lock = claim_scratch_folder(Path(self.settings.work_dir or tempfile.gettempdir()), ROOT_PREFIX)
        settings = self.settings
        self._uploads = UploadStore(self._root / "uploads", settings.max_uploads, settings.max_stored_uploads, settings.keep_seconds)
        (self._root / "jobs").mkdir()
        self.queue.start()
        # Probe the example clips now, in the background, rather than on the first request.
        threading.Thread(target=self.examples.all, name="facereenact-examples", daemon=True).start()
        self._janitor = threading.Thread(target=self._sweep_now_and_then, name="facereenact-janitor", daemon=True)
        self._janitor.start()

    def close(self) -> None:
        """Cancel the jobs, stop the threads, delete the server's temporary folder."""
        self._stop.set()
        self.queue.close(timeout=STOP_WAIT_S)
        if self._janitor is not None:
            self._janitor.join(timeout=5)
        if self._uploads is not None:
            self._uploads.close()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        if self._root_lock is not None:
            os.close(self._root_lock)
            self._root_lock = None

    @property
    def root(self) -> Path:
        if self._root is None:
            raise RuntimeError("WebService.start() has not been called")
        return self._root

    @property
    def uploads(self) -> UploadStore:
        if self._uploads is None:
            raise RuntimeError("WebService.start() has not been called")
        return self._uploads

    def _sweep_now_and_then(self) -> None:
        interval = min(60.0, max(1.0, self.settings.keep_seconds / 4))
        while not self._stop.wait(interval):
            self.queue.sweep()
            self.uploads.sweep()

    # ---- what the page asks -----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        methods = [{"name": "warp", "label": "warp (training-free 3D correspondence)"}]
        if self.neural is not None:  # the trained model refines the warp: offered first, the default
            methods.insert(0, {"name": "neural", "label": f"neural ({self.neural_name})"})
        settings = self.settings
        return {
            "max_upload_mb": settings.max_upload_mb,
            "max_seconds": settings.max_seconds,
            "max_frames": settings.max_frames,
            "max_jobs": settings.max_jobs,
            "keep_minutes": settings.keep_minutes,
            "methods": methods,
            "defaults": _page_defaults(),
            "live": {"max_sessions": settings.max_live, "fps": settings.live_fps, "frame_kb": settings.live_frame_kb},
        }

    def health(self) -> dict[str, Any]:
        running, waiting = self.queue.counts()
        return {"ok": True, "running": running, "waiting": waiting}

    def accept_source(self, owner: str, upload_id: str, folder: Path, path: Path, name: str) -> Upload:
        """Check a received portrait by decoding it and fitting its faces; keep it with its
        preview. A source video is checked as a driving clip is, and previewed by its first frame."""
        preview_path = folder / "preview.png"
        video = self._checked_clip(folder, path, name) if not is_image_file(path) and is_video_file(path) else None
        with self._fit_slots, _private((folder,), {path: name}):
            preview = make_source_preview(self.fitter, path, preview_path, name, video=video is not None)
        described = preview.describe() if video is None else {**preview.describe(), "video": video}
        upload = Upload(upload_id, "source", owner, folder, path, name, described, preview_path)
        self.uploads.add(upload)
        return upload

    def accept_driving(self, owner: str, upload_id: str, folder: Path, path: Path, name: str) -> Upload:
        """Check a received clip (see :meth:`_checked_clip`)."""
        upload = Upload(upload_id, "driving", owner, folder, path, name, self._checked_clip(folder, path, name))
        self.uploads.add(upload)
        return upload

    def _checked_clip(self, folder: Path, path: Path, name: str) -> dict[str, Any]:
        """Check a received clip by opening it as a video (PyAV) and against the length limit,
        counted from its packets: a header that claims a short clip cannot pass a long one."""
        limit = self.settings.max_seconds
        with _private((folder,), {path: name}):
            info = probe_video(path)
            if info.duration_s > limit:  # the header already says so: no need to count
                raise InputError(f"{name} lasts {info.duration_s:.1f} s; the limit is {limit:g} s")
            length = count_length(path, self.settings.frame_limit, limit)
        if length.seconds > limit:
            raise InputError(f"{name} lasts more than {limit:g} s, the limit (counted from its frames; its header says {info.duration_s:.1f} s)")
        if length.over:
            raise InputError(f"{name} has more than {self.settings.frame_limit} frames, the limit ({limit:g} s at {MAX_FPS} frames/s)")
        seconds = max(length.seconds, length.frames / info.fps)
        return {
            "frames": length.frames,
            "fps": round(info.fps, 3),
            "seconds": round(seconds, 2),
            "width": info.width,
            "height": info.height,
            "has_audio": info.has_audio,
        }

    def submit(self, choices: JobChoices) -> Job:
        """Check the request, give the job its own folder holding its inputs, and queue it."""
        request = choices.animate_request(self.settings.frames_per_job)  # an OptionError names the fields: a 400
        source = self.uploads.get(choices.source, "source")
        if source is None:
            raise NotFound(f"the portrait is no longer on the server (uploads are kept {self.settings.keep_minutes:g} min); upload it again")
        if choices.example:
            example = self.examples.get(choices.example)
            if example is None:
                raise NotFound(f"there is no example motion named {choices.example!r}")
            driving_path, driving_name, driving_upload = example.path, example.path.name, None
        elif choices.driving:
            driving_upload = self.uploads.get(choices.driving, "driving")
            if driving_upload is None:
                raise NotFound(f"the driving clip is no longer on the server (uploads are kept {self.settings.keep_minutes:g} min); upload it again")
            driving_path, driving_name = driving_upload.path, driving_upload.name
        else:
            raise InputError("choose a driving clip or an example motion")
        if request.method is GenerationMethod.neural and self.neural is None:
            raise InputError("the neural method needs a trained model: start the server with --model CHECKPOINT")
        faces = len(source.info.get("faces", []))
        asked = request.face_index
        beyond = [i for i in ([] if asked == "all" else [asked] if isinstance(asked, int) else asked) if isinstance(i, int) and i >= faces]
        if beyond:
            raise InputError(f"face {beyond[0] + 1} asked for, but {source.name} has {faces} face(s)")

        job_id = secrets.token_urlsafe(12)
        folder = self.root / "jobs" / job_id
        folder.mkdir()
        try:
            try:
                source_path = _link(source.path, folder / "source" / source.path.name)
                if driving_upload is not None:
                    driving_path = _link(driving_upload.path, folder / "driving" / driving_upload.path.name)
            except FileNotFoundError:  # deleted (too many uploads) between the look-up and here
                raise NotFound("an upload is no longer on the server; upload it again") from None
            payload = JobInputs(
                source=source_path,
                driving=driving_path,
                request=request,
                download_name=f"{Path(source.name).stem}-{Path(driving_name).stem}.mp4",
                private=(folder / "source", folder / "driving", folder, driving_path.parent),
                shown_as={source_path: source.name, driving_path: driving_name},
            )
            job = Job(job_id, folder, payload)
            self.queue.submit(job)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return job

    def status(self, job: Job) -> dict[str, Any]:
        running, waiting = self.queue.counts()
        done = job.state.value == "done"
        payload: JobInputs = job.payload
        return {
            "id": job.id,
            "state": job.state.value,
            "position": self.queue.position(job),
            "running": running,
            "waiting": waiting,
            "stage": job.stage,
            "done": job.done,
            "total": job.total,
            "message": job.message,
            "notes": job.notes,
            "frames": job.frames if done else None,
            "video": f"/api/jobs/{job.id}/video" if done else None,
            "download": f"/api/jobs/{job.id}/video?download=1" if done else None,
            "filename": payload.download_name,
            "submitted_at": job.submitted_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
        }

    # ---- the work -------------------------------------------------------------------------
    def _run(self, job: Job) -> Outcome:
        """Animate in the job's folder (a worker thread of the queue calls this)."""
        spec: JobInputs = job.payload
        job.stage = "starting"
        method = self.neural if spec.request.method is GenerationMethod.neural else None
        output = job.folder / "result.mp4"
        with _private(spec.private, spec.shown_as):
            report = animate_file(self.fitter, spec.request, spec.source, spec.driving, output, progress=job.progress, method=method)
        notes = [_scrub(note, spec.private, spec.shown_as) for note in [*report.warnings, *report.notes("choose another with Face")]]
        limit = self.settings.max_frames
        if limit is not None and report.frames == limit:
            notes.append(f"animated the first {limit} frames of the clip (the server's frame limit)")
        return Outcome(output, report.frames, notes)


def _page_defaults() -> dict[str, Any]:
    """The request's defaults in the page's terms (see :meth:`JobChoices.animate_request`)."""
    defaults = AnimateRequest()
    transfer = "expression" if defaults.expression_only else "pose" if defaults.pose_only else "both"
    return {
        "method": defaults.method.value,
        "mode": defaults.mode.value,
        "transfer": transfer,
        "paste_back": not defaults.crop_only,
        "crop_size": defaults.crop_size,
        "compare": defaults.compare,
        "driving_mouth": defaults.driving_mouth,
        "pose_scale": defaults.pose_scale,
        "expression_scale": defaults.expression_scale,
        "regions": region_list(defaults.regions).split(","),
        "video_motion": defaults.video_motion.value,
        "length": defaults.length.value,
        "audio": defaults.audio.value,
    }


class _private:
    """Re-raise a :class:`FaceReenactError` with the server's files named as the page knows them
    and its folders cut out of the message, so the page reads ``clip.mp4 has no video frames``
    rather than a temporary path."""

    def __init__(self, folders: tuple[Path, ...], shown_as: dict[Path, str]):
        self.folders = folders
        self.shown_as = shown_as

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> Literal[False]:
        if isinstance(error, FaceReenactError):
            cleaned = _scrub(str(error), self.folders, self.shown_as)
            if cleaned != str(error):
                raise type(error)(cleaned) from None
        return False


def _scrub(text: str, folders: tuple[Path, ...], shown_as: dict[Path, str]) -> str:
    for path, name in shown_as.items():
        text = text.replace(str(path), name)
    for folder in sorted(folders, key=lambda f: len(str(f)), reverse=True):
        text = text.replace(f"{folder}{os.sep}", "").replace(str(folder), "")
    return text


def _link(source: Path, target: Path) -> Path:
    """``source`` at ``target`` (a hard link when possible: uploads may be large)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target

