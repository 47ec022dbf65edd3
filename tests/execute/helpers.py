"""Trivial task functions for the execution-layer tests (module level: workers import them)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from facereenact.errors import InputError
from facereenact.execute import TaskOutput, worker_cache

_builds = 0


def square(value: int) -> TaskOutput:
    return TaskOutput(frames=1, value=value * value)


def refuse(message: str) -> TaskOutput:
    raise InputError(message)


def _build() -> int:
    global _builds
    _builds += 1
    return _builds


def cached(key: str) -> TaskOutput:
    """(this worker's pid, how many times this worker built the cached value)."""
    worker_cache(("test-counter", key), _build)
    return TaskOutput(value=(os.getpid(), _builds))


def die_once(marker: str) -> TaskOutput:
    """The first try kills its own worker (as a crash or an OOM kill would); the retry succeeds."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return TaskOutput(frames=1, value="survived")


def always_die() -> TaskOutput:
    os.kill(os.getpid(), signal.SIGKILL)
    return TaskOutput()


def unpicklable() -> TaskOutput:
    return TaskOutput(value=lambda: None)
