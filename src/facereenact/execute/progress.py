"""One progress bar for a whole run, whatever the backend: tasks done / total, frames per
second over the run so far, and the time left."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from facereenact.execute.core import TaskResult


class RunProgress:
    """``with RunProgress(console, "clips", total) as bar: ... bar.advance(result)``."""

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

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._progress.stop()
