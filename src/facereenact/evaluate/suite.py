"""One evaluation run: every clip through both protocols and every method, then aggregates.

The instruments are loaded once (our fitter, MediaPipe, dlib's descriptor in a worker process);
each clip is decoded and tracked once and shared by the protocols and methods. A clip (or pair)
that fails is recorded with its reason and the run goes on.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facereenact import __version__
from facereenact.assets import Assets
from facereenact.errors import FaceReenactError
from facereenact.evaluate import metrics
from facereenact.evaluate.analysis import FaceAnalyser
from facereenact.evaluate.catalog import BY_KEY, CROSS, EXPRESSION_THRESHOLD, PROTOCOLS, SELF, metrics_for
from facereenact.evaluate.dataset import EvaluationData
from facereenact.evaluate.identity import DescriptorService, DescriptorWorkerError, identity_validation
from facereenact.evaluate.lpips import LearnedPerceptualDistance
from facereenact.evaluate.methods import Method
from facereenact.evaluate.protocols import (
    CROP_SIZE,
    CrossIdentity,
    DrivingClip,
    Finisher,
    Outcome,
    Sampling,
    SelfReenactment,
    SourceBank,
    Tools,
    assign_cross_pairs,
    load_clip,
)
from facereenact.evaluate.references import MediaPipeFace
from facereenact.evaluate.stats import jackknife_statistic, jsonable, summarize
from facereenact.face3d.fitter import FaceFitter
from facereenact.jobs import ProgressFactory


@dataclass(frozen=True)
class EvaluationSettings:
    sampling: Sampling = field(default_factory=Sampling)
    protocols: tuple[str, ...] = PROTOCOLS
    seed: int = 0
    bootstrap: int = 1000
    expression_threshold: float = EXPRESSION_THRESHOLD
    #: Run dlib's descriptor in a worker process (overlaps it with generation and MediaPipe).
    background_descriptors: bool = True
    #: Torch threads during the run; by default every core but the one the descriptor worker
    #: uses. More threads than free cores make PyTorch's thread pool wait on itself: with one
    #: thread too many on this 2-core machine a run took 10× longer.
    threads: int | None = None


@dataclass
class EvaluationResult:
    """The JSON-ready result, and the image strips by their path relative to the report."""

    result: dict[str, Any]
    strips: dict[str, bytes]


def _no_progress(_: str, __: int) -> Any:
    return lambda _: None


def _failure_reason(error: Exception) -> str:
    if isinstance(error, FaceReenactError):
        return str(error)
    return f"unexpected {type(error).__name__}: {error}"


def _failed(record: dict[str, Any], error: Exception) -> Finisher:
    """A finisher that records ``error`` as this clip's failure; a stopped descriptor worker is
    not a clip's failure and ends the run."""
    if isinstance(error, DescriptorWorkerError):
        raise error
    failed = {**record, "status": "failed", "reason": _failure_reason(error)}
    return lambda: Outcome(failed)


class _Run:
    """Starts each clip's protocols, and finishes the previous clip's meanwhile."""

    def __init__(self, protocols: dict[str, Any], assignment: dict[str, list[str]]):
        self.protocols = protocols
        self.assignment = assignment
        self.outcomes: dict[str, list[Outcome]] = {name: [] for name in protocols}
        self._pending: list[tuple[str, dict[str, Any], Finisher]] = []

    def clip(self, name: str, clip: DrivingClip | Exception) -> None:
        started: list[tuple[str, dict[str, Any], Finisher]] = []
        if SELF in self.protocols:
            base = {"clip": name}
            started.append((SELF, base, self._start(base, clip, lambda c: self.protocols[SELF].start(c))))
        if CROSS in self.protocols:
            bases = [{"source": source, "driving": name} for source in self.assignment[name]]
            try:
                if isinstance(clip, Exception):
                    raise clip
                finishers = self.protocols[CROSS].start(clip, self.assignment[name])
            except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
                finishers = [_failed(base, error) for base in bases]
            started.extend((CROSS, base, finisher) for base, finisher in zip(bases, finishers))
        self.flush()
        self._pending = started

    @staticmethod
    def _start(base: dict[str, Any], clip: DrivingClip | Exception, start: Any) -> Finisher:
        try:
            if isinstance(clip, Exception):
                raise clip
            return start(clip)
        except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
            return _failed(base, error)

    def flush(self) -> None:
        for protocol, base, finisher in self._pending:
            try:
                outcome = finisher()
            except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
                outcome = _failed(base, error)()
            self.outcomes[protocol].append(outcome)
        self._pending = []


def evaluate(
    data: EvaluationData,
    methods: Sequence[Method],
    fitter: FaceFitter,
    assets: Assets,
    settings: EvaluationSettings = EvaluationSettings(),
    lpips: LearnedPerceptualDistance | None = None,
    progress: ProgressFactory = _no_progress,
) -> EvaluationResult:
    """Evaluate ``methods`` on ``data``; see the package README's "Evaluation" section."""
    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    sampling = settings.sampling
    if data.portraits:
        source_paths, source_kind = {p.stem: p for p in data.portraits}, f"{len(data.portraits)} portraits"
    else:
        source_paths, source_kind = {p.stem: p for p in data.clips}, "the first frames of the other clips (no portraits found)"
    clip_names = [p.stem for p in data.clips]
    assignment = assign_cross_pairs(clip_names, list(source_paths), sampling.cross_sources, rng) if CROSS in settings.protocols else {}
    previous_threads = torch.get_num_threads()
    spare = 1 if settings.background_descriptors else 0
    torch.set_num_threads(settings.threads or max(1, (os.cpu_count() or 2) - spare))
    try:
        run = _run_all(data, methods, fitter, assets, settings, lpips, progress, source_paths, assignment)
    finally:
        torch.set_num_threads(previous_threads)
    result: dict[str, Any] = {
        "facereenact_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": str(data.root),
        "methods": [m.name for m in methods],
        "settings": {
            **asdict(sampling),
            "seed": settings.seed,
            "bootstrap_resamples": settings.bootstrap,
            "frechet_interval": "leave-one-clip-out jackknife",
            "expression_threshold": settings.expression_threshold,
            "crop_size": CROP_SIZE,
            "self_motion": "relative",
            "cross_motion": "absolute",
            "cross_sources_from": source_kind,
        },
        "sampling": sampling.describe(),
        "metrics": {},
        "notes": [],
    }
    strips: dict[str, bytes] = {}
    for protocol, outcomes in run.outcomes.items():
        result[protocol] = _protocol_result(protocol, outcomes, methods, settings, lpips is not None, rng, strips)
        result["metrics"].update({k: None for k in _present_keys(result[protocol])})
    result["metrics"] = {key: _describe_metric(key) for key in result["metrics"]}
    result["identity_check"] = _identity_check(run.outcomes.get(SELF, []))
    result["notes"] = _notes(result, lpips is not None, source_kind)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return EvaluationResult(jsonable(result), strips)


def _run_all(
    data: EvaluationData,
    methods: Sequence[Method],
    fitter: FaceFitter,
    assets: Assets,
    settings: EvaluationSettings,
    lpips: LearnedPerceptualDistance | None,
    progress: ProgressFactory,
    source_paths: dict[str, Path],
    assignment: dict[str, list[str]],
) -> _Run:
    """Every clip through the protocols, with the instruments loaded once."""
    with MediaPipeFace(assets) as mediapipe, DescriptorService(settings.background_descriptors) as descriptors:
        tools = Tools(fitter, FaceAnalyser(fitter, mediapipe), descriptors, lpips, settings.expression_threshold)
        protocols: dict[str, Any] = {}
        if SELF in settings.protocols:
            protocols[SELF] = SelfReenactment(methods, tools, settings.sampling)
        if CROSS in settings.protocols:
            protocols[CROSS] = CrossIdentity(methods, tools, settings.sampling, SourceBank(source_paths, methods, tools))
        run = _Run(protocols, assignment)
        tick = progress("evaluating", len(data.clips))
        with torch.inference_mode():
            for index, path in enumerate(data.clips):
                try:
                    clip: DrivingClip | Exception = load_clip(path, fitter, settings.sampling)
                except Exception as error:  # noqa: BLE001 (recorded as this clip's failure; the run goes on)
                    clip = error
                run.clip(path.stem, clip)
                tick(index)
            run.flush()
    return run


def _present_keys(part: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(key for per_method in part["aggregate"].values() for key in per_method))


def _describe_metric(key: str) -> dict[str, str]:
    metric = BY_KEY[key]
    return {"label": metric.label, "unit": metric.unit, "better": metric.better, "description": metric.description}


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
        if outcome.strip is not None:
            name = record["clip"] if protocol == SELF else f"{record['source']}__{record['driving']}"
            record["strip"] = f"strips/{'self' if protocol == SELF else 'cross'}_{_safe_name(name)}.jpg"
            strips[record["strip"]] = outcome.strip
        records.append(record)
    ok = [r for r in records if r["status"] == "ok"]
    keys = [m.key for m in metrics_for(protocol, with_lpips) if m.key != "frechet_dlib"]
    aggregate = {m.name: {key: summarize([r["methods"][m.name].get(key) for r in ok], settings.bootstrap, rng) for key in keys} for m in methods}
    if protocol == SELF:
        good = [o for o in outcomes if o.record["status"] == "ok"]
        for method in methods:
            groups = [(o.descriptors["real"], o.descriptors[method.name]) for o in good]
            aggregate[method.name]["frechet_dlib"] = _frechet_summary(groups)
    return {
        "unit": "clips" if protocol == SELF else "pairs",
        "counts": {"ok": len(ok), "total": len(records)},
        "clips" if protocol == SELF else "pairs": records,
        "aggregate": aggregate,
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


def _identity_check(outcomes: list[Outcome]) -> dict[str, Any] | None:
    """The descriptor's own check on this data, from the real frames already described."""
    descriptors = {o.record["clip"]: np.unique(o.descriptors["real"], axis=0) for o in outcomes if o.record["status"] == "ok"}
    try:
        return identity_validation(descriptors).as_dict()
    except ValueError:
        return None


def _notes(result: dict[str, Any], with_lpips: bool, source_kind: str) -> list[str]:
    notes = []
    if not with_lpips:
        notes.append(
            "LPIPS is left out: its AlexNet and linear-layer weights cannot be downloaded here; "
            "pass --lpips-alexnet and --lpips-linear to include it."
        )
    check = result.get("identity_check")
    if check:
        notes.append(
            f"Identity descriptor check on these clips: two real frames of one clip are more alike than a frame of another clip in "
            f"{100 * check['rate']:.1f}% of {check['comparisons']} comparisons (every clip counted as a different person, "
            f"so clips of one person lower it). On this descriptor's scale two frames of one clip score {check['same_clip_similarity']:.3f} "
            f"on average and frames of two clips {check['other_person_similarity']:.3f}: read CSIM between these."
        )
    if CROSS in result:
        notes.append(f"Cross-identity sources: {source_kind}.")
    for protocol in PROTOCOLS:
        if protocol in result and result[protocol]["counts"]["ok"] < result[protocol]["counts"]["total"]:
            counts = result[protocol]["counts"]
            notes.append(f"{counts['total'] - counts['ok']} of {counts['total']} {result[protocol]['unit']} failed ({protocol}); their reasons are in metrics.json.")
    notes.append('Infinite values (the PSNR of identical images) are written as "inf" in metrics.json; a mean over one is infinite.')
    notes.append(
        "The Fréchet distance is computed on dlib's 128-d face descriptors (an identity embedding), not Inception features: "
        "it is not comparable with FID values elsewhere."
    )
    return notes
