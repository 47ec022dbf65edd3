"""``facereenact animate --batch JOBS.csv --out DIR``: many animations as tasks of the execution
layer (local worker processes or a Ray cluster).

The CSV has a header row and one row per animation: ``source`` and ``driving`` (required), and
optionally ``output`` (a name under ``DIR``; default ``SOURCE__DRIVING.mp4``, ``.png`` for a still
driving image) and any of the per-animation options of ``animate``: ``mode``,
``expression_only``, ``pose_only``, ``crop_size``, ``crop_only``, ``compare``, ``smooth``,
``max_frames``, ``face_index``, ``driving_mouth``, ``model``. An empty cell takes the value given on the command
line. Relative paths are read from the CSV's folder, so a CSV and its media move together.

Every output is written under a temporary name and renamed when complete; an output that
already exists is skipped, so running the same batch again finishes what a stopped run left.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from facereenact.correspond.motion import MotionMode, MotionOptions
from facereenact.errors import InputError, OutputError
from facereenact.execute import Backend, Resources, RunSummary, Task, TaskOutput, TaskResult, run_all, worker_cache
from facereenact.io.atomic import remove_partial
from facereenact.jobs import animate_file, worker_fitter
from facereenact.pipeline import ReenactOptions

REQUIRED = ("source", "driving")
#: Driving files taken for still images when naming outputs (a still driving image gives a still).
STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class AnimateSettings:
    """The per-animation options; the command line gives the defaults, a CSV cell overrides."""

    mode: MotionMode = MotionMode.relative
    expression_only: bool = False
    pose_only: bool = False
    crop_size: int = 256
    crop_only: bool = False
    compare: bool = False
    smooth: bool = True
    max_frames: int | None = None
    face_index: int = 0
    driving_mouth: bool = True
    model: Path | None = None

    def reenact_options(self) -> ReenactOptions:
        motion = MotionOptions(mode=self.mode, transfer_pose=not self.expression_only, transfer_expression=not self.pose_only)
        return ReenactOptions(crop_size=self.crop_size, motion=motion, face_index=self.face_index, driving_mouth=self.driving_mouth)


OPTION_COLUMNS = tuple(f.name for f in fields(AnimateSettings))


@dataclass(frozen=True)
class AnimateJob:
    """One row: what to animate, where the result goes, and how."""

    name: str  # the output's path under the batch's folder, unique in the batch
    source: Path
    driving: Path
    output: Path
    settings: AnimateSettings


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "y"}:
        return True
    if value in {"0", "false", "no", "n"}:
        return False
    raise ValueError(f"{text!r} is not true or false")


def _integer(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError(f"{value} is outside {low}–{high if high is not None else '∞'}")
        return value

    return parse


def _path_in(base: Path) -> Callable[[str], Path]:
    return lambda text: (base / Path(text).expanduser()) if not Path(text).expanduser().is_absolute() else Path(text).expanduser()


def _parsers(base: Path) -> dict[str, Callable[[str], Any]]:
    return {
        "mode": MotionMode,
        "expression_only": _boolean,
        "pose_only": _boolean,
        "crop_size": _integer(64, 1024),
        "crop_only": _boolean,
        "compare": _boolean,
        "smooth": _boolean,
        "max_frames": _integer(1),
        "face_index": _integer(0),
        "driving_mouth": _boolean,
        "model": _path_in(base),
    }


def read_batch(csv_path: Path, out_dir: Path, defaults: AnimateSettings = AnimateSettings()) -> list[AnimateJob]:
    """The jobs of a batch CSV, checked whole before anything runs: unknown columns, bad values
    and two rows writing one output are errors naming the row."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            header = [name.strip() for name in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except OSError as error:
        raise InputError(f"cannot read batch file {csv_path}: {error.strerror or error}") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise InputError(f"batch file {csv_path} is not a readable CSV ({error})") from None
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(f"batch file {csv_path} needs a header row with the columns source and driving (missing: {', '.join(missing)})")
    unknown = [name for name in header if name not in (*REQUIRED, "output", *OPTION_COLUMNS)]
    if unknown:
        raise InputError(f"batch file {csv_path}: unknown column {unknown[0]!r} (columns: source, driving, output, {', '.join(OPTION_COLUMNS)})")
    if not rows:
        raise InputError(f"batch file {csv_path} has no rows")
    base = csv_path.parent.absolute()  # workers may run in another folder, or on another machine
    out_dir = out_dir.absolute()
    parsers = _parsers(base)
    jobs: list[AnimateJob] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path.name} line {number}"
        if not row.get("source") or not row.get("driving"):
            raise InputError(f"{where}: source and driving are required")
        overrides: dict[str, Any] = {}
        for column in OPTION_COLUMNS:
            if row.get(column):
                try:
                    overrides[column] = parsers[column](row[column])
                except ValueError as error:
                    raise InputError(f"{where}: {column} {error}") from None
        settings = replace(defaults, **overrides)
        if settings.expression_only and settings.pose_only:
            raise InputError(f"{where}: expression_only and pose_only exclude each other")
        source, driving = _path_in(base)(row["source"]), _path_in(base)(row["driving"])
        name = row.get("output") or f"{source.stem}__{driving.stem}{'.png' if driving.suffix.lower() in STILL_SUFFIXES else '.mp4'}"
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InputError(f"{where}: output {name!r} must be a name inside --out")
        if name in seen:
            raise InputError(f"{where}: output {name} is also written by line {seen[name]}")
        seen[name] = number
        jobs.append(AnimateJob(name, source, driving, out_dir / name, settings))
    return jobs


def animate_task(job: AnimateJob, assets: str, device: str) -> TaskOutput:
    """One animation on whichever worker runs it. The worker's fitter and each checkpoint's
    network are loaded once per worker; each job's Reenactor binds the stage to its own source."""
    settings = job.settings
    stage = None
    if settings.model is not None:
        from facereenact.model.inference import load_stage

        model = settings.model
        stage = worker_cache(("stage", str(model), device), lambda: load_stage(model, device))
    report = animate_file(
        worker_fitter(assets, device), job.source, job.driving, job.output, settings.reenact_options(),
        settings.smooth, settings.max_frames, settings.crop_only, settings.compare, stage=stage,
    )  # fmt: skip
    return TaskOutput(frames=report.frames, notes=tuple(report.notes))


def animate_batch(
    jobs: list[AnimateJob],
    assets: str,
    device: str,
    backend: Backend,
    on_result: Callable[[TaskResult], None] | None = None,
    log: Callable[[str], None] = print,
    on_start: Callable[[int], None] | None = None,
) -> RunSummary:
    """Run the jobs whose output does not exist yet; the summary counts those as skipped."""
    summary = RunSummary()
    todo = []
    for job in jobs:
        if job.output.exists():
            summary.skipped.append(job.name)
        else:
            todo.append(job)
    for job in todo:
        try:
            job.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create {job.output.parent}: {error.strerror or error}") from None
    # The whole animation runs on the device: a GPU task when it is one.
    resources = Resources(cpus=1, gpus=1.0 if device.startswith("cuda") else 0.0)
    tasks = [Task(job.name, animate_task, (job, assets, device), resources) for job in todo]
    if on_start is not None:
        on_start(len(tasks))
    try:
        run_all(backend, tasks, summary, on_result, log=log)
    finally:  # also when interrupted (a Ray worker cancelled late may leave one; the next run sweeps it)
        for job in todo:
            remove_partial(job.output)
    return summary
