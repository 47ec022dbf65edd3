"""One evaluation run: every clip through both protocols and every method, then aggregates.

Each clip is one task of the execution layer (:mod:`facereenact.execute`: local worker processes
or a Ray cluster). A worker loads the instruments once (our fitter, MediaPipe, dlib's
descriptor, the methods) and keeps them for every clip it is given; each clip is decoded and
tracked once and shared by the protocols and methods. A clip (or pair) that fails is recorded
with its reason and the run goes on. The driver puts the clips' outcomes back in clip order and
computes every aggregate, so the report does not depend on where or in which order clips ran.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facereenact import __version__
from facereenact.errors import FaceReenactError
from facereenact.evaluate import metrics
from facereenact.evaluate.analysis import FaceAnalyser
from facereenact.evaluate.catalog import (
    BY_KEY,
    CROSS,
    DEFAULT_PROTOCOLS,
    EXPRESSION_THRESHOLD,
    INSTRUMENTS,
    NATIVE,
    PAIRED,
    PROTOCOLS,
    REGION_SIGNALS,
    SELF,
    VIDEO,
    metrics_for,
)
from facereenact.evaluate.dataset import EvaluationData
from facereenact.evaluate.identity import DescriptorService, DescriptorWorkerError, identity_validation
from facereenact.evaluate.lpips import LearnedPerceptualDistance
from facereenact.evaluate.methods import Method, absolute_spec, parse_methods
from facereenact.evaluate.protocols import (
    CROP_SIZE,
    CrossIdentity,
    DrivingClip,
    Finisher,
    NativeResolution,
    Outcome,
    Sampling,
    SelfReenactment,
    SourceBank,
    Tools,
    VideoToVideo,
    assign_cross_pairs,
    assign_video_pairs,
    load_clip,
)
from facereenact.evaluate.references import MediaPipeFace
from facereenact.evaluate.report import expression_instruments_note
from facereenact.evaluate.stats import jackknife_statistic, jsonable, summarize
from facereenact.execute import Backend, LocalBackend, Resources, RunSummary, Task, TaskOutput, TaskResult, run_all, worker_cache
from facereenact.io.assets import Assets
from facereenact.io.atomic import atomic_output
from facereenact.pipeline.cache import worker_fitter


@dataclass(frozen=True)
class EvaluationSettings:
    sampling: Sampling = field(default_factory=Sampling)
    protocols: tuple[str, ...] = DEFAULT_PROTOCOLS
    seed: int = 0
    bootstrap: int = 1000
    expression_threshold: float = EXPRESSION_THRESHOLD
    #: CPUs each clip's task takes. With 2 or more, dlib's descriptor runs in a subprocess on one
    #: of them, overlapping the rest, and torch gets the others: more threads than free cores
    #: make PyTorch's thread pool wait on itself (one thread too many made a run 10x slower here).
    threads: int = 1


@dataclass(frozen=True)
class ClipWork:
    """Everything a clip's task needs besides the clip; hashable, so a worker keeps the
    instruments it loaded for one evaluation (``worker_cache``) for all its clips."""

    assets: str
    methods: str
    device: str
    sampling: Sampling
    protocols: tuple[str, ...]
    expression_threshold: float
    lpips: tuple[str, str] | None
    sources: tuple[tuple[str, str], ...]  # cross-identity source name, path
    background_descriptors: bool


@dataclass
class EvaluationResult:
    """The JSON-ready result, the image strips by their path relative to the report, and the
    run's account of its tasks (a task that failed outright is a clip without measurements)."""

    result: dict[str, Any]
    strips: dict[str, bytes]
    summary: RunSummary


def _failure_reason(error: Exception) -> str:
    if isinstance(error, FaceReenactError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


def _failed(record: dict[str, Any], error: Exception) -> Finisher:
    """A finisher that records ``error`` as this clip's failure; a stopped descriptor worker is
    not a clip's failure and ends the task."""
    if isinstance(error, DescriptorWorkerError):
        raise error
    failed = {**record, "status": "failed", "reason": _failure_reason(error)}
    return lambda: Outcome(failed)


def _start(base: dict[str, Any], clip: DrivingClip | Exception, start: Callable[[DrivingClip], Finisher]) -> Finisher:
    try:
        if isinstance(clip, Exception):
            raise clip
        return start(clip)
    except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
        return _failed(base, error)


def clip_outcomes(
    protocols: dict[str, Any], name: str, clip: DrivingClip | Exception, sources: Sequence[str], driving: Path | None = None
) -> dict[str, list[Outcome]]:
    """One clip through every protocol: its self-reenactment outcome, one per cross pair, and
    (with ``driving``, a clip of another person) its video-to-video pair. Each protocol starts (generates, sends faces to the descriptor service) before any
    finishes, so a background descriptor process overlaps the rest."""
    started: list[tuple[str, dict[str, Any], Finisher]] = []
    if SELF in protocols:
        base = {"clip": name}
        started.append((SELF, base, _start(base, clip, protocols[SELF].start)))
    if NATIVE in protocols:
        base = {"clip": name}
        started.append((NATIVE, base, _start(base, clip, protocols[NATIVE].start)))
    if CROSS in protocols:
        bases = [{"source": source, "driving": name} for source in sources]
        try:
            if isinstance(clip, Exception):
                raise clip
            finishers = protocols[CROSS].start(clip, list(sources))
        except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
            finishers = [_failed(base, error) for base in bases]
        started.extend((CROSS, base, finisher) for base, finisher in zip(bases, finishers))
    if VIDEO in protocols and driving is not None:
        pair = {"source": name, "driving": driving.stem}
        started.append((VIDEO, pair, _start(pair, clip, lambda source: protocols[VIDEO].start(source, driving))))
    outcomes: dict[str, list[Outcome]] = {protocol: [] for protocol in protocols}
    for protocol, base, finisher in started:
        try:
            outcome = finisher()
        except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
            outcome = _failed(base, error)()
        outcomes[protocol].append(outcome)
    return outcomes


class _Instruments:
    """What a worker loads once per evaluation: our fitter, MediaPipe, dlib's descriptor, the
    methods (a checkpoint's weights once per worker) and the protocols that use them. They live
    as long as the worker process."""

    def __init__(self, work: ClipWork):
        assets = Assets.resolve(work.assets)
        self.fitter = worker_fitter(work.assets, work.device)
        methods = parse_methods(work.methods, work.device)
        lpips = LearnedPerceptualDistance.from_files(Path(work.lpips[0]), Path(work.lpips[1])) if work.lpips else None
        descriptors = DescriptorService(work.background_descriptors)
        analyser = FaceAnalyser(self.fitter, MediaPipeFace(assets))
        tools = Tools(self.fitter, analyser, descriptors, lpips, work.expression_threshold, descriptors.landmarks)
        self.protocols: dict[str, Any] = {}
        if SELF in work.protocols:
            self.protocols[SELF] = SelfReenactment(methods, tools, work.sampling)
        if NATIVE in work.protocols:
            self.protocols[NATIVE] = NativeResolution(methods, tools)
        if CROSS in work.protocols:
            self.protocols[CROSS] = CrossIdentity(methods, tools, work.sampling, SourceBank({n: Path(p) for n, p in work.sources}, methods, tools))
        if VIDEO in work.protocols:
            self.protocols[VIDEO] = VideoToVideo(methods, tools, work.sampling)


def evaluate_clip(work: ClipWork, path: Path, sources: tuple[str, ...], driving: Path | None = None) -> TaskOutput:
    """One clip's task: decode and track it, run the protocols (``driving`` re-acts it in the
    video-to-video one); the value is its outcomes by protocol, the frames those decoded and tracked."""
    if work.background_descriptors:  # one of the task's cores is dlib's
        torch.set_num_threads(max(1, torch.get_num_threads() - 1))
    instruments = worker_cache(("evaluation", work), lambda: _Instruments(work))
    with torch.inference_mode():
        try:
            clip: DrivingClip | Exception = load_clip(path, instruments.fitter, work.sampling, _decode_count(work), bool(set(work.protocols) - {VIDEO}))
        except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
            clip = error
        outcomes = clip_outcomes(instruments.protocols, path.stem, clip, sources, driving)
    return TaskOutput(frames=0 if isinstance(clip, Exception) else len(clip.frames), value=outcomes)


def _decode_count(work: ClipWork) -> int:
    """Frames of a clip its protocols use: the sampling's prefix, and the video-to-video
    protocol's frames (a clip only that one uses is decoded no further)."""
    counts = [work.sampling.decode_limit] if set(work.protocols) - {VIDEO} else []
    return max([*counts, work.sampling.video_frames] if VIDEO in work.protocols else counts)


def _partial_file(folder: Path, args: tuple[ClipWork, Path, tuple[str, ...], Path | None]) -> Path:
    """Where a clip's outcomes are kept: named by the clip and a digest of everything that
    decides them (settings, methods, sources), so changed settings never reuse old outcomes."""
    digest = hashlib.sha256(repr(args).encode()).hexdigest()[:16]
    return folder / f"{args[1].stem}.{digest}.pkl"


def _read_partial(folder: Path | None, args: tuple[ClipWork, Path, tuple[str, ...], Path | None]) -> dict[str, list[Outcome]] | None:
    if folder is None:
        return None
    try:
        with open(_partial_file(folder, args), "rb") as file:
            return pickle.load(file)  # written by this program into the user's own output folder
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def _write_partial(folder: Path | None, args: tuple[ClipWork, Path, tuple[str, ...], Path | None], outcomes: dict[str, list[Outcome]]) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_output(_partial_file(folder, args)) as tmp:
        tmp.write_bytes(pickle.dumps(outcomes, protocol=pickle.HIGHEST_PROTOCOL))


def _lost_clip(protocols: Sequence[str], name: str, sources: Sequence[str], driving: Path | None, reason: str) -> dict[str, list[Outcome]]:
    """The records of a clip whose task failed outright (its worker kept dying)."""
    outcomes: dict[str, list[Outcome]] = {}
    for per_clip in (SELF, NATIVE):
        if per_clip in protocols:
            outcomes[per_clip] = [Outcome({"clip": name, "status": "failed", "reason": reason})]
    if CROSS in protocols:
        outcomes[CROSS] = [Outcome({"source": source, "driving": name, "status": "failed", "reason": reason}) for source in sources]
    if VIDEO in protocols and driving is not None:
        outcomes[VIDEO] = [Outcome({"source": name, "driving": driving.stem, "status": "failed", "reason": reason})]
    return outcomes


def evaluate(
    data: EvaluationData,
    methods: str,
    assets: Assets,
    settings: EvaluationSettings = EvaluationSettings(),
    lpips: tuple[Path, Path] | None = None,
    device: str = "cpu",
    backend: Backend | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    log: Callable[[str], None] = print,
    on_start: Callable[[int], None] | None = None,
    partial: Path | None = None,
) -> EvaluationResult:
    """Evaluate ``methods`` (e.g. ``"source,warp,neural:ckpt.safetensors"``) on ``data``, one
    task per clip on ``backend`` (default: local worker processes); see the package README's
    "Evaluation" section. Methods and LPIPS weights are checked here first, so a bad one is one
    error before any work starts; aggregates are computed here from every clip's outcomes, in
    clip order, so they do not depend on the backend or on which clip finished first.

    With ``partial`` (a folder), each clip's outcomes are kept there as they arrive and a later
    call with the same settings takes them instead of running the clip again (resume)."""
    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    sampling = settings.sampling
    compared = parse_methods(methods, "cpu")
    if lpips is not None:
        LearnedPerceptualDistance.from_files(*lpips)
    if data.portraits:
        source_paths, source_kind = {p.stem: p for p in data.portraits}, f"{len(data.portraits)} portraits"
    else:
        source_paths, source_kind = {p.stem: p for p in data.clips}, "the first frames of the other clips (no portraits found)"
    clip_names = [p.stem for p in data.clips]
    assignment = assign_cross_pairs(clip_names, list(source_paths), sampling.cross_sources, rng) if CROSS in settings.protocols else {}
    # Its own generator: choosing video pairs leaves the other protocols' pairing and intervals as they were.
    video_pairs = assign_video_pairs(clip_names, sampling.video_pairs, data.person, np.random.default_rng(settings.seed)) if VIDEO in settings.protocols else {}
    clip_paths = {path.stem: path.absolute() for path in data.clips}
    work = ClipWork(
        assets=str(assets.root.absolute()),
        methods=absolute_spec(methods),
        device=device,
        sampling=sampling,
        protocols=tuple(settings.protocols),
        expression_threshold=settings.expression_threshold,
        lpips=(str(lpips[0].absolute()), str(lpips[1].absolute())) if lpips else None,
        sources=tuple((name, str(path.absolute())) for name, path in source_paths.items()),
        background_descriptors=settings.threads >= 2,
    )
    resources = Resources(cpus=settings.threads, gpus=1.0 if device.startswith("cuda") else 0.0)
    summary = RunSummary()
    per_clip: dict[str, dict[str, list[Outcome]]] = {}
    tasks = []
    # A clip that no chosen protocol uses (only video-to-video, and it is no pair's source) is not run.
    used = [path for path in data.clips if set(settings.protocols) - {VIDEO} or path.stem in video_pairs]
    for path in used:
        driving = clip_paths.get(video_pairs.get(path.stem, ""))
        args = (work, path.absolute(), tuple(assignment.get(path.stem, ())), driving)
        kept = _read_partial(partial, args)
        if kept is not None:
            per_clip[path.stem] = kept
            summary.skipped.append(path.stem)
        else:
            tasks.append(Task(path.stem, evaluate_clip, args, resources))
    if on_start is not None:
        on_start(len(tasks))
    args_of = {task.name: task.args for task in tasks}

    def arrived(done: TaskResult) -> None:
        if done.ok and done.output is not None:
            _write_partial(partial, args_of[done.name], done.output.value)
        if on_result is not None:
            on_result(done)

    for task, done in zip(tasks, run_all(backend or LocalBackend(), tasks, summary, arrived, log=log)):
        per_clip[task.name] = done.output.value if done.ok and done.output is not None else _lost_clip(settings.protocols, task.name, task.args[2], task.args[3], done.error or "")
    outcomes: dict[str, list[Outcome]] = {protocol: [] for protocol in PROTOCOLS if protocol in settings.protocols}
    for path in used:
        for protocol, clip_part in per_clip[path.stem].items():
            outcomes[protocol].extend(clip_part)
    result: dict[str, Any] = {
        "facereenact_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": str(data.root),
        "methods": [m.name for m in compared],
        "settings": {
            **asdict(sampling),
            "seed": settings.seed,
            "bootstrap_resamples": settings.bootstrap,
            "frechet_interval": "leave-one-clip-out jackknife",
            "expression_threshold": settings.expression_threshold,
            "crop_size": CROP_SIZE,
            "self_motion": "relative",
            "cross_motion": "absolute",
            "video_motion": "expression (animate's default for a source video), pasted back into each source frame",
            "video_pairs_from": "an identities file" if data.person_of else "every clip counted as its own person (no identities file)",
            "cross_sources_from": source_kind,
        },
        "sampling": sampling.describe(VIDEO in settings.protocols),
        "metrics": {},
        "notes": [],
    }
    strips: dict[str, bytes] = {}
    for protocol, protocol_outcomes in outcomes.items():
        result[protocol] = _protocol_result(protocol, protocol_outcomes, compared, settings, lpips is not None, rng, strips)
        result["metrics"].update({k: None for k in _present_keys(result[protocol])})
    result["metrics"] = {key: _describe_metric(key) for key in result["metrics"]}
    result["identity_check"] = _identity_check(outcomes.get(SELF, []), data.person_of)
    result["notes"] = _notes(result, lpips is not None, source_kind)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return EvaluationResult(jsonable(result), strips, summary)


def _present_keys(part: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(key for per_method in part["aggregate"].values() for key in per_method))


def _describe_metric(key: str) -> dict[str, str]:
    metric = BY_KEY[key]
    return {"label": metric.label, "unit": metric.unit, "better": metric.better, "description": metric.description}


#: The file-name prefix of each protocol's image strips.
STRIP_PREFIX = {SELF: "self", CROSS: "cross", NATIVE: "native", VIDEO: "video"}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _protocol_result(
    protocol: str,
    outcomes: list[Outcome],
    methods: Sequence[Method],
    settings: EvaluationSettings,
    with_lpips: bool,
    rng: np.random.Generator,
    strips: dict[str, bytes],
) -> dict[str, Any]:
    records = []
    for outcome in outcomes:
        record = dict(outcome.record)
        name = record["clip"] if protocol not in PAIRED else f"{record['source']}__{record['driving']}"
        if outcome.strip is not None:
            record["strip"] = f"strips/{STRIP_PREFIX[protocol]}_{_safe_name(name)}.jpg"
            strips[record["strip"]] = outcome.strip
        if outcome.expression_strip is not None:
            record["expression_strip"] = f"strips/{STRIP_PREFIX[protocol]}_expression_{_safe_name(name)}.jpg"
            strips[record["expression_strip"]] = outcome.expression_strip
        records.append(record)
    ok = [r for r in records if r["status"] == "ok"]
    keys = [m.key for m in metrics_for(protocol, with_lpips) if m.key != "frechet_dlib"]
    aggregate = {m.name: {key: summarize([r["methods"][m.name].get(key) for r in ok], settings.bootstrap, rng) for key in keys} for m in methods}
    if protocol == SELF:
        good = [o for o in outcomes if o.record["status"] == "ok"]
        for method in methods:
            groups = [(o.descriptors["real"], o.descriptors[method.name]) for o in good]
            aggregate[method.name]["frechet_dlib"] = _frechet_summary(groups)
    part: dict[str, Any] = {
        "unit": "clips" if protocol not in PAIRED else "pairs",
        "counts": {"ok": len(ok), "total": len(records)},
        "clips" if protocol not in PAIRED else "pairs": records,
        "aggregate": aggregate,
    }
    if protocol == CROSS:
        part["expression_regions"] = _expression_summary([r for r in ok if "expression_window" in r], methods, settings, rng)
    return part


def _expression_summary(pairs: list[dict[str, Any]], methods: Sequence[Method], settings: EvaluationSettings, rng: np.random.Generator) -> dict[str, Any] | None:
    """Expression by region over the pairs' consecutive frames: per method, instrument and
    signal, the mean r over pairs (bootstrap interval) and the median amplitude ratio (a median:
    one pair whose driver hardly moves a region gives a huge or tiny ratio). Which instrument
    is the independent check: the one the pipeline does not read."""
    if not pairs:
        return None
    reads_mediapipe = any(p["expression_window"]["pipeline_reads_mediapipe"] for p in pairs)
    summary: dict[str, Any] = {}
    for method in methods:
        summary[method.name] = {}
        for instrument, names in REGION_SIGNALS.items():
            summary[method.name][instrument] = {}
            for name in names:
                values = [p["methods"][method.name]["expression_regions"][instrument][name] for p in pairs]
                ratios = [v["ratio"] for v in values if v["ratio"] is not None]
                summary[method.name][instrument][name] = {
                    "r": summarize([v["r"] for v in values], settings.bootstrap, rng),
                    "ratio": {"median": float(np.median(ratios)) if ratios else None, "n": len(ratios)},
                }
    return {
        "frames": settings.sampling.expression_window,
        "pairs": len(pairs),
        "instruments": INSTRUMENTS,
        "driven_by": "mediapipe" if reads_mediapipe else None,
        "independent_check": "dlib" if reads_mediapipe else "both",
        "signals": REGION_SIGNALS,
        "methods": summary,
    }


def _frechet_summary(groups: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Fréchet distance between all outputs' and all real frames' descriptors (pairs of arrays per clip)."""

    def statistic(chosen: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
        real = np.concatenate([g[0] for g in chosen])
        output = np.concatenate([g[1] for g in chosen])
        real, output = real[np.isfinite(real).all(1)], output[np.isfinite(output).all(1)]
        if len(real) < 2 or len(output) < 2:
            return float("nan")
        return metrics.frechet_distance(torch.from_numpy(output), torch.from_numpy(real))

    if not groups or np.isnan(statistic(groups)):
        return {"mean": None, "ci95": None, "n": len(groups)}
    return jackknife_statistic(groups, statistic)


def _identity_check(outcomes: list[Outcome], person_of: dict[str, str]) -> dict[str, Any] | None:
    """The descriptor's own check on this data, from the real frames already described (clips of
    one person are not counted as different people)."""
    descriptors = {o.record["clip"]: np.unique(o.descriptors["real"], axis=0) for o in outcomes if o.record["status"] == "ok"}
    try:
        return identity_validation(descriptors, person_of).as_dict()
    except ValueError:
        return None


def _notes(result: dict[str, Any], with_lpips: bool, source_kind: str) -> list[str]:
    notes = []
    if not with_lpips:
        notes.append(
            "LPIPS is left out: its AlexNet and linear-layer weights cannot be downloaded here; "
            "name both weight files to include it (see docs/evaluation.md)."
        )
    check = result.get("identity_check")
    if check:
        notes.append(
            f"Identity descriptor check on these clips: two real frames of one clip are more alike than a frame of another clip in "
            f"{100 * check['rate']:.1f}% of {check['comparisons']} comparisons (every clip counted as a different person unless an identities "
            f"file groups them, so other clips of one person lower it). On this descriptor's scale two frames of one clip score {check['same_clip_similarity']:.3f} "
            f"on average and frames of two clips {check['other_person_similarity']:.3f}: read CSIM between these."
        )
    if CROSS in result:
        notes.append(f"Cross-identity sources: {source_kind}.")
        if result[CROSS].get("expression_regions"):
            notes.append(expression_instruments_note(result[CROSS]["expression_regions"]))
    if VIDEO in result:
        notes.append(
            "Video-to-video: each output frame's CSIM is against its own source frame; yaw and pitch r need a source that moves its head "
            "(source_pose_std_deg per pair says how far it did); expression r is MediaPipe's, which also drives the pipeline's "
            "eyes, brows and mouth corners, so it partly grades the pipeline's own signal."
        )
    for protocol in PROTOCOLS:
        if protocol in result and result[protocol]["counts"]["ok"] < result[protocol]["counts"]["total"]:
            counts = result[protocol]["counts"]
            notes.append(f"{counts['total'] - counts['ok']} of {counts['total']} {result[protocol]['unit']} failed ({protocol}); their reasons are in metrics.json.")
    if SELF in result or NATIVE in result:
        notes.append('Infinite values (the PSNR of identical images) are written as "inf" in metrics.json; a mean over one is infinite.')
    if SELF in result:
        notes.append(
            "The Fréchet distance is computed on dlib's 128-d face descriptors (an identity embedding), not Inception features: "
            "it is not comparable with FID values elsewhere."
        )
    return notes
