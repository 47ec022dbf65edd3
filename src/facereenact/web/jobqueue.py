"""A bounded job queue: at most N jobs run at once; the rest wait in line and know their place.

Each job owns a temporary folder. When a job ends the queue deletes its inputs; a failed or
cancelled job's folder goes at once, a finished job's folder (its result) once it has gone
unused for ``keep_seconds``. The queue knows nothing about faces: a *runner* does the work.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from facereenact.errors import FaceReenactError

log = logging.getLogger("facereenact.web")


class JobState(str, Enum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class QueueFull(FaceReenactError):
    """Too many jobs are waiting already; the message says so."""


class Cancelled(Exception):
    """Raised inside a running job (from its progress callback) once it has been cancelled."""


@dataclass
class Outcome:
    """What a runner hands back: the result file (inside the job's folder) and what to tell."""

    result: Path
    frames: int
    notes: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Job:
    """One unit of work and everything the page shows about it."""

    id: str
    folder: Path
    payload: Any
    state: JobState = JobState.queued
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    notes: list[str] = field(default_factory=list)
    result: Path | None = None
    frames: int = 0
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    last_used: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in (JobState.done, JobState.failed, JobState.cancelled)

    def progress(self, stage: str, total: int) -> Callable[[int], None]:
        """A :data:`facereenact.app.animate.ProgressFactory`: records the stage's progress, and is where
        a cancelled job stops (the next frame raises :class:`Cancelled`)."""
        self.stage, self.total, self.done = stage, total, 0

        def tick(index: int) -> None:
            if self.cancel.is_set():
                raise Cancelled()
            self.done = index + 1

        return tick


Runner = Callable[[Job], Outcome]


class JobQueue:
    """``max_jobs`` worker threads take jobs first come, first served; at most ``max_waiting``
    more wait. Runner errors: a :class:`FaceReenactError` fails the job with its one-line message;
    anything else fails it with a generic message and is logged with its traceback. Either way the
    worker goes on with the next job."""

    def __init__(self, runner: Runner, max_jobs: int, max_waiting: int, keep_seconds: float):
        self.runner = runner
        self.max_jobs = max_jobs
        self.max_waiting = max_waiting
        self.keep_seconds = keep_seconds
        self._lock = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._running = 0
        self._closed = False
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self.max_jobs):
            worker = threading.Thread(target=self._work, name=f"facereenact-job-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def close(self, timeout: float = 30.0) -> None:
        """Cancel every job, wait (up to ``timeout``) for running ones to stop, delete all folders."""
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                job.cancel.set()
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for job in self._jobs.values():
                _remove(job.folder)
            self._jobs.clear()
            self._waiting.clear()

    # ---- submitting and asking -------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Put ``job`` in line (its folder already holds its inputs). Raises :class:`QueueFull`."""
        with self._lock:
            if self._closed:
                raise QueueFull("the server is shutting down")
            if self._running + len(self._waiting) >= self.max_jobs + self.max_waiting:
                raise QueueFull(
                    f"the server is busy ({self._running} job(s) running, {len(self._waiting)} waiting); try again in a minute"
                )
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._lock.notify()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.last_used = time.monotonic()
            return job

    def position(self, job: Job) -> int | None:
        """1 for the next job to start, 2 for the one after…; None unless waiting."""
        with self._lock:
            for index, waiting in enumerate(self._waiting):
                if waiting is job:
                    return index + 1
            return None

    def counts(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self._lock:
            return self._running, len(self._waiting)

    def discard(self, job_id: str) -> bool:
        """Forget a job: a waiting one never runs, a running one stops at its next frame, and its
        folder is deleted. False when there is no such job."""
        with self._lock:
            job = self._jobs.pop(job_id, None)
            if job is None:
                return False
            job.cancel.set()
            if job.state is JobState.queued:
                self._waiting.remove(job)
                job.state = JobState.cancelled
            if job.state is not JobState.running:  # the worker deletes a running job's folder
                _remove(job.folder)
            return True

    def sweep(self) -> int:
        """Delete finished jobs unused for ``keep_seconds``; how many went."""
        now = time.monotonic()
        with self._lock:
            expired = [job for job in self._jobs.values() if job.finished and now - job.last_used > self.keep_seconds]
            for job in expired:
                del self._jobs[job.id]
                _remove(job.folder)
            return len(expired)

    # ---- the workers -----------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                job = self._waiting.popleft()
                job.state = JobState.running
                job.started_at = time.time()
                self._running += 1
            ending = self._run(job)
            # The job's files are settled before its end is published, and the end is published
            # under the lock: whoever sees the job finished sees its folder as the end left it.
            with self._lock:
                self._running -= 1
                job.finished_at = time.time()
                job.last_used = time.monotonic()
                ending(job)
                if self._jobs.get(job.id) is not job:  # discarded while it ran
                    _remove(job.folder)

    def _run(self, job: Job) -> Callable[[Job], None]:
        """Run the job and clean up its folder; returns how to mark its end."""
        try:
            outcome = self.runner(job)
        except Cancelled:
            _remove(job.folder)
            return _ended(JobState.cancelled, "the job was cancelled")
        except FaceReenactError as error:
            _remove(job.folder)
            return _ended(JobState.failed, str(error))
        except Exception:
            log.exception("job %s failed unexpectedly", job.id)
            _remove(job.folder)
            return _ended(JobState.failed, "the job failed on an internal error (the server log has the details)")
        if job.cancel.is_set():
            _remove(job.folder)
            return _ended(JobState.cancelled, "the job was cancelled")
        _remove_all_but(job.folder, outcome.result)

        def done(job: Job) -> None:
            job.result, job.frames, job.notes = outcome.result, outcome.frames, outcome.notes
            job.state = JobState.done

        return done


def _ended(state: JobState, message: str) -> Callable[[Job], None]:
    def mark(job: Job) -> None:
        job.state, job.message = state, message

    return mark


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _remove_all_but(folder: Path, keep: Path) -> None:
    """Delete the job's inputs, keeping only its result."""
    for entry in folder.iterdir():
        if entry == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            _remove(entry)
        else:
            entry.unlink(missing_ok=True)
