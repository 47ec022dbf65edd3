"""The ``facereenact`` command line: thin wrappers over :mod:`facereenact.app`.

Every expected failure (bad input, missing asset, unwritable output) is one line on stderr and a
non-zero exit; outputs are only ever renamed into place once complete.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from facereenact import __version__
from facereenact.app import assets as asset_files
from facereenact.app import examples
from facereenact.app.animate import (
    CROP_SIZES,
    SCALE_RANGE,
    AnimateRequest,
    AudioFrom,
    GenerationMethod,
    LengthPolicy,
    MotionMode,
    VideoMotion,
    check_checkpoint,
    region_list,
    resolve_checkpoint,
)
from facereenact.app.api import run_animation
from facereenact.app.batch import animate_batch, check_checkpoints, read_batch
from facereenact.app.extras import require_extra
from facereenact.app.fit import FaceFitter, fit_file, load_fitter
from facereenact.app.live import LiveOptions
from facereenact.app.locations import ASSETS_ENV, assets_dir, resolve_assets
from facereenact.app.pncc import pncc_file
from facereenact.app.progress import Progress as StageProgress
from facereenact.app.progress import ProgressFactory
from facereenact.errors import AssetError, FaceIndexError, FaceReenactError, InputError, OptionError, OutputError
from facereenact.evaluate import dataset, report, suite
from facereenact.evaluate.catalog import CROSS, NATIVE, SELF, VIDEO
from facereenact.evaluate.protocols import Sampling
from facereenact.execute import Backend, BackendName, RunSummary, TaskResult, make_backend
from facereenact.execute.progress import RunProgress

#: The request's defaults: every animate option's default is the request's own.
DEFAULTS = AnimateRequest()

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="One-shot face reenactment with identity-matched 3D correspondence (PNCC).",
)
console = Console(stderr=True)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"facereenact {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version)] = False,
) -> None:
    """One-shot face reenactment with identity-matched 3D correspondence (PNCC)."""

AssetsOption = Annotated[
    Path | None,
    typer.Option("--assets", envvar=ASSETS_ENV, help=f"Folder of model files (default: ${ASSETS_ENV}, the per-user folder, or a checkout's ../shared/assets).", show_default=False),
]
DeviceOption = Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1 …")]
SmoothOption = Annotated[bool, typer.Option("--smooth/--no-smooth", help="Temporal smoothing of video fits (One Euro filter).")]
MaxFramesOption = Annotated[int | None, typer.Option(min=1, help="Stop after this many video frames.")]
DataOption = Annotated[
    Path | None,
    typer.Option("--data", envvar=examples.ENV_VAR, help="Example-data folder used for defaults (default: ../shared/data).", show_default=False),
]

WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, help="Tasks run at once (default: local, one per CPU core; ray, as many as the cluster's CPUs take).", show_default=False),
]
BackendOption = Annotated[BackendName, typer.Option(help="Where the per-clip tasks run: local worker processes, or a Ray cluster (pip install 'facereenact[ray]').")]
AddressOption = Annotated[
    str | None,
    typer.Option(help="With --backend ray: the cluster, 'auto' (the one this machine is part of) or HOST:PORT (default: a Ray instance started here, or RAY_ADDRESS).", show_default=False),
]

F = TypeVar("F", bound=Callable[..., Any])


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the command stops as on Ctrl-C, its cleanup included."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM (``kill``, a service manager or container stopping it)
    raises :class:`_Terminated` instead of ending the process on the spot, so that every
    ``finally`` and ``with`` deletes its temporaries as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread takes signals
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup short
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _user_errors(command: F) -> F:
    """Turn expected failures into one line on stderr and exit code 1; Ctrl-C and SIGTERM into
    one line and 130 or 143 (128 + the signal), after the command's own cleanup."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with _terminate_as_interrupt():
                return command(*args, **kwargs)
        except FaceReenactError as error:
            console.print(f"[bold red]error:[/] {escape(_one_line(_worded(error)))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as interrupt:
            what, code = ("terminated", 128 + signal.SIGTERM) if isinstance(interrupt, _Terminated) else ("interrupted", 128 + signal.SIGINT)
            console.print(f"[bold red]{what}[/]: no half-written output was left (finished ones are kept; a re-run resumes)", soft_wrap=True)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _one_line(text: str) -> str:
    """``text`` with every character that would start a new line shown escaped (a value quoted
    from a damaged file may hold one): an error stays one line."""
    return "".join(ascii(character)[1:-1] if len(f"a{character}a".splitlines()) > 1 else character for character in text)


def _worded(error: FaceReenactError) -> str:
    """The error's message, naming options as this command line's flags."""
    if isinstance(error, OptionError):
        return error.worded(_flag)
    if isinstance(error, FaceIndexError):
        return f"--face-index {error.index} asked for, but the {error.what} has {error.count} face(s)"
    return str(error)


@contextmanager
def _progress() -> Iterator[ProgressFactory]:
    """A rich progress display; jobs ask it for one bar per stage."""
    columns = (TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.speed} fps"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=not sys.stderr.isatty()) as progress:

        def factory(stage: str, total: int) -> StageProgress:
            task = progress.add_task(stage, total=total)
            return lambda index: progress.update(task, completed=index + 1)

        yield factory


class _RunDisplay:
    """The one progress bar of a run on the execution layer, started once the number of tasks
    is known; log lines print above it."""

    def __init__(self, label: str):
        self.label = label
        self._bar: RunProgress | None = None

    def start(self, total: int) -> None:
        self._bar = RunProgress(console, self.label, total).start()

    def advance(self, result: TaskResult) -> None:
        if self._bar is not None:
            self._bar.advance(result)

    def log(self, line: str) -> None:
        console.print(f"[yellow]note:[/] {escape(line)}", highlight=False, soft_wrap=True)

    def __enter__(self) -> _RunDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _finish(summary: RunSummary, unit: str, wrote: str) -> None:
    """Print a run's summary; exit code 1 when any task failed (the rest is written)."""
    for line in summary.lines(unit):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(wrote, markup=False, highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


def _warn(lines: list[str]) -> None:
    """What a command had to leave out of its result, one ``warning:`` line each on stderr."""
    for line in lines:
        console.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def _fitter(assets: Path | None, device: str) -> FaceFitter:
    return load_fitter(resolve_assets(assets), device)


def _require_backend(backend: BackendName) -> None:
    """``--backend ray`` needs the ray extra: checked before any work."""
    if backend is BackendName.ray:
        require_extra("ray", "--backend ray")


@app.command()
@_user_errors
def fit(
    input: Annotated[Path, typer.Argument(help="An image or a video.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("facereenact-out"),
    smooth: SmoothOption = True,
    max_frames: MaxFramesOption = None,
    assets: AssetsOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """Fit the 3D face model: per face and frame, pose, 40 identity + 10 expression coefficients,
    68 landmarks; writes NAME.fit.npz, NAME.fit.json and an overlay (mesh | PNCC)."""
    fitter = _fitter(assets, device)
    with _progress() as progress:
        outputs = fit_file(fitter, input, out, smooth, max_frames, progress)
    _warn(outputs.warnings)
    console.print(f"wrote {outputs.arrays}, {outputs.summary}, {outputs.overlay}", highlight=False, soft_wrap=True)


@app.command()
@_user_errors
def pncc(
    source: Annotated[Path | None, typer.Option("--source", "-s", help="Source portrait (identity). Default: an example portrait.", show_default=False)] = None,
    driving: Annotated[Path | None, typer.Option("--driving", "-d", help="Driving video or image (pose, expression). Default: an example clip.", show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output video (.mp4/.mov/.mkv) or image for a still driving image.")] = Path("pncc.mp4"),
    smooth: SmoothOption = True,
    max_frames: MaxFramesOption = None,
    face_index: Annotated[int, typer.Option(min=0, help="Which source face, largest first.")] = 0,
    data: DataOption = None,
    assets: AssetsOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """Render the identity-matched PNCC (SOURCE identity + DRIVING pose and expression) beside
    each driving frame."""
    resolved = resolve_assets(assets)  # every missing model file named before anything else
    source = source or examples.default_portrait(data, assets)
    driving = driving or examples.default_clip(data, assets)
    fitter = load_fitter(resolved, device)
    with _progress() as progress:
        written = pncc_file(fitter, source, driving, output, smooth, max_frames, face_index, progress)
    _warn(written.warnings)
    console.print(f"wrote {written.output}", highlight=False, soft_wrap=True)


@app.command()
@_user_errors
def animate(
    source: Annotated[Path | None, typer.Option("--source", "-s", help="Source portrait (who), or a source video to re-act frame by frame. Default: an example portrait.", show_default=False)] = None,
    driving: Annotated[Path | None, typer.Option("--driving", "-d", help="Driving video or image (how they move). Default: an example clip.", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output video (.mp4/.mov/.mkv); a name without extension: a folder of lossless PNG frames; an image for a still driving image. [default: animated.mp4]", show_default=False)] = None,
    mode: Annotated[MotionMode, typer.Option(help="relative: the source's own pose plus the driving's change since its first frame; absolute: the driving's head orientation and expression as they are.")] = DEFAULTS.mode,
    expression_only: Annotated[bool, typer.Option("--expression-only", help="Keep the source's head pose; transfer expression only.")] = DEFAULTS.expression_only,
    pose_only: Annotated[bool, typer.Option("--pose-only", help="Keep the source's expression; transfer head pose only.")] = DEFAULTS.pose_only,
    pose_scale: Annotated[float, typer.Option(help=f"Multiplies the head's rotation and movement ({SCALE_RANGE[0]:g}–{SCALE_RANGE[1]:g}; 0 holds the source's pose).")] = DEFAULTS.pose_scale,
    expression_scale: Annotated[float, typer.Option(help=f"Multiplies the expression ({SCALE_RANGE[0]:g}–{SCALE_RANGE[1]:g}; 0 keeps the source's).")] = DEFAULTS.expression_scale,
    regions: Annotated[str, typer.Option(help="The face regions whose expression follows the driver, comma-separated: eyes, gaze, brows, mouth; the others keep the source's. 'mouth' alone: lip-sync.")] = region_list(DEFAULTS.regions),
    crop_size: Annotated[int, typer.Option(help=f"Side of the face crop that is generated ({CROP_SIZES[0]}–{CROP_SIZES[1]}).")] = DEFAULTS.crop_size,
    crop_only: Annotated[bool, typer.Option("--crop-only", help="Output the generated face crop instead of the full source frame.")] = DEFAULTS.crop_only,
    compare: Annotated[bool, typer.Option("--compare", help="Side by side: source | driving | result.")] = DEFAULTS.compare,
    smooth: SmoothOption = DEFAULTS.smooth,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many video frames.", show_default=False)] = DEFAULTS.max_frames,
    face_index: Annotated[str, typer.Option(help="Which faces of the source photo to animate, largest first: an index, several comma-separated, or all (each cropped, warped and pasted on its own, into one output of the photo's size).")] = str(DEFAULTS.face_index),
    driving_mouth: Annotated[bool, typer.Option("--driving-mouth/--no-driving-mouth", help="Where the mouth opens wider than the source shows, fill it with the driving frame's own teeth and tongue (mapped through the 3D mouth); --no-driving-mouth paints a dark cavity instead.")] = DEFAULTS.driving_mouth,
    crf: Annotated[int, typer.Option(help="H.264 quality of a video output: 0 lossless … 51 worst; 18 looks like the input.")] = DEFAULTS.crf,
    max_size: Annotated[int | None, typer.Option(help="Scale the output down so its longer side is at most this many pixels.", show_default=False)] = DEFAULTS.max_size,
    video_motion: Annotated[VideoMotion, typer.Option(help="With a source video: what travels from the driver; expression (the source keeps its own head movement) or expression+pose (the driver's head motion added to the source's). --regions mouth: lip-sync.")] = DEFAULTS.video_motion,
    length: Annotated[LengthPolicy, typer.Option(help="With a source video: shortest stops with the shorter clip; loop and pingpong last as long as the driver, the source starting over or playing back and forth.")] = DEFAULTS.length,
    audio: Annotated[AudioFrom, typer.Option(help="Whose audio the output carries: the driving clip's, the source video's, or none.")] = DEFAULTS.audio,
    method: Annotated[GenerationMethod, typer.Option(help="neural: the trained network refining the warp (the shipped model, or --model); warp: the training-free 3D correspondence warp alone.")] = DEFAULTS.method,
    model: Annotated[Path | None, typer.Option("--model", help="A trained network's checkpoint (.safetensors) for --method neural (default: the shipped model).", show_default=False)] = DEFAULTS.model,
    batch: Annotated[Path | None, typer.Option("--batch", help="A CSV of animations (columns source, driving, optional output and per-row options; see docs/scaling-out.md): run them all, as tasks of --backend.", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option("--out", help="With --batch: the folder the outputs go to.", show_default=False)] = None,
    backend: BackendOption = BackendName.local,
    address: AddressOption = None,
    workers: WorkersOption = None,
    data: DataOption = None,
    assets: AssetsOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """Animate a portrait with a driving video: the source person with the driving person's
    head motion and expression, the driving clip's audio, pasted back into the full photo.
    With --batch, many animations (the options above are each row's defaults)."""
    request = AnimateRequest(
        method=method, model=model, mode=mode, expression_only=expression_only, pose_only=pose_only,
        pose_scale=pose_scale, expression_scale=expression_scale, regions=regions, crop_size=crop_size,  # type: ignore[arg-type]
        crop_only=crop_only, compare=compare, smooth=smooth, max_frames=max_frames, face_index=face_index, driving_mouth=driving_mouth,
        crf=crf, max_size=max_size, video_motion=video_motion, length=length, audio=audio,
    )  # fmt: skip
    if batch is not None:
        if source is not None or driving is not None or output is not None:
            raise InputError("--batch takes sources, drivings and output names from its CSV: leave out --source, --driving and --output")
        if out is None:
            raise InputError("--batch needs --out DIR, the folder for the outputs")
        _require_backend(backend)
        _animate_batch(batch, out, request, make_backend(backend, address, workers), assets, device)
        return
    if out is not None or backend is not BackendName.local or address is not None or workers is not None:
        raise InputError("--out, --backend, --address and --workers are for --batch runs")
    with _progress() as progress:
        report = run_animation(request, source, driving, output, assets, device, data, progress)
    _warn(report.warnings)
    for note in report.notes("choose with --face-index"):
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"wrote {report.output} ({report.frames} frame{'s' if report.frames != 1 else ''})", highlight=False, soft_wrap=True)


@app.command()
@_user_errors
def live(
    source: Annotated[Path | None, typer.Option("--source", "-s", help="Source portrait (who). Default: an example portrait.", show_default=False)] = None,
    camera: Annotated[int | None, typer.Option("--camera", min=0, help="The camera to drive with, by index [default: 0, when no --driving].", show_default=False)] = None,
    driving: Annotated[Path | None, typer.Option("--driving", "-d", help="A video that stands in for the camera.", show_default=False)] = None,
    realtime: Annotated[bool, typer.Option("--realtime", help="With --driving: play the video at its own frame rate, by the clock, dropping the frames the engine is too slow for (as a camera would); otherwise every frame is made, as fast as it goes.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Also write the result to this video (.mp4/.mov/.mkv), in real time at the input's frame rate.", show_default=False)] = None,
    seconds: Annotated[float | None, typer.Option(min=0.1, help="Stop after this many seconds (default: at the end of --driving, or q / Ctrl+C).", show_default=False)] = None,
    preview: Annotated[bool | None, typer.Option("--preview/--no-preview", help="Show the result in a window (default: where there is a display).", show_default=False)] = None,
    mode: Annotated[MotionMode, typer.Option(help="relative: the source's own pose plus the change since the first frame with a face (r in the window re-centres); absolute: the driver's head orientation and expression as they are.")] = DEFAULTS.mode,
    crop_size: Annotated[int, typer.Option(help=f"Side of the face crop that is generated ({CROP_SIZES[0]}–{CROP_SIZES[1]}).")] = DEFAULTS.crop_size,
    crop_only: Annotated[bool, typer.Option("--crop-only", help="Show the generated face crop instead of the full source photo.")] = False,
    smooth: Annotated[bool, typer.Option("--smooth/--no-smooth", help="Causal smoothing of the driving face (One Euro filter, no look-ahead).")] = True,
    face_index: Annotated[int, typer.Option(help="Which source face to animate, largest first.")] = DEFAULTS.reenact_options().face_index,
    max_size: Annotated[int, typer.Option(min=16, help="Scale the output down so its longer side is at most this many pixels.")] = LiveOptions().max_size or 512,
    method: Annotated[GenerationMethod, typer.Option(help="warp: the training-free 3D correspondence warp (real time on a CPU); neural: the trained network refining it (the shipped model, or --model).")] = GenerationMethod.warp,
    model: Annotated[Path | None, typer.Option("--model", help="A trained network's checkpoint (.safetensors) for --method neural.", show_default=False)] = None,
    data: DataOption = None,
    assets: AssetsOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """Drive a portrait live with a camera (or a video played as one): each frame is tracked,
    smoothed without look-ahead and animated as it comes; frames that arrive while one is being
    made are dropped. Shows a window where there is a display; prints frames/s and latency."""
    from facereenact.app import live_run
    from facereenact.app.cores import one_torch_thread

    request = AnimateRequest(method=method, model=model, mode=mode, crop_size=crop_size, crop_only=crop_only, smooth=smooth, face_index=face_index, max_size=max_size)
    if camera is not None and driving is not None:
        raise InputError("--camera and --driving exclude each other: drive with a camera or with a video")
    if realtime and driving is None:
        raise InputError("--realtime plays a --driving video by the clock: name one")
    show = live_run.has_display() if preview is None else preview
    if preview and not live_run.has_display():
        raise InputError("--preview: there is no display to show a window on (DISPLAY is not set, or OpenCV has no GUI); write the result with --output FILE")
    if not show and output is None:
        raise InputError("there is no display to show the result on: write it with --output FILE (a .mp4, .mov or .mkv)")
    # The tracking and the generating threads each take a core (see app.live.drive).
    with one_torch_thread():
        stats = live_run.live_file(
            request, source, camera, driving, realtime, output, show, seconds, assets, device, data,
            LiveOptions(smooth=smooth, crop_only=crop_only, max_size=max_size),
        )  # fmt: skip
    console.print(f"live: {stats.line()}", highlight=False, soft_wrap=True)
    if output is not None:
        console.print(f"wrote {output}", highlight=False, soft_wrap=True)


def _animate_batch(csv_path: Path, out: Path, defaults: AnimateRequest, backend: Backend, assets: Path | None, device: str) -> None:
    """``animate --batch``: every row of the CSV as a task; exit code 1 when any row failed."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder")
    checkpoint = defaults.checkpoint()
    if checkpoint is not None:
        check_checkpoint(checkpoint)
    rows = read_batch(csv_path, out, defaults)
    check_checkpoints(rows)
    resolved = resolve_assets(assets)
    with _RunDisplay("animations") as display:
        summary = animate_batch(rows, str(resolved.root.absolute()), device, backend, display.advance, display.log, display.start)
    _finish(summary, "animation", f"outputs in {out}")


@app.command()
@_user_errors
def prepare(
    videos_dir: Annotated[Path, typer.Argument(help="Folder of talking-head videos (nested id/video/clip.mp4 folders accepted).", show_default=False)],
    out_dir: Annotated[Path, typer.Argument(help="Output folder: clips/*.npz and manifest.json.", show_default=False)],
    size: Annotated[int, typer.Option(min=32, max=1024, help="Side of the stored face crops.")] = 256,
    workers: WorkersOption = None,
    max_frames: MaxFramesOption = None,
    identities: Annotated[Path | None, typer.Option(help="Identities file: one line per person, the clip names that show them (default: VIDEOS_DIR/identities.txt if present).", show_default=False)] = None,
    backend: BackendOption = BackendName.local,
    address: AddressOption = None,
    assets: AssetsOption = None,
) -> None:
    """Prepare training data: stable face crops, per-frame 3DMM fits and landmarks per clip, and a
    manifest (identity, frame count, lost frames). Prepared clips are skipped on a re-run; the
    exit code is 1 when any clip failed (the others are still prepared)."""
    _require_backend(backend)
    from facereenact.train.prepare import prepare_dataset

    resolved = resolve_assets(assets)
    with _RunDisplay("clips") as display:
        report = prepare_dataset(
            videos_dir, out_dir, resolved, size, max_frames=max_frames, identities=identities,
            backend=make_backend(backend, address, workers), on_result=display.advance, log=display.log, on_start=display.start,
        )  # fmt: skip
    _finish(report.summary, "clip", f"wrote {report.manifest}")


@app.command()
@_user_errors
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="Training configuration (.yaml or .toml): a preset plus overrides.", show_default=False)],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in run.out.")] = False,
) -> None:
    """Train the network on a prepared dataset (also under torchrun --nproc_per_node=N)."""
    require_extra("train", "train")  # it logs to TensorBoard
    from facereenact.train.config import load_config
    from facereenact.train.loop import train as run_training

    chosen = load_config(config)
    if chosen.run.assets is None:  # the commands' default model files
        chosen = replace(chosen, run=replace(chosen.run, assets=assets_dir()))
    summary = run_training(chosen, resume, log=lambda line: console.print(line, highlight=False, soft_wrap=True))
    if summary.validation:
        first, last = summary.validation[0], summary.validation[-1]
        console.print(f"validation L1 {first['l1']:.4f} (step {first['step']}) → {last['l1']:.4f} (step {last['step']}); SSIM {first['ssim']:.4f} → {last['ssim']:.4f}")


@app.command()
@_user_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A trained network's checkpoint (.safetensors).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The ONNX file to write.")] = Path("facereenact.onnx"),
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare ONNX Runtime's output with PyTorch's (needs onnxruntime).")] = True,
) -> None:
    """Export the generator to ONNX (inputs: source image, source PNCC, driving PNCC[, warp image,
    hole mask], each (B, C, R, R) in [0, 1]; output: the image)."""
    from facereenact.app.network import export_file

    difference = export_file(checkpoint, output, check)
    if difference is not None:
        console.print(f"wrote {output}; ONNX Runtime matches PyTorch within {difference:.1e}")
    else:
        console.print(f"wrote {output}")


@app.command()
@_user_errors
def release(
    checkpoint: Annotated[Path, typer.Argument(help="A training checkpoint (.safetensors).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The release file to write (.safetensors).")] = Path("src/facereenact/checkpoints/model.safetensors"),
    note: Annotated[list[str] | None, typer.Option("--note", help="Provenance recorded in the file, KEY=VALUE (data, split, hardware…); repeatable.", show_default=False)] = None,
) -> None:
    """Cut a training checkpoint down to a release: the EMA generator in float16 with its
    architecture and provenance; prints the SHA-256 that facereenact.model.release records."""
    from facereenact.app.network import release_file

    provenance = {}
    for item in note or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--note {item!r}: write KEY=VALUE")
        provenance[key] = value
    digest = release_file(checkpoint, output, provenance)
    console.print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB), SHA-256 {digest}")


@app.command()
@_user_errors
def bench(
    clip: Annotated[Path | None, typer.Option(help="A video to time (default: an example 512² clip).", show_default=False)] = None,
    source: Annotated[Path | None, typer.Option(help="A portrait to animate (default: an example portrait).", show_default=False)] = None,
    frames: Annotated[int, typer.Option(min=8, help="Frames to time.")] = 200,
    data: DataOption = None,
    assets: AssetsOption = None,
) -> None:
    """Time the 3D front end, the animate pipeline and live driving on this machine: frames per
    second of each stage, with a baseline measured in the same run."""
    from facereenact.app import bench as bench_module

    resolved = resolve_assets(assets)
    clip = clip or examples.default_clip(data, assets, footage=True)
    bench_module.print_report(bench_module.run(resolved, clip, frames), console)
    source = source or examples.default_portrait(data, assets)
    bench_module.print_report(bench_module.run_animate(resolved, source, clip, frames), console)
    bench_module.print_report(bench_module.run_live(resolved, source, clip, frames), console)


assets_app = typer.Typer(
    no_args_is_help=True,
    help="The model files and example media: list them, fetch the missing ones, verify the copies.",
)
app.add_typer(assets_app, name="assets")

AssetsDirOption = Annotated[
    Path | None,
    typer.Option("--dir", help=f"The assets folder (default: ${ASSETS_ENV}, else the per-user folder; see 'facereenact assets list').", show_default=False),
]


def _size(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"


@assets_app.command("list")
@_user_errors
def assets_list() -> None:
    """Every file the project can use: what needs it, its size, SHA-256, licence and origin."""
    for entry in asset_files.CATALOG:
        print(f"{entry.name}  [{entry.kind.value}]  {_size(entry.size)}")
        print(f"    used by:  {entry.used_by}")
        print(f"    licence:  {entry.licence}")
        print(f"    sha256:   {entry.sha256 or 'not known (the file is not checked)'}")
        print(f"    from:     {entry.url}")
    print(f"\nfetched into: {asset_files.default_destination()} (--dir or ${ASSETS_ENV} to change); the commands look there, then in a checkout's ../shared")


@assets_app.command("fetch")
@_user_errors
def assets_fetch(
    folder: AssetsDirOption = None,
    origin: Annotated[
        str | None,
        typer.Option("--from", help="A mirror to fetch from instead of the public origins: a local folder laid out as an assets folder (a checkout's ../shared/assets too), or a base URL.", show_default=False),
    ] = None,
    optional: Annotated[bool, typer.Option("--optional", help="Also fetch the optional files (the dense 3D face model; not checked: no SHA-256 is known).")] = False,
) -> None:
    """Download the missing model files and example media from their public origins (or --from a
    mirror), each checked against its SHA-256 before it is renamed into place; an interrupted
    download resumes on the next run. Files already present and correct are kept."""
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console, transient=True) as progress:
        task = None

        def on_file(entry: asset_files.AssetFile, source: str) -> None:
            nonlocal task
            if task is not None:
                progress.remove_task(task)
            console.print(f"fetching {entry.name} from {source}", markup=False, highlight=False, soft_wrap=True)
            task = progress.add_task(entry.name, total=entry.size)

        def on_progress(done: int, total: int | None) -> None:
            if task is not None:
                progress.update(task, completed=done, total=total)

        report = asset_files.fetch(folder, origin, optional, on_file, on_progress)
    if report.found_in is not None:
        console.print(f"all {len(report.present)} files are present and verified where the commands look ({report.found_in}); nothing to fetch", markup=False, highlight=False, soft_wrap=True)
        return
    console.print(f"fetched {len(report.fetched)} file(s) into {report.destination}; {len(report.present)} were already there and verified", markup=False, highlight=False, soft_wrap=True)


@assets_app.command("verify")
@_user_errors
def assets_verify(folder: AssetsDirOption = None) -> None:
    """Check every file (where the commands look, or in --dir) against its size and SHA-256; exit
    code 1 when one is missing, truncated or altered."""
    checks = asset_files.survey(folder)
    for check in checks:
        detail = f" ({check.detail})" if check.detail else ""
        print(f"{check.state.value:<28} {check.entry.name}{detail}  {check.path}")
    bad = asset_files.problems(checks)
    if bad:
        where = folder if folder is not None else asset_files.default_destination()
        names = "; ".join(asset_files.describe(check) for check in bad)
        raise AssetError(f"{len(bad)} of {len(checks)} files are unusable: {names}; fetch them again with: {asset_files.fetch_command(where)}")


#: Inside an evaluation's --out: each finished clip's outcomes, until the report is written; a
#: re-run of a stopped evaluation with the same settings takes them instead of running the clip.
PARTIAL = ".partial"


@app.command()
@_user_errors
def evaluate(
    data: Annotated[
        Path | None,
        typer.Option("--data", envvar=examples.ENV_VAR, help="Talking-head clips (in DIR/clips or DIR) and optional portraits (DIR/portraits) (default: ../shared/data).", show_default=False),
    ] = None,
    methods: Annotated[str, typer.Option(help="Comma-separated methods: source, warp, neural:CHECKPOINT.safetensors.")] = "source,warp",
    out: Annotated[Path, typer.Option("--out", "-o", help="Report folder: metrics.json, report.html, strips/.")] = Path("evaluation"),
    seed: Annotated[int, typer.Option(help="Seed of the cross-identity pairing and the bootstrap intervals.")] = 0,
    every: Annotated[int, typer.Option(min=1, help="Self-reenactment: drive with every k-th frame after the source.")] = Sampling.every,
    max_frames: Annotated[int, typer.Option(min=1, help="Driving frames per clip, at most.")] = Sampling.max_frames,
    sources: Annotated[int, typer.Option(min=1, help="Self-reenactment: source frames per clip, evenly spaced (the first is frame 0).")] = Sampling.sources,
    window: Annotated[int, typer.Option(min=0, help="Consecutive frames after the source for temporal stability (0: off).")] = Sampling.window,
    cross_frames: Annotated[int, typer.Option(min=1, help="Cross-identity: driving frames per pair.")] = Sampling.cross_frames,
    cross_sources: Annotated[int, typer.Option(min=0, help="Cross-identity: sources each driving clip drives (0: every source).")] = Sampling.cross_sources,
    video_pairs: Annotated[int, typer.Option(min=0, help="Video-to-video: source clips, each driven by a clip of another person (0: every clip).")] = Sampling.video_pairs,
    video_frames: Annotated[int, typer.Option(min=3, help="Video-to-video: consecutive frames of each source clip, from its first.")] = Sampling.video_frames,
    identities: Annotated[Path | None, typer.Option(help="Identities file: one line per person, the clip names that show them (default: DATA/identities.txt if present).", show_default=False)] = None,
    clips: Annotated[str | None, typer.Option(help="Only these clips (comma-separated names without extension).", show_default=False)] = None,
    protocols: Annotated[str, typer.Option(help="self, cross, native (self-reenactment pasted back at each clip's own resolution) and video (video-to-video), comma-separated.")] = "self,cross,native",
    lpips_alexnet: Annotated[Path | None, typer.Option(help="torchvision's AlexNet ImageNet weights (alexnet-owt-7be5be79.pth), for LPIPS.", show_default=False)] = None,
    lpips_linear: Annotated[Path | None, typer.Option(help="LPIPS v0.1 linear layers (lpips/weights/v0.1/alex.pth), for LPIPS.", show_default=False)] = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap resamples for the 95% intervals.")] = 1000,
    threads: Annotated[int, typer.Option(min=1, help="CPUs per clip task (torch threads; with 2 or more, dlib's descriptor runs beside on one of them).")] = 1,
    backend: BackendOption = BackendName.local,
    address: AddressOption = None,
    workers: WorkersOption = None,
    assets: AssetsOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """Measure reenactment methods on a folder of clips: self-reenactment (fidelity, identity,
    pose, expression, keypoints, temporal stability), cross-identity (identity, pose,
    expression) and, with --protocols video, video-to-video; writes metrics.json and report.html and prints the aggregate table. A clip
    without a usable face is recorded as failed in the report; the exit code is 1 when a clip's
    task itself failed (e.g. its worker kept dying) or when no clip could be measured at all."""
    require_extra("eval", "evaluate")
    _require_backend(backend)
    chosen = {"self": SELF, "cross": CROSS, "native": NATIVE, "video": VIDEO}
    names = [p.strip() for p in protocols.split(",") if p.strip()]
    unknown = [n for n in names if n not in chosen]
    if unknown or not names:
        raise InputError(f"unknown protocol {unknown[0] if unknown else protocols!r}: choose from self, cross, native and video")
    if (lpips_alexnet is None) != (lpips_linear is None):
        raise InputError("LPIPS needs both --lpips-alexnet and --lpips-linear")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file; give a folder")
    found = dataset.discover(examples.data_dir(data), [c.strip() for c in clips.split(",") if c.strip()] if clips else None, identities)
    sampling = Sampling(
        every=every, max_frames=max_frames, sources=sources, window=window, cross_frames=cross_frames, cross_sources=cross_sources,
        video_pairs=video_pairs, video_frames=video_frames,
    )  # fmt: skip
    lpips = (lpips_alexnet, lpips_linear) if lpips_alexnet and lpips_linear else None
    resolved = resolve_assets(assets)
    protocols_chosen = tuple(chosen[n] for n in dict.fromkeys(names))
    settings = suite.EvaluationSettings(sampling=sampling, protocols=protocols_chosen, seed=seed, bootstrap=bootstrap, threads=threads)
    chosen_backend = make_backend(backend, address, workers)
    with _RunDisplay("clips") as display:
        evaluation = suite.evaluate(found, methods, resolved, settings, lpips, device, chosen_backend, display.advance, display.log, display.start, out / PARTIAL)
    metrics_path, report_path = report.write_report(evaluation.result, evaluation.strips, out)
    shutil.rmtree(out / PARTIAL, ignore_errors=True)  # the report holds it all now
    report.print_tables(evaluation.result, Console())
    measured = [evaluation.result[key]["counts"]["ok"] for key in (SELF, CROSS, NATIVE, VIDEO) if key in evaluation.result]
    if not any(measured):
        raise InputError(f"no clip could be measured (every one failed; their reasons are in {metrics_path})")
    _finish(evaluation.summary, "clip", f"wrote {metrics_path} and {report_path} ({evaluation.result['seconds']:.0f} s)")


@app.command()
@_user_errors
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on. The default accepts this machine only; 0.0.0.0 opens it to the network (no login!).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 7860,
    max_jobs: Annotated[int, typer.Option(min=1, help="Animation jobs run at once; the rest wait in line with their position shown.")] = 2,
    max_waiting: Annotated[int, typer.Option(min=0, help="Jobs that may wait in line; more are refused with a 'busy' message.")] = 8,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest upload (portrait or clip), in MB.")] = 50.0,
    max_seconds: Annotated[float, typer.Option(min=0.1, help="Longest driving clip, in seconds.")] = 60.0,
    max_frames: Annotated[int | None, typer.Option(min=1, help="Animate at most this many frames of a clip (default: all).", show_default=False)] = None,
    keep_minutes: Annotated[float, typer.Option(min=0.1, help="Results and uploads are deleted after this long unused.")] = 30.0,
    model: Annotated[Path | None, typer.Option("--model", help="A trained network's checkpoint for the 'neural' method (default: the shipped model).", show_default=False)] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Torch threads (default: the CPU cores shared among --max-jobs).", show_default=False)] = None,
    max_live: Annotated[int, typer.Option(min=0, help="Live sessions (the Live tab's camera driving) at once; one more is refused. 0 turns the Live tab off.")] = 1,
    data: DataOption = None,
    assets: AssetsOption = None,
    device: DeviceOption = "cpu",
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="Another name the page is reached by (a Host header to accept; repeatable). '*' accepts any name.", show_default=False)] = None,
) -> None:
    """Start the local web page: upload a portrait and a driving clip (or pick an example motion),
    watch the job's progress, play and download the result."""
    require_extra("web", "serve")
    import torch

    from facereenact.web.app import create_app
    from facereenact.web.guard import LOOPBACK_NAMES, allowed_hosts
    from facereenact.web.server import listening_socket
    from facereenact.web.server import serve as run_server
    from facereenact.web.settings import ServerSettings

    sock = listening_socket(host, port)  # before the slow loading: a taken port is said at once
    if model is None:
        try:
            model = resolve_checkpoint(None)
        except FaceReenactError as error:
            console.print(f"[yellow]note:[/] offering the warp only: {error}", highlight=False, soft_wrap=True)
    settings = ServerSettings(
        max_jobs=max_jobs, max_waiting=max_waiting, max_upload_mb=max_upload_mb, max_seconds=max_seconds, max_frames=max_frames,
        keep_minutes=keep_minutes, data=data, model=model, assets=assets, device=device, max_live=max_live,
    )  # fmt: skip
    # Jobs run in threads of this process: share the cores among them rather than oversubscribe.
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // max_jobs))
    hosts = allowed_hosts(host, allow_host or ())
    application = create_app(settings, allowed_hosts=hosts)

    def announce() -> None:
        if host not in LOOPBACK_NAMES:
            console.print(f"[yellow]note:[/] listening on {host}: anyone who can reach this machine can use the page (there is no login)", highlight=False)
        if hosts is None:
            console.print("[yellow]note:[/] any Host name is accepted (--allow-host '*'): other web sites may reach the page through DNS rebinding", highlight=False)
        shown = f"[{host}]" if ":" in host else host
        console.print(f"facereenact: open http://{shown}:{port}/ (Ctrl+C stops it)", highlight=False, markup=False)

    run_server(application, sock, announce)


if __name__ == "__main__":
    app()
