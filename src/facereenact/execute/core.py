"""Tasks, their results, the backend interface and the driver loop shared by every backend.

A task is one unit of per-clip work: a module-level function (so any worker process can import
it), its arguments, and the resources it needs. Backends only move tasks to workers and
outcomes back; everything else (retries, logging, ordering, what counts as failure) is decided
here once, so ``prepare``, ``evaluate`` and ``animate --batch`` behave the same on every backend.

Two kinds of failure are told apart:

* the function raised: the input is bad (a corrupt video), running it again would fail again,
  so the task fails at once with the exception's message;
* the worker was lost (the process was killed, ran out of memory, its node went away): the task
  is retried on another worker, at most ``retries`` times, and each retry is logged by name.
"""

from __future__ import annotations

import pickle
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from facereenact.errors import FaceReenactError, InputError

#: Retries of a task whose worker was lost, before it is reported as failed.
DEFAULT_RETRIES = 2

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What one task needs: CPU cores (also its number of torch threads) and GPUs (fractions
    share a GPU). A cluster scheduler places the task on a node that has them."""

    cpus: int = 1
    gpus: float = 0.0

    def __post_init__(self) -> None:
        if self.cpus < 1 or self.gpus < 0:
            raise ValueError(f"a task needs at least one CPU and no negative GPUs, not {self}")


@dataclass(frozen=True)
class Task:
    """``function(*args)`` run on a worker, under a name unique within its run (clip, output)."""

    name: str
    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    resources: Resources = Resources()


@dataclass(frozen=True)
class TaskOutput:
    """What a per-clip function returns: the frames it processed (for the run's frames/s), any
    value for the driver, and notes worth showing the user."""

    frames: int = 0
    value: Any = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """One try of a task, as a backend reports it. ``lost``: the worker died before answering,
    so trying again may succeed; otherwise ``error`` is the function's own failure."""

    output: TaskOutput | None = None
    error: str | None = None
    lost: bool = False


@dataclass
class TaskResult:
    """A task's final outcome, after any retries."""

    name: str
    output: TaskOutput | None
    error: str | None
    attempts: int

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def frames(self) -> int:
        return self.output.frames if self.output is not None else 0


class Backend(Protocol):
    """Runs tasks on workers and reports each attempt; knows nothing of clips or retries."""

    name: str

    def open(self, tasks: Sequence[Task]) -> int:
        """Get ready to run ``tasks``; returns how many to keep submitted at once."""
        ...

    def submit(self, key: int, task: Task) -> None:
        """Start ``task``; its attempt comes back from :meth:`wait` under ``key``."""
        ...

    def wait(self, timeout: float) -> list[tuple[int, Attempt]]:
        """Attempts finished since the last call, waiting up to ``timeout`` seconds for one."""
        ...

    def close(self) -> None:
        """Stop the workers (those still busy are stopped too) and release what ``open`` took."""
        ...


def describe_error(error: BaseException) -> str:
    """One line for the user: our own errors say it all, anything else is named by its type."""
    if isinstance(error, FaceReenactError):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def call(function: Callable[..., Any], args: tuple[Any, ...], threads: int) -> Attempt:
    """Run one task inside a worker. torch gets ``threads`` threads (the task's CPUs): more
    threads than the cores a worker was given made runs here up to 10x slower. A raised
    exception becomes the attempt's error, so no backend needs to transport exceptions."""
    import torch

    torch.set_num_threads(max(1, threads))
    try:
        output = function(*args)
        if not isinstance(output, TaskOutput):
            output = TaskOutput(value=output)
        pickle.dumps(output)  # a result that cannot travel back is this task's error, not a lost worker
        return Attempt(output=output)
    except Exception as error:  # noqa: BLE001 (one task's failure is reported, never fatal to the run)
        return Attempt(error=describe_error(error))


_worker_cache: dict[Hashable, Any] = {}


def worker_cache(key: Hashable, build: Callable[[], T]) -> T:
    """``build()`` once per worker process and ``key``, then the same object for every later task
    on that worker: model weights and fitters load once per worker, not once per clip."""
    if key not in _worker_cache:
        _worker_cache[key] = build()
    return _worker_cache[key]


def run_tasks(
    backend: Backend, tasks: Sequence[Task], retries: int = DEFAULT_RETRIES, log: Callable[[str], None] = print
) -> Iterator[TaskResult]:
    """Run ``tasks`` on ``backend`` and yield each one's result as it completes (completion
    order). A task whose worker is lost is retried up to ``retries`` times (logged by name);
    one that raised fails at once. The backend is closed when the iteration ends or stops."""
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise InputError(f"two tasks are named {repeated[0]}; every clip or output needs its own name")
    if not tasks:
        return
    slots = max(1, backend.open(tasks))
    try:
        waiting = deque(range(len(tasks)))
        attempts = [0] * len(tasks)
        running = 0
        while waiting or running:
            while waiting and running < slots:
                key = waiting.popleft()
                attempts[key] += 1
                backend.submit(key, tasks[key])
                running += 1
            for key, attempt in backend.wait(timeout=1.0):
                running -= 1
                name = names[key]
                if attempt.lost and attempts[key] <= retries:
                    log(f"retrying {name} (attempt {attempts[key] + 1} of {retries + 1}): {attempt.error}")
                    waiting.appendleft(key)
                    continue
                error = attempt.error
                if attempt.lost:
                    error = f"{attempt.error} (tried {attempts[key]} times)"
                if error is None and attempt.output is None:
                    error = "the worker returned no result"
                yield TaskResult(name, attempt.output, error, attempts[key])
    finally:
        backend.close()


@dataclass
class RunSummary:
    """A run's account: what was done, skipped (finished earlier), retried and failed, and its
    speed. The commands print it and exit non-zero when anything failed."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def add(self, result: TaskResult) -> None:
        if result.ok:
            self.done.append(result.name)
        else:
            self.failed.append((result.name, result.error or ""))
        if result.attempts > 1:
            self.retried.append(result.name)
        self.frames += result.frames
        self.seconds = time.perf_counter() - self.started

    @property
    def total(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def lines(self, unit: str = "clip") -> list[str]:
        """The end-of-run summary: one line of counts and speed, then one line per failure."""
        counts = f"{len(self.done)} done, {len(self.skipped)} skipped (finished earlier), {len(self.failed)} failed"
        speed = f"{self.frames} frames in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)"
        lines = [f"{self.total} {unit}(s): {counts}; {speed}"]
        if self.retried:
            lines.append(f"retried after a lost worker: {', '.join(sorted(self.retried))}")
        lines += [f"failed {name}: {reason}" for name, reason in sorted(self.failed)]
        return lines


def run_all(
    backend: Backend,
    tasks: Sequence[Task],
    summary: RunSummary,
    on_result: Callable[[TaskResult], None] | None = None,
    retries: int = DEFAULT_RETRIES,
    log: Callable[[str], None] = print,
) -> list[TaskResult]:
    """Run every task, counting each result into ``summary`` and passing it to ``on_result``
    (a progress bar) as it arrives; failures and notes are logged by name as they happen.
    Returns the results in the tasks' order, whatever order they finished in."""
    results: dict[str, TaskResult] = {}
    for result in run_tasks(backend, tasks, retries, log):
        results[result.name] = result
        summary.add(result)
        if result.output is not None:
            for note in result.output.notes:
                log(f"{result.name}: {note}")
        if not result.ok:
            log(f"failed {result.name}: {result.error}")
        if on_result is not None:
            on_result(result)
    return [results[task.name] for task in tasks]
