"""Live driving: camera frames arrive one at a time and each becomes a frame of the animated portrait.

The source is prepared once (:class:`~facereenact.pipeline.reenactor.Reenactor`); then each frame
is tracked (:class:`~facereenact.face3d.fitter.FaceTracker`: the detector runs only when the face
is lost), fitted, smoothed with a causal filter (:class:`~facereenact.face3d.smoothing.CausalSmoother`:
no look-ahead) and generated. A frame that arrives while one is being made replaces the one
waiting (:class:`LatestFrame`): the newest wins, the older is dropped and counted, so latency
stays bounded however slow the machine. The relative-mode reference is the first frame with a
face; :meth:`LiveEngine.recentre` takes the next one instead. When the face leaves the camera the
portrait holds its last pose for :attr:`LiveOptions.hold_seconds`, then eases back to the
source's own pose over :attr:`LiveOptions.ease_seconds`.

The command line (:func:`run_live`) and the web page's WebSocket both feed :class:`LatestFrame`
and run :func:`drive`; :class:`LiveStats` measures what the user sees (capture → shown latency,
frames/s delivered, drops).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import torch

from facereenact.app.output import fit_size
from facereenact.face3d.fitter import FaceFitter, FaceTracker
from facereenact.face3d.params import FaceParams
from facereenact.face3d.smoothing import CausalSmoother
from facereenact.face3d.transfer import MotionMode, rotation_power
from facereenact.pipeline.reenactor import ReenactOptions, Reenactor
from facereenact.stage import StageMethod

T = TypeVar("T")


@dataclass(frozen=True)
class LiveOptions:
    #: Seconds the portrait keeps the last pose after the face leaves the camera.
    hold_seconds: float = 0.5
    #: Seconds it then takes to ease back to the source's own pose.
    ease_seconds: float = 1.0
    #: Causal smoothing of the driving face (One Euro, forward only).
    smooth: bool = True
    #: Output the generated face crop instead of the full source photo.
    crop_only: bool = False
    #: The output's longer side at most (None: as made).
    max_size: int | None = 512


@dataclass
class Captured:
    """A camera frame (H, W, 3) RGB uint8; when it was captured (``time.monotonic()``, for the
    latency); its time on the capture's own clock in seconds (a file's frame times: what the
    smoothing and the easing go by); its index (so a writer can hold an output through the
    frames dropped after it)."""

    frame: np.ndarray
    captured_at: float
    time: float
    index: int = 0


@dataclass
class Followed:
    """A captured frame's driving parameters (batch 1) and the reference of relative motion,
    the driving face's 68 landmarks (None when it was not found), whether the portrait is
    holding or easing back, and the seconds spent."""

    captured: Captured
    driving: FaceParams
    reference: FaceParams
    landmarks: np.ndarray | None
    #: The driving face's head rotation (3, 3) as fitted, before smoothing (None: not found).
    rotation: np.ndarray | None
    resting: bool
    work_seconds: float
    #: MediaPipe's landmarks of the driving face (478, 3; None where unread): its lips' place.
    points: np.ndarray | None = None
    #: The same of the reference face, which its lips' motion is measured from.
    reference_points: np.ndarray | None = None


@dataclass
class LiveFrame:
    """One output frame (H, W, 3) RGB uint8, the capture it answers, and what was seen."""

    image: np.ndarray
    captured: Captured
    #: The driving face was found in this frame.
    found: bool
    #: The portrait is holding or easing back (the face has gone).
    resting: bool
    #: Seconds spent on its two steps: following the driving face, making the picture.
    follow_seconds: float
    make_seconds: float
    #: The driving face's 68 landmarks (68, 3) in the camera frame and head rotation (3, 3) as
    #: fitted (None when not found); the output face's landmarks (68, 3) in the generated crop
    #: and its head rotation relative to the source's (3, 3): what the smoothing is measured on.
    driving_landmarks: np.ndarray | None
    driving_rotation: np.ndarray | None
    output_landmarks: np.ndarray
    output_rotation: np.ndarray


class LiveEngine:
    """One source portrait, driven frame by frame. Not for several threads at once (except
    :meth:`recentre`); one per live session."""

    def __init__(
        self,
        fitter: FaceFitter,
        source_image: np.ndarray,
        options: ReenactOptions | None = None,
        method: StageMethod | None = None,
        live: LiveOptions | None = None,
    ):
        self.live = live or LiveOptions()
        # The output is shown at most max_size: a larger photo is scaled down once, here, rather
        # than every frame pasted back at full resolution and then scaled.
        self.reenactor = Reenactor(fit_size(source_image, self.live.max_size), fitter, options, method)
        self.fitter = fitter
        self.tracker = FaceTracker(fitter)
        self._smoother: CausalSmoother | None = None
        self._reference: FaceParams | None = None
        self._reference_points: np.ndarray | None = None
        self._recentre = threading.Event()
        #: The driving parameters last used, the last ones with a face, and when it was last seen.
        self._driving: FaceParams | None = None
        self._held: FaceParams | None = None
        self._last_seen = 0.0
        self._gone = False
        self._last_time: float | None = None
        self._last_scores: torch.Tensor | None = None
        self._eyelid_offset: torch.Tensor | None = None
        self._constant_refinement: torch.Tensor | None = None

    def recentre(self) -> None:
        """Take the next frame with a face as the reference: the pose the portrait shows as its own."""
        self._recentre.set()

    @property
    def faces_found(self) -> int:
        return self.reenactor.faces_found

    def process(self, captured: Captured) -> LiveFrame:
        """The output frame for one captured frame."""
        return self.make(self.follow(captured))

    def follow(self, captured: Captured) -> Followed:
        """Track, fit and smooth the driving face of one frame: the first of :meth:`process`'s
        two steps (each may run in its own thread, see :func:`drive`)."""
        started = time.perf_counter()
        frame, now = captured.frame, captured.time
        # A camera's clock may stall or jump: the filter takes a step of 1 ms to 1 s.
        period = min(max(now - self._last_time, 1e-3), 1.0) if self._last_time is not None else 0.04
        self._last_time = now
        face = self.tracker.step(frame)
        if face is not None:
            new_reference = self._reference is None or self._recentre.is_set()
            refined, change = self.fitter.refined(face.params, face.points) if face.points is not None else (face.params, None)
            if new_reference:  # the eyelid offset (see FaceFitter.eyelid_offset) of the reference frame
                self._eyelid_offset = self.fitter.eyelid_offset(face.params, [face.points]).cpu()
            if new_reference or self._constant_refinement is None:
                # The refinement's constant part (see FaceFitter.track): the reference frame's, or
                # the first read frame's when MediaPipe could not read the reference.
                self._constant_refinement = change
            if self.fitter.refiner is not None and change is not None and self._constant_refinement is not None:
                refined = self.fitter.refiner.apply(refined, -self._constant_refinement)
            params = refined.to("cpu")
            if face.scores is None and self._last_scores is not None:  # eyes unread: hold the last scores
                params.blendshapes = self._last_scores.clone()
            self._last_scores = params.blendshapes.clone()
            assert self._eyelid_offset is not None
            params.blendshapes = params.blendshapes + self._eyelid_offset
            if self._smoother is None or self._gone:  # a face back after a gap starts from the pose shown
                self._smoother = CausalSmoother(self.fitter.coefficient_scale.cpu())
                if self._driving is not None:
                    self._smoother(self._driving, period)
            driving = self._smoother(params, period) if self.live.smooth else params
            if new_reference:
                self._recentre.clear()
                self._reference, self._reference_points = driving, face.points
            self._last_seen, self._gone = now, False
            self._driving = self._held = driving
        elif self._held is not None:
            self._gone = True
            self._driving = self._eased(self._held, now - self._last_seen)
        reference_points = None
        if self._reference is None or self._driving is None:  # no face yet: the source as it is
            driving = reference = self.reenactor.source.params
        else:
            driving, reference, reference_points = self._driving, self._reference, self._reference_points
        landmarks = face.landmarks if face is not None else None
        rotation = face.params.rotation[0].cpu().numpy() if face is not None else None
        points = face.points if face is not None else None
        return Followed(captured, driving, reference, landmarks, rotation, self._gone, time.perf_counter() - started, points, reference_points)

    def make(self, followed: Followed) -> LiveFrame:
        """The output frame for a followed face: the second step of :meth:`process`."""
        started = time.perf_counter()
        found = followed.landmarks is not None
        shown = followed.captured.frame[None] if found else None
        batch = self.reenactor.reenact(
            followed.driving, followed.reference, paste=False, frames=shown, found=np.array([True]) if found else None, points=[followed.points],
            reference_points=followed.reference_points,
        )  # fmt: skip
        image = batch.crops[0] if self.live.crop_only else next(self.reenactor.pasted(batch))
        image = fit_size(image, self.live.max_size)
        targets = batch.targets
        output_landmarks = self.reenactor.landmarks_in_crop(targets)[0].cpu().numpy()
        relative = (targets.rotation[0] @ self.reenactor.source.params.rotation[0].to(targets.rotation.device).T).cpu().numpy()
        return LiveFrame(
            image, followed.captured, found, followed.resting, followed.work_seconds, time.perf_counter() - started,
            followed.landmarks, followed.rotation, output_landmarks, relative,
        )  # fmt: skip

    def _rest(self) -> FaceParams:
        """The driving parameters that give the source its own pose and expression."""
        assert self._reference is not None
        return self._reference if self.reenactor.options.motion.mode is MotionMode.relative else self.reenactor.source.params.to("cpu")

    def _eased(self, last: FaceParams, gone: float) -> FaceParams:
        """The driving ``gone`` seconds after the face left: held, then eased (smoothstep) to rest."""
        settings = self.live
        progress = 1.0 if settings.ease_seconds <= 0 else (gone - settings.hold_seconds) / settings.ease_seconds
        weight = float(np.clip(progress, 0.0, 1.0))
        if weight == 0.0:
            return last
        weight = weight * weight * (3 - 2 * weight)
        return blend(last, self._rest(), weight)

    def close(self) -> None:
        self.tracker.close()

    def __enter__(self) -> LiveEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def blend(a: FaceParams, b: FaceParams, weight: float) -> FaceParams:
    """Parameters ``weight`` of the way from ``a`` to ``b`` (batch 1 each): the rotation along
    the shortest turn between them, everything else linearly."""
    turn = b.rotation @ a.rotation.transpose(-1, -2)
    mixed = {
        name: torch.lerp(getattr(a, name), getattr(b, name).to(getattr(a, name)), weight)
        for name in ("scale", "translation", "shape", "expression", "blendshapes")
    }
    return FaceParams(rotation=rotation_power(turn, weight) @ a.rotation, **mixed)


class LatestFrame(Generic[T]):
    """A one-place mailbox between a capture and the engine: :meth:`put` replaces what is waiting
    (the replaced item is dropped and counted), :meth:`take` waits for the newest. Thread-safe."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._closed = False
        self._ready = threading.Condition()
        self.dropped = 0

    def put(self, item: T, wait: bool = False) -> None:
        """Leave ``item`` for the engine; with ``wait``, first wait until the one before was
        taken (every frame is made: a file read as fast as the engine goes)."""
        with self._ready:
            while wait and self._item is not None and not self._closed:
                self._ready.wait()
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self._ready.notify_all()

    def take(self) -> T | None:
        """The newest item, waiting for one; None once closed and empty."""
        with self._ready:
            while self._item is None and not self._closed:
                self._ready.wait()
            item, self._item = self._item, None
            self._ready.notify_all()
            return item

    def close(self) -> None:
        """No more items: :meth:`take` returns what is waiting, then None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()


@dataclass
class LiveStats:
    """What the user saw: per delivered frame, capture → shown latency; frames/s delivered; drops."""

    latencies: list[float] = field(default_factory=list)
    shown_at: list[float] = field(default_factory=list)
    #: Seconds of each delivered frame's two steps (see :meth:`LiveEngine.follow`).
    follow: list[float] = field(default_factory=list)
    make: list[float] = field(default_factory=list)
    #: Frames replaced while the engine was busy (or arriving too late to matter).
    dropped: int = 0
    #: Frames that were not images (the web page's), dropped.
    undecodable: int = 0
    #: Frames over the rate limit, or over the size limit (the web page's), dropped.
    over_rate: int = 0
    too_large: int = 0
    #: Delivered frames with no face found in the camera frame.
    no_face: int = 0

    def record(self, result: LiveFrame, shown_at: float) -> None:
        self.latencies.append(shown_at - result.captured.captured_at)
        self.shown_at.append(shown_at)
        self.follow.append(result.follow_seconds)
        self.make.append(result.make_seconds)
        self.no_face += not result.found

    @property
    def delivered(self) -> int:
        return len(self.latencies)

    @property
    def fps(self) -> float:
        """Frames shown per second of wall time, first to last."""
        if self.delivered < 2:
            return 0.0
        return (self.delivered - 1) / max(self.shown_at[-1] - self.shown_at[0], 1e-9)

    def summary(self) -> dict[str, float | int]:
        latency_ms = np.array(self.latencies) * 1000 if self.latencies else np.zeros(1)
        return {
            "delivered": self.delivered,
            "fps": round(self.fps, 2),
            "latency_p50_ms": round(float(np.percentile(latency_ms, 50)), 1),
            "latency_p95_ms": round(float(np.percentile(latency_ms, 95)), 1),
            "follow_p50_ms": round(float(np.median(self.follow)) * 1000, 1) if self.follow else 0.0,
            "make_p50_ms": round(float(np.median(self.make)) * 1000, 1) if self.make else 0.0,
            "dropped": self.dropped,
            "undecodable": self.undecodable,
            "over_rate": self.over_rate,
            "too_large": self.too_large,
            "no_face": self.no_face,
        }

    def line(self) -> str:
        """The summary in one line for people."""
        s = self.summary()
        return (
            f"{s['delivered']} frames shown at {s['fps']:.1f} frames/s; latency median {s['latency_p50_ms']:.0f} ms, "
            f"95th percentile {s['latency_p95_ms']:.0f} ms; {s['dropped']} dropped while busy; "
            f"{s['no_face']} without a face"
        )


def drive(engine: LiveEngine, inbox: LatestFrame[Captured], deliver: Callable[[LiveFrame], None], stats: LiveStats, every_frame: bool = False) -> None:
    """Make and deliver a frame for the newest capture, until ``inbox`` is closed and empty.
    ``deliver`` shows or sends the frame; the time it returns is when the frame was shown.
    ``every_frame``: drop nothing (a file read as fast as the engine goes).

    The two steps run in two threads (PyTorch and MediaPipe release the GIL): while one frame is
    generated the next is tracked, so frames/s is that of the slower step, not of their sum.
    Between them is another :class:`LatestFrame`: a followed frame the generator had no time
    for is dropped too."""
    followed: LatestFrame[Followed] = LatestFrame()
    failure: list[BaseException] = []

    def follow() -> None:
        try:
            while (captured := inbox.take()) is not None:
                followed.put(engine.follow(captured), wait=every_frame)
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)
        finally:
            followed.close()

    tracker = threading.Thread(target=follow, name="live-follow", daemon=True)
    tracker.start()
    try:
        while (step := followed.take()) is not None:
            result = engine.make(step)
            deliver(result)
            stats.record(result, time.monotonic())
            stats.dropped = inbox.dropped + followed.dropped
    finally:
        inbox.close()
        followed.close()
        tracker.join()
    stats.dropped = inbox.dropped + followed.dropped
    if failure:
        raise failure[0]
