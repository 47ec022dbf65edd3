"""Speed of the 3D front end, measured on this machine, with a baseline from the same run.

Stages on one clip: decoding; fitting with tracking (detector only when the face is lost)
against the baseline of running the detector on every frame; fitting plus a 256² identity-
matched PNCC render of every frame, decode included; and the rasterizer alone, batched against
one render at a time.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from facereenact.app.animate import animate_file
from facereenact.errors import FaceReenactError
from facereenact.face3d.fitter import FaceFitter
from facereenact.face3d.pncc import render_identity_matched_pncc, vertices_to_crop
from facereenact.face3d.raster import render_attributes
from facereenact.face3d.regressor import box_from_detection
from facereenact.io.assets import Assets
from facereenact.io.image import read_image
from facereenact.io.video import VideoWriter, iter_frames, probe_video
from facereenact.pipeline.composite import reenactment_box
from facereenact.pipeline.reenactor import ANIMATE_BATCH, ReenactOptions, Reenactor
from facereenact.pipeline.request import AnimateRequest, GenerationMethod, resolve_checkpoint
from facereenact.stage import StageMethod

if TYPE_CHECKING:
    from facereenact.model.inference import NeuralStage

CROP = 256
T = TypeVar("T")
RENDER_BATCH = 8


@dataclass
class BenchReport:
    clip: str
    size: tuple[int, int]
    frames: int
    threads: int
    rows: list[tuple[str, float, str]] = field(default_factory=list)  # (stage, fps, note)
    notes: list[str] = field(default_factory=list)

    def add(self, stage: str, count: int, seconds: float, note: str = "") -> float:
        fps = count / seconds
        self.rows.append((stage, fps, note))
        return fps

    def add_baseline(self, stage: str, count: int, seconds: float) -> float:
        """A baseline for the row added just before, whose note gains its speed-up over it."""
        name, faster, note = self.rows[-1]
        fps = count / seconds
        self.rows[-1] = (name, faster, f"{note}; {faster / fps:.2f}× baseline")
        self.rows.append((stage, fps, "baseline"))
        return fps


def _timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def run(assets: Assets, clip: Path, frames: int) -> BenchReport:
    info = probe_video(clip)
    fitter = FaceFitter(assets)
    decoded, seconds = _timed(lambda: list(iter_frames(clip, frames)))
    report = BenchReport(str(clip), (info.width, info.height), len(decoded), torch.get_num_threads())
    report.add("decode (PyAV)", len(decoded), seconds)

    fitter.track(decoded[:8], info.fps)  # warm-up
    _, seconds = _timed(fitter.track, decoded, info.fps)
    report.add("fit, tracking", len(decoded), seconds, "detector only when lost")
    _, seconds = _timed(_fit_detect_every_frame, fitter, decoded)
    report.add_baseline("fit, detect every frame", len(decoded), seconds)

    _, seconds = _timed(_fit_and_render, fitter, clip, frames, info.fps)
    report.add("decode + fit + 256² PNCC", len(decoded), seconds, "end to end, identity-matched")

    fit = fitter.track(decoded, info.fps)
    vertices = vertices_to_crop(fitter.model.vertices(fit.params), torch.from_numpy(fit.boxes).float(), CROP)
    single = _renders_per_second(fitter, vertices, 1)
    batched = _renders_per_second(fitter, vertices, RENDER_BATCH)
    report.rows.append(("rasterize 256², 1 at a time", single, "baseline; tracker crops (face ≈ half the crop)"))
    report.rows.append((f"rasterize 256², batch {RENDER_BATCH}", batched, f"{batched / single:.2f}× baseline; tracker crops"))
    animate_boxes = torch.from_numpy(np.stack([reenactment_box(lm, ReenactOptions().crop_scale) for lm in fit.landmarks])).float()
    animate_vertices = vertices_to_crop(fitter.model.vertices(fit.params), animate_boxes, CROP)
    report.rows.append((f"rasterize 256², batch {RENDER_BATCH}", _renders_per_second(fitter, animate_vertices, RENDER_BATCH), "animate's crops (2× the landmarks' extent)"))
    return report


def run_animate(assets: Assets, source: Path, clip: Path, frames: int) -> BenchReport:
    """End-to-end ``animate`` speed at a 256² crop, decode and encode included, and each stage
    timed on its own in the same run; the baseline is decoding + encoding alone."""
    fitter = FaceFitter(assets)
    info = probe_video(clip)
    source_image = read_image(source)
    report = BenchReport(f"{Path(source).name} animated by {Path(clip).name}", (info.width, info.height), 0, torch.get_num_threads())
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.mp4"
        options = ReenactOptions()
        warp = AnimateRequest(method=GenerationMethod.warp, max_frames=frames)
        animate_file(fitter, replace(warp, max_frames=16), source, clip, output)  # warm-up
        result, seconds = _timed(animate_file, fitter, warp, source, clip, output)
        report.frames = result.frames
        end_to_end = report.add("animate, end to end", result.frames, seconds, "decode + fit + warp + paste + encode")
        result, seconds = _timed(animate_file, fitter, replace(warp, crop_only=True), source, clip, output)
        report.add("animate --crop-only, end to end", result.frames, seconds, "256² output: decode + fit + warp + encode")
        without_blendshapes = FaceFitter(assets, blendshapes=False)
        result, seconds = _timed(animate_file, without_blendshapes, replace(warp, crop_only=True), source, clip, output)
        report.add_baseline("  the same, without blendshapes (no MediaPipe)", result.frames, seconds)
        stage = _shipped_stage(report.notes)
        if stage is not None:
            neural = AnimateRequest(max_frames=frames)
            animate_file(fitter, replace(neural, max_frames=16), source, clip, output, method=stage)  # warm-up
            result, seconds = _timed(animate_file, fitter, neural, source, clip, output, method=stage)
            report.add("animate --method neural, end to end", result.frames, seconds, "the shipped model refining the warp")
            result, seconds = _timed(animate_file, fitter, replace(neural, crop_only=True), source, clip, output, method=stage)
            report.add("animate --method neural --crop-only, end to end", result.frames, seconds, f"256² output; network run by {stage.runtime}")
            if stage.runtime != "torch":
                eager = _shipped_stage(report.notes, runtime="torch")
                assert eager is not None  # the same file just loaded
                result, seconds = _timed(animate_file, fitter, replace(neural, crop_only=True), source, clip, output, method=eager)
                report.add_baseline("  the same, network run by PyTorch", result.frames, seconds)

        decoded, seconds = _timed(lambda: list(iter_frames(clip, frames)))
        report.add("  decode", len(decoded), seconds, "once: tracking, driving mouths and audio share the pass")
        fit, seconds = _timed(fitter.track, decoded, info.fps)
        report.add("  fit (tracking)", len(decoded), seconds, "3D regressor + MediaPipe's blendshapes")
        reenactor, seconds = _timed(Reenactor, source_image, fitter, options)
        report.rows.append(("  source fit + crop (once)", 1 / seconds, "per source, not per frame"))
        batches, seconds = _timed(
            lambda: [
                reenactor.reenact(
                    fit.params[i : i + ANIMATE_BATCH], fit.params[0], paste=False, frames=np.stack(decoded[i : i + ANIMATE_BATCH]),
                    points=fit.points_of(slice(i, i + ANIMATE_BATCH)), reference_points=fit.points_at(0),
                )  # fmt: skip
                for i in range(0, len(fit), ANIMATE_BATCH)
            ]
        )
        report.add("  warp (render + sample + holes + driving mouth)", len(fit), seconds)
        pasted, seconds = _timed(lambda: [frame for b in batches for frame in reenactor.paste(b)])
        report.add("  paste back", len(pasted), seconds, f"{source_image.shape[1]}×{source_image.shape[0]} frame, the photo resampled at full resolution")

        def encode() -> None:
            with VideoWriter(Path(folder) / "encode.mp4", info.fps, audio_from=clip) as writer:
                writer.write_batch(np.stack(pasted))

        _, seconds = _timed(encode)
        report.add("  encode (H.264 + audio)", len(pasted), seconds)

        def copy_only() -> None:
            frames_in = list(iter_frames(clip, frames))
            with VideoWriter(Path(folder) / "copy.mp4", info.fps, audio_from=clip) as writer:
                for _ in frames_in:
                    writer.write(source_image)

        _, seconds = _timed(copy_only)
        baseline = report.add("decode + encode only", len(decoded), seconds, "baseline")
        report.rows[0] = (*report.rows[0][:2], f"decode + fit + warp + paste + encode; {end_to_end / baseline:.2f}× baseline")
    return report


def run_live(assets: Assets, source: Path, clip: Path, frames: int) -> BenchReport:
    """Live driving at a 256² crop (``facereenact live --driving CLIP --realtime``): the clip
    played at its own frame rate by the clock, as a camera would give it; frames/s delivered,
    capture → shown latency and frames dropped while the engine was busy."""
    from facereenact.app.live import LiveEngine, LiveOptions
    from facereenact.app.live_run import PlayedFile
    from facereenact.app.live_run import run_live as play

    info = probe_video(clip)
    fitter = FaceFitter(assets)
    report = BenchReport(f"{Path(source).name} driven live by {Path(clip).name} ({info.fps:g} fps)", (info.width, info.height), 0, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the live command: one core for tracking, one for generating
    try:
        seconds = frames / info.fps
        methods: list[tuple[str, StageMethod | None]] = [("warp", None)]
        stage = _shipped_stage(report.notes)
        if stage is not None:
            methods.append(("neural", stage))
        for name, method in methods:
            with LiveEngine(fitter, read_image(source), ReenactOptions(), method, LiveOptions()) as engine:
                stats = play(engine, PlayedFile(clip, realtime=True), None, False, seconds)
            summary = stats.summary()
            report.frames = max(report.frames, stats.delivered + stats.dropped)
            note = f"delivered; latency p50 {summary['latency_p50_ms']:.0f} ms, p95 {summary['latency_p95_ms']:.0f} ms; {stats.dropped} of {stats.delivered + stats.dropped} frames dropped"
            report.rows.append((f"live --method {name}", stats.fps, note))
    finally:
        torch.set_num_threads(threads)
    return report


def _shipped_stage(notes: list[str], runtime: str = "auto") -> NeuralStage | None:
    """The shipped model as a stage, or None (the reason added to ``notes``) when it cannot load."""
    from facereenact.model.inference import load_stage

    try:
        return load_stage(resolve_checkpoint(None), runtime=runtime)
    except FaceReenactError as error:
        notes.append(f"the neural rows are left out: {error}")
        return None


def _fit_detect_every_frame(fitter: FaceFitter, frames: list[np.ndarray]) -> None:
    for frame in frames:
        detections = fitter.detector.detect(frame)
        if detections:
            fitter.regressor.regress(frame, box_from_detection(np.array([detections[0].box])))


@torch.inference_mode()
def _fit_and_render(fitter: FaceFitter, clip: Path, frames: int, fps: float) -> None:
    fit = fitter.track(iter_frames(clip, frames), fps)
    source = fit.params[0]
    boxes = torch.from_numpy(fit.boxes).float()
    for start in range(0, len(fit), RENDER_BATCH):
        chunk = slice(start, start + RENDER_BATCH)
        render_identity_matched_pncc(fitter.model, source, fit.params[chunk], boxes[chunk], CROP)


@torch.inference_mode()
def _renders_per_second(fitter: FaceFitter, vertices: torch.Tensor, batch: int, repeats: int = 3) -> float:
    triangles, colours = fitter.model.triangles, fitter.model.ncc[None]
    render_attributes(vertices[:batch], triangles, colours, CROP, CROP)  # warm-up
    count, start = 0, time.perf_counter()
    for _ in range(repeats):
        for first in range(0, len(vertices) - batch + 1, batch):
            render_attributes(vertices[first : first + batch], triangles, colours, CROP, CROP)
            count += batch
    return count / (time.perf_counter() - start)


def print_report(report: BenchReport, console: Console) -> None:
    table = Table(title=f"{Path(report.clip).name}: {report.size[0]}×{report.size[1]}, {report.frames} frames, {report.threads} threads")
    table.add_column("stage")
    table.add_column("frames/s", justify="right")
    table.add_column("note")
    for stage, fps, note in report.rows:
        table.add_row(stage, f"{fps:.1f}", note)
    Console().print(table)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
