"""One progress bar for a whole run, whatever the backend: tasks done / total, frames per
second over the run so far, and the time left."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from facereenact.execute.core import TaskResult


class RunProgress:
    """``bar = RunProgress(console, "clips", total).start()``, ``bar.advance(result)`` per task,
    ``bar.stop()``. Frames per second count every frame since the start, so the rate is the
    run's, not the last clip's."""

    def __init__(self, console: Console, label: str, total: int):
        columns = (
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:.1f} frames/s"),
            TimeRemainingColumn(),
        )
        self._progress = Progress(*columns, console=console, transient=not sys.stderr.isatty())
        self._task = self._progress.add_task(label, total=total, fps=0.0)
        self._frames = 0
        self._started = time.perf_counter()

    def advance(self, result: TaskResult) -> None:
        self._frames += result.frames
        elapsed = time.perf_counter() - self._started
        self._progress.update(self._task, advance=1, fps=self._frames / elapsed if elapsed > 0 else 0.0)

    def start(self) -> RunProgress:
        self._progress.start()
        return self

    def stop(self) -> None:
        self._progress.stop()
