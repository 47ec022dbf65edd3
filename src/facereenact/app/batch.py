"""``facereenact animate --batch JOBS.csv --out DIR``: many animations as tasks of the execution
layer (local worker processes or a Ray cluster).

The CSV has a header row and one row per animation: ``source`` and ``driving`` (required), and
optionally ``output`` (a name under ``DIR``; default ``SOURCE__DRIVING.mp4``, ``.png`` for a still
driving image) and any of the per-animation options of ``animate``, named as the fields of
:class:`~facereenact.pipeline.request.AnimateRequest` (``method``, ``model``, ``mode``,
``expression_only``, ``crop_size``, ``max_frames``, ``driving_mouth`` …). An empty cell takes the
value given on the command line. Relative paths are read from the CSV's folder, so a CSV and its media move together.

Every output is written under a temporary name and renamed when complete; an output that
already exists is skipped, so running the same batch again finishes what a stopped run left.
"""

from __future__ import annotations

import csv
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from facereenact.app.animate import animate_file, check_checkpoint
from facereenact.errors import FaceReenactError, InputError, OptionError, OutputError
from facereenact.execute import Backend, Resources, RunSummary, Task, TaskOutput, TaskResult, run_all
from facereenact.io.animation import animation_frame_count
from facereenact.io.atomic import remove_partial
from facereenact.io.image import is_image_file
from facereenact.pipeline.cache import worker_fitter
from facereenact.pipeline.request import OPTION_NAMES, AnimateRequest

REQUIRED = ("source", "driving")
#: Where the CSV reader puts the cells of a row beyond the header's columns.
_EXTRA = "\x00extra cells"
#: Driving files taken for still images when naming outputs (a still driving image gives a
#: still), where the file cannot be read to tell.
STILL_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class BatchRow:
    """One row: what to animate, where the result goes, and how."""

    name: str  # the output's path under the batch's folder, unique in the batch
    source: Path
    driving: Path
    output: Path
    request: AnimateRequest


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in {"1", "true", "yes", "y"}:
        return True
    if value in {"0", "false", "no", "n"}:
        return False
    raise ValueError(f"{text!r} is not true or false")


def _path_in(base: Path) -> Callable[[str], Path]:
    return lambda text: (base / Path(text).expanduser()) if not Path(text).expanduser().is_absolute() else Path(text).expanduser()


def _parsers(base: Path) -> dict[str, Callable[[str], Any]]:
    """How a cell is read, by the type of the request's field (bounds are the request's)."""
    parsers: dict[str, Callable[[str], Any]] = {}
    for option in fields(AnimateRequest):
        kind = str(option.type)
        if option.name == "model":
            parsers[option.name] = _path_in(base)
        elif kind == "bool":
            parsers[option.name] = _boolean
        elif kind.startswith("int"):
            parsers[option.name] = int
        elif kind == "float":
            parsers[option.name] = float
        else:
            parsers[option.name] = str
    return parsers


def read_batch(csv_path: Path, out_dir: Path, defaults: AnimateRequest | None = None) -> list[BatchRow]:
    """The rows of a batch CSV, checked whole before anything runs: unknown columns, bad values
    and two rows writing one output are errors naming the row."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file, restkey=_EXTRA)
            header = [name.strip() for name in reader.fieldnames or []]
            rows = []
            for row in reader:
                if _EXTRA in row:
                    raise InputError(f"{csv_path.name} line {reader.line_num}: {len(header) + len(row[_EXTRA])} cells, but the header names {len(header)} columns")
                rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
    except OSError as error:
        raise InputError(f"cannot read batch file {csv_path}: {error.strerror or error}") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise InputError(f"batch file {csv_path} is not a readable CSV ({error})") from None
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise InputError(f"batch file {csv_path} needs a header row with the columns source and driving (missing: {', '.join(missing)})")
    unknown = [name for name in header if name not in (*REQUIRED, "output", *OPTION_NAMES)]
    if unknown:
        raise InputError(f"batch file {csv_path}: unknown column {unknown[0]!r} (columns: source, driving, output, {', '.join(OPTION_NAMES)})")
    if not rows:
        raise InputError(f"batch file {csv_path} has no rows")
    defaults = defaults or AnimateRequest()
    base = csv_path.parent.absolute()  # workers may run in another folder, or on another machine
    out_dir = out_dir.absolute()
    parsers = _parsers(base)
    parsed: list[BatchRow] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{csv_path.name} line {number}"
        if not row.get("source") or not row.get("driving"):
            raise InputError(f"{where}: source and driving are required")
        for column in ("source", "driving", "model"):
            if "\x00" in row.get(column, ""):
                raise InputError(f"{where}: {column} holds a NUL character, which no file name can")
        overrides: dict[str, Any] = {}
        for column in OPTION_NAMES:
            if row.get(column):
                try:
                    overrides[column] = parsers[column](row[column])
                except ValueError as error:
                    raise InputError(f"{where}: {column} {error}") from None
        try:
            request = replace(defaults, **overrides)
        except OptionError as error:
            raise InputError(f"{where}: {error.worded(str)}") from None
        source, driving = _path_in(base)(row["source"]), _path_in(base)(row["driving"])
        name = row.get("output") or f"{source.stem}__{driving.stem}{'.png' if _is_still(driving) else '.mp4'}"
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InputError(f"{where}: output {name!r} must be a name inside --out")
        if any(unicodedata.category(character) == "Cc" for character in name):
            raise InputError(f"{where}: output {name!r} holds a control character")
        # One file however spelled: `./a.mp4` is `a.mp4`, and `A.mp4` is it on case-insensitive disks.
        key = os.path.normpath(name).casefold()
        if key in seen:
            raise InputError(f"{where}: output {name} is also written by line {seen[key]}")
        seen[key] = number
        parsed.append(BatchRow(name, source, driving, out_dir / name, request))
    return parsed


def _is_still(driving: Path) -> bool:
    """Whether a driving file gives a still result: a one-frame image, judged by its content
    where it can be read here (an animated GIF, PNG or WebP moves), else by its name."""
    try:
        if driving.is_file() and is_image_file(driving):
            return animation_frame_count(driving) == 1
    except (OSError, ValueError):
        pass
    return driving.suffix.lower() in STILL_SUFFIXES


def check_checkpoints(rows: list[BatchRow]) -> None:
    """Check every network the rows name (each once) before any row runs: a missing, foreign or
    impossible checkpoint is refused naming the first row's output that asks for it."""
    checked: set[Path] = set()
    for row in rows:
        checkpoint = row.request.checkpoint() if row.request.model is not None else None
        if checkpoint is None or checkpoint in checked:
            continue
        try:
            check_checkpoint(checkpoint)
        except FaceReenactError as error:
            raise InputError(f"the row writing {row.name}: {error}") from None
        checked.add(checkpoint)


def animate_task(row: BatchRow, assets: str, device: str) -> TaskOutput:
    """One animation on whichever worker runs it. The worker's fitter and each checkpoint's
    network are loaded once per worker; each row's Reenactor binds the network to its source."""
    report = animate_file(worker_fitter(assets, device), row.request, row.source, row.driving, row.output)
    return TaskOutput(frames=report.frames, notes=(*report.warnings, *report.notes("choose another with the face_index column")))


def animate_batch(
    rows: list[BatchRow],
    assets: str,
    device: str,
    backend: Backend,
    on_result: Callable[[TaskResult], None] | None = None,
    log: Callable[[str], None] = print,
    on_start: Callable[[int], None] | None = None,
) -> RunSummary:
    """Run the rows whose output does not exist yet; the summary counts those as skipped."""
    summary = RunSummary()
    todo = []
    for row in rows:
        if row.output.exists():
            summary.skipped.append(row.name)
        else:
            todo.append(row)
    for row in todo:
        try:
            row.output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(f"cannot create {row.output.parent}: {error.strerror or error}") from None
    # The whole animation runs on the device: a GPU task when it is one.
    resources = Resources(cpus=1, gpus=1.0 if device.startswith("cuda") else 0.0)
    tasks = [Task(row.name, animate_task, (row, assets, device), resources) for row in todo]
    if on_start is not None:
        on_start(len(tasks))
    try:
        run_all(backend, tasks, summary, on_result, log=log)
    finally:  # also when interrupted (a Ray worker cancelled late may leave one; the next run sweeps it)
        for row in todo:
            remove_partial(row.output)
    return summary
