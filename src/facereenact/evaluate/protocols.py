"""The evaluation protocols, per clip.

* Self-reenactment: the source is a frame of the clip (the first; optionally N evenly spaced
  ones), the driving frames are every k-th frame after it (at most ``max_frames``); each output is
  compared with the real frame, cropped in the same box. A short run of consecutive frames
  measures temporal stability.
* Cross-identity: other people's faces (portraits, or the first frames of other clips) driven by
  the clip's sampled frames, in absolute mode (the output should take the driving head pose and
  expression, so pose and expression errors measure the transfer). There is no ground truth:
  identity (against the source), pose and expression (against the driving frame) are measured.
  A run of consecutive frames from the clip's first tracked one also drives each source, for
  expression by region over time (eyes, gaze, brows, mouth: does the output blink when the
  driver blinks, and as far?), read by two instruments (MediaPipe's blendshapes, dlib's 68
  landmarks).
* Native resolution: self-reenactment pasted back at the clip's own resolution.
* Video-to-video: the clip as a source video, re-acted by another person's clip as ``animate``
  does (:mod:`facereenact.pipeline.source_video`) over its first frames: identity per frame,
  the source's head movement kept, the driver's expression followed.

The driving clip is decoded once (only the prefix the sampling needs), tracked and smoothed as
``animate`` does, and shared by the protocols and every method. Each protocol runs in two
steps: :meth:`start` generates and measures and sends faces to the descriptor service; the
returned finisher waits for the descriptors and scores. The caller starts the next clip before
finishing this one, so dlib's descriptors (in a worker process) overlap the rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from facereenact.errors import FaceReenactError, NoFaceError
from facereenact.evaluate import metrics
from facereenact.evaluate.analysis import FaceAnalyser, FaceMeasurements
from facereenact.evaluate.catalog import REGION_SIGNALS
from facereenact.evaluate.identity import DescriptorService, PendingDescriptors, image_key
from facereenact.evaluate.lpips import LearnedPerceptualDistance
from facereenact.evaluate.methods import Method, SourceStage
from facereenact.evaluate.references import DlibLandmarks
from facereenact.evaluate.report import THUMBNAIL, make_strip
from facereenact.evaluate.stats import mean_or_none
from facereenact.face3d.fitter import FaceFitter, VideoFit
from facereenact.face3d.params import FaceParams
from facereenact.face3d.transfer import MotionMode, MotionOptions, clip_reference
from facereenact.io.media import read_still
from facereenact.io.video import iter_frames, probe_video
from facereenact.pipeline.composite import crop, reenactment_box
from facereenact.pipeline.reenactor import ANIMATE_BATCH, ReenactedBatch, ReenactOptions, Reenactor
from facereenact.pipeline.request import AnimateRequest, LengthPolicy
from facereenact.pipeline.source_video import output_frames, reenacted_batches, timeline

CROP_SIZE = 256
#: Self-reenactment never fills the mouth from the driving frame: there the driving frame is the
#: ground truth, and its own teeth in the output would score pixels the method was given.
SELF_OPTIONS = ReenactOptions(crop_size=CROP_SIZE, motion=MotionOptions(MotionMode.relative), driving_mouth=False)
CROSS_OPTIONS = ReenactOptions(crop_size=CROP_SIZE, motion=MotionOptions(MotionMode.absolute))
#: Frames per cross-identity image strip (self-reenactment strips use ``Sampling.strip_frames``).
CROSS_STRIP_FRAMES = 2

Scores = dict[str, float | None]
Finisher = Callable[[], "Outcome"]


@dataclass(frozen=True)
class Sampling:
    """Which frames are evaluated. The defaults keep a run over ../shared/data (81 clips, 8
    portraits) under 15 minutes on 2 CPU cores."""

    every: int = 10
    max_frames: int = 6
    sources: int = 1
    window: int = 12
    #: Cross-identity: consecutive driving frames for expression by region over time (2 s at 25
    #: fps: long enough to hold a blink or two).
    expression_window: int = 50
    cross_frames: int = 3
    cross_sources: int = 2
    strip_frames: int = 3
    #: Video-to-video: source clips (0: every clip), each driven by a clip of another person over
    #: its first ``video_frames`` frames (consecutive: the pose and expression are followed over time).
    video_pairs: int = 10
    video_frames: int = 40

    def __post_init__(self) -> None:
        for name in ("every", "max_frames", "sources", "cross_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.window < 0 or self.expression_window < 0 or self.cross_sources < 0 or self.strip_frames < 0 or self.video_pairs < 0:
            raise ValueError("window, expression_window, cross_sources, strip_frames and video_pairs cannot be negative")
        if self.video_frames < metrics.MIN_SIGNAL_FRAMES:
            raise ValueError(f"video_frames must be at least {metrics.MIN_SIGNAL_FRAMES}")

    @property
    def decode_limit(self) -> int:
        """Frames of each clip to decode and track."""
        return max(self.every * self.max_frames, self.window, self.expression_window) + 1

    def driving_indices(self, frame_count: int) -> list[int]:
        """Every ``every``-th frame after the first, at most ``max_frames``."""
        return [k * self.every for k in range(1, self.max_frames + 1) if k * self.every < frame_count]

    def source_indices(self, last: int) -> list[int]:
        """``sources`` frames evenly spaced over [0, last] (the first always included)."""
        return sorted({round(v) for v in np.linspace(0, last, self.sources)}) if self.sources > 1 else [0]

    def describe(self, video: bool = False) -> str:
        """The sampling in words, for the report (``video``: with the video-to-video protocol's)."""
        sources = "frame 0" if self.sources == 1 else f"{self.sources} frames evenly spaced over the sampled span"
        cross = "every source" if self.cross_sources == 0 else f"{self.cross_sources} source(s), dealt evenly from a seeded shuffle"
        window = f"temporal stability over frames 1–{self.window} after the source" if self.window >= 3 else "no temporal stability"
        expression = (
            f"; expression by region over {self.expression_window} consecutive frames from the clip's first tracked one"
            if self.expression_window >= metrics.MIN_SIGNAL_FRAMES
            else ""
        )
        sources_video = "every clip" if self.video_pairs == 0 else f"{self.video_pairs} clips (a seeded shuffle)"
        video_text = (
            f". Video-to-video: {sources_video} as source videos, each driven by the next clip of another person in that order, over "
            f"the source's first {self.video_frames} frames, as animate does with a source video (the driver's expression, each "
            "frame pasted back into itself); measured on each frame's 256² face crop"
        )
        return (
            f"self-reenactment: source = {sources}; driving = frames {self.every}, {2 * self.every}, … (every {self.every} frames), "
            f"at most {self.max_frames} per clip, skipping frames where the tracker lost the face; {window}. "
            f"Cross-identity: each driving clip drives {cross}, with {self.cross_frames} of its sampled frames, absolute motion{expression}. "
            f"All comparisons on {CROP_SIZE}² face crops, except at native resolution: the self-reenactment's frames pasted back into "
            "the first frame at the clip's own resolution, compared in the source's face box" + (video_text if video else "")
        )


@dataclass
class Tools:
    """The shared, loaded-once instruments."""

    fitter: FaceFitter
    analyser: FaceAnalyser
    descriptors: DescriptorService
    lpips: LearnedPerceptualDistance | None
    expression_threshold: float
    landmarks: DlibLandmarks


@dataclass
class DrivingClip:
    """A decoded, tracked prefix of a clip and its sampled driving frames (face found)."""

    name: str
    frames: list[np.ndarray]
    fit: VideoFit
    driving: list[int]
    fps: float


@dataclass
class Outcome:
    """One protocol's result for one clip or pair: its JSON record, an image strip, (self only)
    the descriptors pooled for the Fréchet distance: "real" and one entry per method, and (cross
    only) the strip of the expression window's rest, blink and brow frames."""

    record: dict[str, Any]
    strip: bytes | None = None
    descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    expression_strip: bytes | None = None


def load_clip(path: Path, fitter: FaceFitter, sampling: Sampling, count: int | None = None, sampled: bool = True) -> DrivingClip:
    """Decode the first ``count`` frames (default: the prefix the sampling needs) and track
    them; a clear error when nothing is usable (with ``sampled``: no sampled driving frame has a
    face, which the self, native and cross protocols need)."""
    frames, fit, fps = track_prefix(path, fitter, count or sampling.decode_limit)
    driving = [i for i in sampling.driving_indices(len(frames)) if fit.found[i]]
    if sampled and not driving:
        raise NoFaceError("the tracker found no face in any sampled driving frame")
    return DrivingClip(path.stem, frames, fit, driving, fps)


def track_prefix(path: Path, fitter: FaceFitter, count: int) -> tuple[list[np.ndarray], VideoFit, float]:
    """The first ``count`` frames of a clip, tracked and smoothed as ``animate`` tracks a video, and its rate."""
    fps = probe_video(path).fps
    frames = list(iter_frames(path, count))
    if len(frames) < 2:
        raise NoFaceError(f"{path.name} has only {len(frames)} frame(s); at least 2 are needed")
    return frames, fitter.track(frames, fps, smoothing=True), fps


def _batches(
    reenactor: Reenactor,
    driving: FaceParams,
    reference: FaceParams,
    frames: Sequence[np.ndarray] | None = None,
    found: np.ndarray | None = None,
    points: Sequence[np.ndarray | None] | None = None,
    reference_points: np.ndarray | None = None,
) -> Iterator[ReenactedBatch]:
    """The outputs in batches like ``animate``'s; ``frames`` are the driving frames (for their
    mouths, where the reenactor's options use them), ``found`` which of them had a tracked face,
    ``points`` MediaPipe's landmarks of their faces and ``reference_points`` the reference's."""
    for i in range(0, len(driving), ANIMATE_BATCH):
        batch = slice(i, i + ANIMATE_BATCH)
        shown = np.stack(frames[batch]) if frames is not None else None
        tracked = found[batch] if found is not None else None
        read = points[batch] if points is not None else None
        yield reenactor.reenact(driving[batch], reference, paste=False, frames=shown, found=tracked, points=read, reference_points=reference_points)


def _generate(
    reenactor: Reenactor,
    driving: FaceParams,
    reference: FaceParams,
    frames: Sequence[np.ndarray] | None = None,
    points: Sequence[np.ndarray | None] | None = None,
    reference_points: np.ndarray | None = None,
) -> np.ndarray:
    """Output crops (B, S, S, 3) uint8."""
    batches = _batches(reenactor, driving, reference, frames, points=points, reference_points=reference_points)
    return np.ascontiguousarray(np.concatenate([batch.crops for batch in batches]))


def _crops(frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([crop(frame, box, CROP_SIZE) for frame, box in zip(frames, boxes)])


def _value(number: float) -> float | None:
    return None if np.isnan(number) else float(number)


def _geometry_scores(output: FaceMeasurements, driving: FaceMeasurements, threshold: float) -> Scores:
    """Pose, expression and detection scores of outputs against their driving frames."""
    t = torch.from_numpy
    both, either = metrics.blendshape_activation_counts(t(output.blendshapes), t(driving.blendshapes), threshold)
    either_total = float(np.nansum(either.numpy()))
    return {
        "pose_rmse_fitter": _value(metrics.root_mean_square(metrics.pose_errors(t(output.fitter_angles), t(driving.fitter_angles)))),
        "pose_rmse_mediapipe": _value(metrics.root_mean_square(metrics.pose_errors(t(output.mediapipe_angles), t(driving.mediapipe_angles)))),
        "expression_l1": mean_or_none(metrics.blendshape_difference(t(output.blendshapes), t(driving.blendshapes)).numpy()),
        "expression_agreement": float(np.nansum(both.numpy())) / either_total if either_total > 0 else None,
        "face_found": float(output.mediapipe_found.mean()),
    }


def _identity_score(output: np.ndarray, source: np.ndarray) -> float | None:
    return mean_or_none(metrics.cosine_similarity(torch.from_numpy(output), torch.from_numpy(source)).numpy())


def _evenly(items: Sequence[int], count: int) -> list[int]:
    if count <= 0 or not items:
        return []
    if count >= len(items):
        return list(items)
    return [items[round(i)] for i in np.linspace(0, len(items) - 1, count)]


def _paste_all(reenactor: Reenactor, batches: Iterable[ReenactedBatch]) -> np.ndarray:
    """The frames (B, H, W, 3) uint8 of ``batches`` (see :func:`_batches`) pasted back into the
    source photo."""
    return np.concatenate([reenactor.paste(batch) for batch in batches])


def _detail(images: np.ndarray) -> np.ndarray:
    """Mean |Laplacian| of each grey image (B,): the energy of its finest detail."""
    return np.array([np.abs(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean() for image in images])


# ---- native resolution -----------------------------------------------------------------------------
class NativeResolution:
    """Self-reenactment pasted back at the clip's own resolution, scored in the source's face box:
    does the output keep the photo's detail, and is a frame with no motion yet the photo itself?"""

    def __init__(self, methods: Sequence[Method], tools: Tools):
        self.methods = methods
        self.tools = tools

    def start(self, clip: DrivingClip) -> Finisher:
        shown = [0, *clip.driving]
        real = np.stack([clip.frames[i] for i in shown])
        scores: dict[str, Scores] = {}
        faces: list[np.ndarray] = []
        for method in self.methods:
            try:
                reenactor = Reenactor(clip.frames[0], self.tools.fitter, SELF_OPTIONS, method=method.stage)
            except NoFaceError as error:
                raise NoFaceError(f"source frame 0: {error}") from None
            low, high = reenactor.source.landmarks[:, :2].min(0), reenactor.source.landmarks[:, :2].max(0)
            rows, columns = _clipped(low[1], high[1], real.shape[1]), _clipped(low[0], high[0], real.shape[2])
            batches = _batches(reenactor, clip.fit.params[shown], clip.fit.params[0], points=clip.fit.points_of(np.asarray(shown)), reference_points=clip.fit.points_at(0))
            produced = _paste_all(reenactor, batches)[:, rows, columns]
            truth = np.ascontiguousarray(real[:, rows, columns])
            psnr = metrics.psnr(metrics.to_tensor(np.ascontiguousarray(produced)), metrics.to_tensor(truth))
            scores[method.name] = {
                "frame0_psnr": float(psnr[0]),
                "native_psnr": float(psnr[1:].mean()),
                "sharpness_ratio": float(np.mean(_detail(produced[1:]) / np.maximum(_detail(truth[1:]), 1e-6))),
            }
            faces.append(produced[1])
        side = min(THUMBNAIL, *faces[0].shape[:2])
        patch = [_centre(image, side) for image in [real[1][rows, columns], *faces]]  # 1:1 pixels: the detail shows
        strip = make_strip([patch], ["real frame"] + [m.name for m in self.methods])
        record = {"clip": clip.name, "status": "ok", "frames": clip.driving, "methods": scores}
        return lambda: Outcome(record, strip)


def _clipped(low: float, high: float, size: int) -> slice:
    return slice(max(int(low), 0), min(int(high) + 1, size))


def _centre(image: np.ndarray, side: int) -> np.ndarray:
    top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[top : top + side, left : left + side]


# ---- self-reenactment ------------------------------------------------------------------------------
class SelfReenactment:
    def __init__(self, methods: Sequence[Method], tools: Tools, sampling: Sampling):
        self.methods = methods
        self.tools = tools
        self.sampling = sampling

    def start(self, clip: DrivingClip) -> Finisher:
        tools, fit = self.tools, clip.fit
        sources = self.sampling.source_indices(clip.driving[-1])
        real: list[np.ndarray] = []
        source_crops: list[np.ndarray] = []
        outputs: dict[str, list[np.ndarray]] = {m.name: [] for m in self.methods}
        frames_used: list[list[int]] = []
        jitter: dict[str, float | None] = {}
        strip_rows: list[list[np.ndarray]] = []
        for position, s in enumerate(sources):
            try:
                reenactors = {m.name: Reenactor(clip.frames[s], tools.fitter, SELF_OPTIONS, method=m.stage) for m in self.methods}
            except NoFaceError as error:
                raise NoFaceError(f"source frame {s}: {error}") from None
            box = next(iter(reenactors.values())).box
            drivers = [i for i in clip.driving if i != s]
            if not drivers:
                continue
            frames_used.append(drivers)
            real.append(_crops([clip.frames[i] for i in drivers], [box] * len(drivers)))
            source_crop = next(iter(reenactors.values())).source_crop_uint8()
            source_crops.append(np.repeat(source_crop[None], len(drivers), 0))
            for method in self.methods:
                outputs[method.name].append(_generate(reenactors[method.name], fit.params[drivers], fit.params[s], None, fit.points_of(np.asarray(drivers)), fit.points_at(s)))
            if position == 0:
                jitter = self._jitter(clip, s, box, reenactors)
                rows = [drivers.index(i) for i in _evenly(drivers, self.sampling.strip_frames)]
                strip_rows = [[source_crop, real[0][r]] + [outputs[m.name][0][r] for m in self.methods] for r in rows]
        if not frames_used:
            raise NoFaceError("no driving frame besides the source frame")
        real_all, source_all = np.concatenate(real), np.concatenate(source_crops)
        real_faces = tools.analyser.measure(real_all)
        source_faces = tools.analyser.measure(source_all)
        pending_real = tools.descriptors.submit(real_all, real_faces.boxes)
        pending_source = tools.descriptors.submit(source_all, source_faces.boxes)
        measured: dict[str, tuple[np.ndarray, FaceMeasurements, PendingDescriptors]] = {}
        for method in self.methods:
            produced = np.concatenate(outputs[method.name])
            faces = tools.analyser.measure(produced)
            measured[method.name] = (produced, faces, tools.descriptors.submit(produced, faces.boxes))
        strip = make_strip(strip_rows, ["input", "real frame"] + [m.name for m in self.methods]) if strip_rows else None
        clip_name = clip.name

        def finish() -> Outcome:
            real_descriptors, source_descriptors = pending_real.result(), pending_source.result()
            scores: dict[str, Scores] = {}
            descriptors = {"real": real_descriptors}
            for name, (produced, faces, pending) in measured.items():
                output_descriptors = pending.result()
                descriptors[name] = output_descriptors
                scores[name] = self._scores(produced, faces, real_all, real_faces, output_descriptors, source_descriptors)
                scores[name]["jitter_ratio"] = jitter.get(name)
            record = {
                "clip": clip_name,
                "status": "ok",
                "sources": sources,
                "frames": frames_used,
                "driving_jitter_px": jitter.get("real"),
                "methods": scores,
            }
            return Outcome(record, strip, descriptors)

        return finish

    def _scores(
        self,
        produced: np.ndarray,
        faces: FaceMeasurements,
        real: np.ndarray,
        real_faces: FaceMeasurements,
        output_descriptors: np.ndarray,
        source_descriptors: np.ndarray,
    ) -> Scores:
        output_t, real_t = metrics.to_tensor(produced), metrics.to_tensor(real)
        scores: Scores = {
            "l1": float(metrics.l1(output_t, real_t).mean()),
            "psnr": float(metrics.psnr(output_t, real_t).mean()),
            "ssim": float(metrics.structural_similarity(output_t, real_t).mean()),
            "ms_ssim": float(metrics.multiscale_structural_similarity(output_t, real_t).mean()),
        }
        if self.tools.lpips is not None:
            scores["lpips"] = float(self.tools.lpips(output_t, real_t).mean())
        scores["csim"] = _identity_score(output_descriptors, source_descriptors)
        scores.update(_geometry_scores(faces, real_faces, self.tools.expression_threshold))
        scores["akd"] = mean_or_none(metrics.landmark_distance(torch.from_numpy(faces.landmarks), torch.from_numpy(real_faces.landmarks)).numpy())
        return scores

    def _jitter(self, clip: DrivingClip, s: int, box: np.ndarray, reenactors: dict[str, Reenactor]) -> dict[str, float | None]:
        """Landmark jitter (px at 256²) of the real crops ("real") and of each method's outputs
        over the consecutive frames after the source, and each method's ratio to the real one."""
        window = list(range(s + 1, min(s + 1 + self.sampling.window, len(clip.frames))))
        if len(window) < 3:
            return {}
        real = self.tools.analyser.measure(_crops([clip.frames[i] for i in window], [box] * len(window)), fitter=False)
        real_jitter = metrics.landmark_jitter(torch.from_numpy(real.landmarks))
        result: dict[str, float | None] = {"real": _value(real_jitter)}
        for name, reenactor in reenactors.items():
            made = _generate(reenactor, clip.fit.params[window], clip.fit.params[s], None, clip.fit.points_of(np.asarray(window)), clip.fit.points_at(s))
            produced = self.tools.analyser.measure(made, fitter=False)
            jitter = metrics.landmark_jitter(torch.from_numpy(produced.landmarks))
            result[name] = _value(jitter / real_jitter) if real_jitter > 0 else None
        return result


# ---- cross-identity --------------------------------------------------------------------------------
class SourceBank:
    """Cross-identity sources (portraits, or first frames of clips), each fitted and measured
    once: one Reenactor per method, its crop's measurements and descriptor."""

    def __init__(self, paths: dict[str, Path], methods: Sequence[Method], tools: Tools):
        self.paths = paths
        self.methods = methods
        self.tools = tools
        self._ready: dict[str, tuple[dict[str, Reenactor], np.ndarray, PendingDescriptors]] = {}
        self._failed: dict[str, str] = {}

    def get(self, name: str) -> tuple[dict[str, Reenactor], np.ndarray, PendingDescriptors]:
        """The source's Reenactors, crop and descriptor; a FaceReenactError (remembered) if unusable."""
        if name in self._failed:
            raise NoFaceError(self._failed[name])
        if name not in self._ready:
            try:
                image = read_still(self.paths[name])
                reenactors = {m.name: Reenactor(image, self.tools.fitter, CROSS_OPTIONS, method=m.stage) for m in self.methods}
            except FaceReenactError as error:
                self._failed[name] = f"source {name}: {error}"
                raise NoFaceError(self._failed[name]) from None
            source_crop = next(iter(reenactors.values())).source_crop_uint8()
            faces = self.tools.analyser.measure([source_crop])
            self._ready[name] = (reenactors, source_crop, self.tools.descriptors.submit([source_crop], faces.boxes))
        return self._ready[name]


def assign_cross_pairs(drivers: Sequence[str], sources: Sequence[str], per_driver: int, rng: np.random.Generator) -> dict[str, list[str]]:
    """Sources for each driving clip: all of them (``per_driver`` 0), or ``per_driver`` dealt
    round-robin from one seeded shuffle, so every source drives about equally often; a clip is
    never its own source."""
    order = [sources[i] for i in rng.permutation(len(sources))]
    assignment: dict[str, list[str]] = {}
    position = 0
    for driver in drivers:
        available = [s for s in sources if s != driver]
        wanted = len(available) if per_driver == 0 else min(per_driver, len(available))
        chosen: list[str] = []
        while len(chosen) < wanted:
            candidate = order[position % len(order)]
            position += 1
            if candidate != driver and candidate not in chosen:
                chosen.append(candidate)
        assignment[driver] = chosen
    return assignment


@dataclass
class RegionSignals:
    """Expression by region over a run of face crops: each instrument's signals (T,) by name (no
    MediaPipe signals until MediaPipe has named its blendshapes, i.e. seen a face), and
    MediaPipe's blendshapes (T, 51); NaN where that instrument found no face."""

    signals: dict[str, dict[str, torch.Tensor]]
    blendshapes: torch.Tensor

    def agreement(self, driver: RegionSignals) -> dict[str, dict[str, dict[str, float | int | None]]]:
        """Per instrument and signal, how these (the output's) follow the driver's: r, ratio, frames."""
        result: dict[str, dict[str, dict[str, float | int | None]]] = {}
        for instrument, names in REGION_SIGNALS.items():
            ours, theirs = self.signals[instrument], driver.signals[instrument]
            result[instrument] = {}
            for name in names:
                if name == "active_blendshapes":
                    found = metrics.active_blendshape_agreement(self.blendshapes, driver.blendshapes)
                elif name in ours and name in theirs:
                    found = metrics.signal_agreement(ours[name], theirs[name])
                else:
                    found = metrics.SignalAgreement(math.nan, math.nan, 0)
                result[instrument][name] = {"r": _value(found.r), "ratio": _value(found.ratio), "frames": found.frames}
        return result

    def spread(self) -> dict[str, dict[str, float | None]]:
        """Each signal's standard deviation over its frames with a face: how much the driver
        moved that region in the window (an r over a region that hardly moves says little)."""
        return {
            instrument: {name: _spread(signal[torch.isfinite(signal)]) for name, signal in signals.items()} for instrument, signals in self.signals.items()
        }


def _spread(values: torch.Tensor) -> float | None:
    return float(values.std(unbiased=False)) if len(values) else None


@dataclass
class ExpressionWindow:
    """The driver's side of expression by region: consecutive frames, their crops (as the cross
    protocol crops the driving frames), their signals, and the window positions shown in the
    strip: a rest frame, the strongest blink, the largest brow movement."""

    frames: list[int]
    crops: np.ndarray
    signals: RegionSignals
    shown: dict[str, int]


def _dlib_points(landmarks: DlibLandmarks, images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """dlib's 68 points (N, 68, 2) of each image, looked for in MediaPipe's face box (dlib's own
    detector where MediaPipe found none); NaN where neither finds a face. dlib refines the box
    from its own first answer, so the box only says where the face is. A repeated image (the
    ``source`` baseline's output every frame) is measured once."""
    points = np.full((len(images), 68, 2), np.nan)
    seen: dict[bytes, int] = {}
    for index, (image, box) in enumerate(zip(images, boxes)):
        key = image_key(image, box)
        if key in seen:
            points[index] = points[seen[key]]
            continue
        seen[key] = index
        hint = (float(box[0]), float(box[1]), float(box[2]), float(box[3])) if np.isfinite(box).all() else None
        found = landmarks.landmarks(image, box_hint=hint)
        if found is not None:
            points[index] = found
    return points


def strip_frames(eyes: np.ndarray, brows: np.ndarray) -> dict[str, int]:
    """Positions of a rest frame (eyes and brows nearest their medians), the strongest blink
    (the eyes' maximum) and the largest brow movement (a raise or a frown), from the driver's
    MediaPipe signals; none when MediaPipe found no face in the window."""
    valid = np.isfinite(eyes) & np.isfinite(brows)
    if not valid.any():
        return {}
    eyes_off = np.where(valid, eyes - np.median(eyes[valid]), np.nan)
    brows_off = np.where(valid, brows - np.median(brows[valid]), np.nan)
    return {
        "rest": int(np.nanargmin(np.abs(eyes_off) + np.abs(brows_off))),
        "blink": int(np.nanargmax(eyes_off)),
        "brows": int(np.nanargmax(np.abs(brows_off))),
    }


class CrossIdentity:
    def __init__(self, methods: Sequence[Method], tools: Tools, sampling: Sampling, bank: SourceBank):
        self.methods = methods
        self.tools = tools
        self.sampling = sampling
        self.bank = bank

    def start(self, clip: DrivingClip, sources: Sequence[str]) -> list[Finisher]:
        fit = clip.fit
        picks = _evenly(clip.driving, self.sampling.cross_frames)
        driving_crops = _crops([clip.frames[i] for i in picks], [reenactment_box(fit.landmarks[i], CROSS_OPTIONS.crop_scale) for i in picks])
        driving_faces = self.tools.analyser.measure(driving_crops)
        first = int(np.flatnonzero(fit.found)[0])
        reference, reference_points = clip_reference(fit)
        window = self._driver_window(clip, first)
        finishers = []
        for source in sources:
            base = {"source": source, "driving": clip.name}
            try:
                reenactors, source_crop, pending_source = self.bank.get(source)
            except FaceReenactError as error:
                finishers.append(_failed({**base, "status": "failed", "reason": str(error)}))
                continue
            shown = [clip.frames[i] for i in picks]
            read = fit.points_of(np.asarray(picks))
            produced = {m.name: _generate(reenactors[m.name], fit.params[picks], reference, shown, read, reference_points) for m in self.methods}
            measured = {}
            for name, crops in produced.items():
                faces = self.tools.analyser.measure(crops)
                measured[name] = (faces, self.tools.descriptors.submit(crops, faces.boxes))
            rows = range(min(CROSS_STRIP_FRAMES, len(picks)))
            strip = make_strip([[source_crop, driving_crops[r]] + [produced[m.name][r] for m in self.methods] for r in rows],
                               ["input", "driving frame"] + [m.name for m in self.methods])  # fmt: skip
            record: dict[str, Any] = {**base, "status": "ok", "frames": picks}
            regions: dict[str, Any] = {}
            expression_strip = None
            if window is not None:
                regions, expression_strip = self._expression(clip, window, reenactors, (reference, reference_points), source_crop)
                record["expression_window"] = {
                    "frames": [window.frames[0], window.frames[-1]],
                    "pipeline_reads_mediapipe": self.tools.fitter.reads_blendshapes,
                    "driver_std": window.signals.spread(),
                    "strip_frames": {role: window.frames[position] for role, position in window.shown.items()},
                }
            finishers.append(self._finisher(record, measured, driving_faces, pending_source, strip, regions, expression_strip))
        return finishers

    def _driver_window(self, clip: DrivingClip, first: int) -> ExpressionWindow | None:
        """The consecutive frames from the first tracked one, cropped and measured once for every
        source; None when the clip (or the setting) leaves too few. Frames where the tracker lost
        the face hold another frame's motion, so their signals are left out."""
        frames = list(range(first, min(first + self.sampling.expression_window, len(clip.frames))))
        if len(frames) < metrics.MIN_SIGNAL_FRAMES:
            return None
        crops = _crops([clip.frames[i] for i in frames], [reenactment_box(clip.fit.landmarks[i], CROSS_OPTIONS.crop_scale) for i in frames])
        signals = self._region_signals(crops)
        lost = torch.from_numpy(~clip.fit.found[frames])
        signals = RegionSignals(
            {instrument: {name: s.masked_fill(lost, math.nan) for name, s in named.items()} for instrument, named in signals.signals.items()},
            signals.blendshapes.masked_fill(lost[:, None], math.nan),
        )
        mediapipe = signals.signals["mediapipe"]
        shown = strip_frames(mediapipe["eyes"].numpy(), mediapipe["brows"].numpy()) if mediapipe else {}
        return ExpressionWindow(frames, crops, signals, shown)

    def _region_signals(self, crops: np.ndarray) -> RegionSignals:
        """Both instruments over a run of crops: MediaPipe alone through the analyser (its
        cache makes a still output cost one frame), dlib's landmarks placed by MediaPipe's box."""
        faces = self.tools.analyser.measure(crops, fitter=False)
        blendshapes = torch.from_numpy(faces.blendshapes)
        names = self.tools.analyser.blendshape_names
        points = torch.from_numpy(_dlib_points(self.tools.landmarks, crops, faces.boxes))
        return RegionSignals(
            {
                "mediapipe": metrics.blendshape_region_signals(blendshapes, names) if names is not None else {},
                "dlib": metrics.landmark_region_signals(points),
            },
            blendshapes,
        )

    def _expression(
        self,
        clip: DrivingClip,
        window: ExpressionWindow,
        reenactors: dict[str, Reenactor],
        reference: tuple[FaceParams, np.ndarray | None],
        source_crop: np.ndarray,
    ) -> tuple[dict[str, Any], bytes | None]:
        """Each method's outputs over the window, their agreement with the driver by region, and
        the strip of the rest, blink and brow frames (driver beside outputs). ``reference``: the
        reference face and its MediaPipe landmarks."""
        shown = [clip.frames[i] for i in window.frames]
        regions: dict[str, Any] = {}
        rows: list[list[np.ndarray]] = [[source_crop, window.crops[position]] for position in window.shown.values()]
        for method in self.methods:
            produced = _generate(reenactors[method.name], clip.fit.params[window.frames], reference[0], shown, clip.fit.points_of(np.asarray(window.frames)), reference[1])
            regions[method.name] = self._region_signals(produced).agreement(window.signals)
            for row, position in zip(rows, window.shown.values()):
                row.append(produced[position])
        strip = make_strip(rows, ["input", "driving frame"] + [m.name for m in self.methods]) if rows else None
        return regions, strip

    def _finisher(
        self,
        record: dict[str, Any],
        measured: dict[str, tuple[FaceMeasurements, PendingDescriptors]],
        driving_faces: FaceMeasurements,
        pending_source: PendingDescriptors,
        strip: bytes,
        regions: dict[str, Any],
        expression_strip: bytes | None,
    ) -> Finisher:
        def finish() -> Outcome:
            source_descriptor = pending_source.result()
            scores = {}
            for name, (faces, pending) in measured.items():
                scores[name] = {"csim": _identity_score(pending.result(), source_descriptor)}
                scores[name].update(_geometry_scores(faces, driving_faces, self.tools.expression_threshold))
                if name in regions:
                    scores[name]["expression_regions"] = regions[name]
            return Outcome({**record, "methods": scores}, strip, expression_strip=expression_strip)

        return finish


def _failed(record: dict[str, Any]) -> Finisher:
    return lambda: Outcome(record)


# ---- video-to-video --------------------------------------------------------------------------------
#: What ``animate`` does with a source video by default: the driver's expression onto each source
#: frame, which keeps its own head movement, pasted back into that frame.
VIDEO_OPTIONS = AnimateRequest().reenact_options(source_video=True)
#: How much wider than the generated crop a strip shows each frame, so the paste's edge is in view.
VIDEO_STRIP_CONTEXT = 1.6
#: Brightening of the strips' difference column (|output − source frame|).
VIDEO_DIFFERENCE_GAIN = 4


def assign_video_pairs(clips: Sequence[str], count: int, person: Callable[[str], str], rng: np.random.Generator) -> dict[str, str]:
    """The driving clip of each source clip: ``count`` sources (0: every clip) taken in a seeded
    shuffle's order, each driven by the next clip in that order that shows another person
    (``person`` names a clip's), so a clip drives about once; none where every clip is one person."""
    order = [clips[i] for i in rng.permutation(len(clips))]
    pairs: dict[str, str] = {}
    for position, source in enumerate(order[: count or len(order)]):
        others = (order[(position + step) % len(order)] for step in range(1, len(order)))
        driver = next((clip for clip in others if person(clip) != person(source)), None)
        if driver is not None:
            pairs[source] = driver
    return pairs


class VideoToVideo:
    """A source clip re-acted by another person's clip, as ``animate`` does with a source video:
    does each output frame keep its source frame's identity (CSIM) and the source's head
    movement (yaw and pitch r against the source clip), and follow the driver's expression
    (MediaPipe's blendshapes over time, as the cross protocol's ``active_blendshapes``)?"""

    def __init__(self, methods: Sequence[Method], tools: Tools, sampling: Sampling):
        self.methods = methods
        self.tools = tools
        self.sampling = sampling

    def start(self, clip: DrivingClip, driving: Path) -> Finisher:
        tools, scale = self.tools, VIDEO_OPTIONS.crop_scale
        count = min(self.sampling.video_frames, len(clip.frames))
        driving_fps = probe_video(driving).fps
        try:
            driver_frames, driver_fit, _ = track_prefix(driving, tools.fitter, math.ceil(count * driving_fps / clip.fps) + 1)
        except NoFaceError as error:
            raise NoFaceError(f"driving clip {driving.stem}: {error}") from None
        source_at, driving_at = timeline(count, clip.fps, len(driver_frames), driving_fps, LengthPolicy.shortest)
        # Frames where the source face was lost pass through unchanged in animate: nothing to measure.
        tracked = clip.fit.found[source_at]
        source_at, driving_at = source_at[tracked], driving_at[tracked]
        if len(source_at) < metrics.MIN_SIGNAL_FRAMES:
            raise NoFaceError(f"the source face was tracked in {len(source_at)} of the first {count} frames; at least {metrics.MIN_SIGNAL_FRAMES} are needed")
        boxes = [reenactment_box(clip.fit.landmarks[i], scale) for i in source_at]
        source_crops = _crops([clip.frames[i] for i in source_at], boxes)
        driver_crops = _crops([driver_frames[i] for i in driving_at], [reenactment_box(driver_fit.landmarks[i], scale) for i in driving_at])
        source_faces = tools.analyser.measure(source_crops)
        pending_source = tools.descriptors.submit(source_crops, source_faces.boxes)
        # What an output that keeps the source's pose exactly would score: a head that hardly
        # moves leaves yaw and pitch r at the fitter's own noise. Only reenacting methods get it.
        reenacting = {m.name for m in self.methods if not isinstance(m.stage, SourceStage)}
        pose_ceiling: Scores = {}
        if reenacting:
            carried = tools.analyser.fitter_angles([metrics.carried_copy(c) for c in source_crops])
            pose_ceiling = {
                f"{angle}_r_ceiling": _value(metrics.signal_agreement(torch.from_numpy(carried[:, k]), torch.from_numpy(source_faces.fitter_angles[:, k])).r)
                for k, angle in enumerate(("yaw", "pitch"))
            }
        driver_blendshapes = torch.from_numpy(tools.analyser.measure(driver_crops, fitter=False).blendshapes)
        # A frame where the tracker lost the driver's face holds another frame's motion.
        driver_blendshapes = driver_blendshapes.masked_fill(torch.from_numpy(~driver_fit.found[driving_at])[:, None], math.nan)
        shown = _evenly(list(range(len(source_at))), self.sampling.strip_frames)
        context = [_scaled_box(box, VIDEO_STRIP_CONTEXT) for box in boxes]
        rows: list[list[np.ndarray]] = [[crop(clip.frames[source_at[k]], context[k], CROP_SIZE), driver_crops[k]] for k in shown]
        differences: list[list[np.ndarray]] = [[] for _ in shown]
        measured: dict[str, tuple[FaceMeasurements, PendingDescriptors]] = {}
        still_faces: dict[str, FaceMeasurements] = {}
        driver_reference = clip_reference(driver_fit)
        for method in self.methods:
            if not isinstance(method.stage, SourceStage):
                try:
                    still = self._still_portrait(clip.frames[source_at[0]], driver_frames, driver_fit, driving_at, driver_reference, method)
                except NoFaceError:  # the detector misses the first frame the tracker followed: no comparator
                    still = None
                if still is not None:
                    still_faces[method.name] = tools.analyser.measure(_crops(list(still), [boxes[0]] * len(still)), fitter=False)
            made = reenacted_batches(tools.fitter.model, VIDEO_OPTIONS, clip.frames, clip.fit, driver_frames, driver_fit, source_at, driving_at, method.stage)
            frames = [frame for batch in made for frame in output_frames(batch, False, VIDEO_OPTIONS.crop_size)]
            crops = _crops(frames, boxes)
            faces = tools.analyser.measure(crops)
            measured[method.name] = (faces, tools.descriptors.submit(crops, faces.boxes))
            for row, difference, k in zip(rows, differences, shown):
                row.append(crop(frames[k], context[k], CROP_SIZE))
                if not isinstance(method.stage, SourceStage):
                    difference.append(_paste_difference(frames[k], clip.frames[source_at[k]], context[k], boxes[k]))
        labels = ["source frame", "driving frame", *(m.name for m in self.methods)]
        labels += [f"{m.name}: change x{VIDEO_DIFFERENCE_GAIN}" for m in self.methods if not isinstance(m.stage, SourceStage)]
        strip = make_strip([row + difference for row, difference in zip(rows, differences)], labels) if shown else None
        spread = np.nanstd(source_faces.fitter_angles[:, :2], axis=0)
        record: dict[str, Any] = {
            "source": clip.name,
            "driving": driving.stem,
            "status": "ok",
            "frames": [int(i) for i in source_at],
            "driving_frames": [int(i) for i in driving_at],
            "source_pose_std_deg": {"yaw": _value(float(spread[0])), "pitch": _value(float(spread[1]))},
        }

        def finish() -> Outcome:
            source_descriptors = pending_source.result()
            scores: dict[str, Scores] = {}
            for name, (faces, pending) in measured.items():
                scores[name] = self._scores(faces, pending.result(), source_faces, source_descriptors, driver_blendshapes)
                if name in still_faces:
                    following = metrics.active_blendshape_agreement(torch.from_numpy(still_faces[name].blendshapes), driver_blendshapes)
                    scores[name]["still_expression_r"] = _value(following.r)
                if name in reenacting:
                    scores[name].update(pose_ceiling)
            return Outcome({**record, "methods": scores}, strip)

        return finish

    def _still_portrait(
        self,
        picture: np.ndarray,
        driver_frames: list[np.ndarray],
        driver_fit: VideoFit,
        driving_at: np.ndarray,
        reference: tuple[FaceParams, np.ndarray | None],
        method: Method,
    ) -> np.ndarray:
        """The source clip's first frame animated as a still portrait by the driving frames
        ``driving_at``, as ``animate --expression-only`` would: the following video-to-video is
        held to. ``reference``: the driver's reference face and its MediaPipe landmarks."""
        reenactor = Reenactor(picture, self.tools.fitter, VIDEO_OPTIONS, method.stage)
        shown = [driver_frames[i] for i in driving_at]
        driving = driver_fit.params[driving_at.tolist()]
        batches = _batches(reenactor, driving, reference[0], shown, driver_fit.found[driving_at], driver_fit.points_of(driving_at), reference[1])
        return _paste_all(reenactor, batches)

    @staticmethod
    def _scores(faces: FaceMeasurements, descriptors: np.ndarray, source: FaceMeasurements, source_descriptors: np.ndarray, driver_blendshapes: torch.Tensor) -> Scores:
        t = torch.from_numpy
        following = metrics.active_blendshape_agreement(t(faces.blendshapes), driver_blendshapes)
        return {
            "csim": _identity_score(descriptors, source_descriptors),
            "yaw_r": _value(metrics.signal_agreement(t(faces.fitter_angles[:, 0]), t(source.fitter_angles[:, 0])).r),
            "pitch_r": _value(metrics.signal_agreement(t(faces.fitter_angles[:, 1]), t(source.fitter_angles[:, 1])).r),
            "expression_r": _value(following.r),
            "expression_ratio": _value(following.ratio),
            "face_found": float(faces.mediapipe_found.mean()),
        }


def _scaled_box(box: np.ndarray, factor: float) -> np.ndarray:
    """``box`` (left, top, right, bottom) grown by ``factor`` about its centre."""
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([centre - half, centre + half])


def _paste_difference(output: np.ndarray, source: np.ndarray, context: np.ndarray, box: np.ndarray) -> np.ndarray:
    """|output − source frame|, brightened, in the ``context`` box, with the generated crop's
    ``box`` (where the paste may change the frame) outlined: a seam shows as an edge at the line."""
    change = np.abs(output.astype(np.int16) - source.astype(np.int16)) * VIDEO_DIFFERENCE_GAIN
    picture = np.ascontiguousarray(crop(np.clip(change, 0, 255).astype(np.uint8), context, CROP_SIZE))
    scale = CROP_SIZE / (context[2] - context[0])
    (left, top), (right, bottom) = ((box[:2] - context[:2]) * scale).round().astype(int), ((box[2:] - context[:2]) * scale).round().astype(int)
    cv2.rectangle(picture, (int(left), int(top)), (int(right), int(bottom)), (255, 200, 0), 1)
    return picture
