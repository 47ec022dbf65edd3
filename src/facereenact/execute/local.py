"""The ``local`` backend: a pool of worker processes on this machine, no extra dependency.

Each worker is a spawned process that takes one task at a time over a pipe and keeps its
:func:`~facereenact.execute.core.worker_cache` between tasks. The driver knows which task every
worker holds, so when a worker dies (killed, out of memory, a crash in native code) exactly that
task is reported lost and a fresh worker replaces the dead one while the others carry on: the
same guarantee a Ray cluster gives, which :class:`concurrent.futures.ProcessPoolExecutor` does
not (one dead worker breaks the whole pool and every task in it).
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Sequence
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from typing import Any

from facereenact.execute.core import Attempt, Task, call, describe_error


def _serve(connection: Connection) -> None:
    """A worker's loop: (key, threads, pickled function and arguments) in, (key, Attempt) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; it stops us
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        key, threads, payload = message
        try:
            function, args = pickle.loads(payload)
        except Exception as error:  # noqa: BLE001 (e.g. the function's module does not import here)
            attempt = Attempt(error=f"cannot load the task in the worker: {describe_error(error)}")
        else:
            attempt = call(function, args, threads)
        connection.send((key, attempt))


class _Worker:
    def __init__(self, context: Any):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True, name="facereenact-worker")
        self.process.start()
        child.close()
        self.key: int | None = None


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker process died ({signal.Signals(-exitcode).name})"
        except ValueError:
            pass
    return f"worker process died (exit code {exitcode})"


class LocalBackend:
    """Worker processes on this machine: by default as many as the cores allow for the tasks'
    CPUs (and the GPUs for tasks that need one), at most one per task."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers
        self._size = 0
        self._threads = 1
        self._pool: list[_Worker] = []
        self._context = get_context("spawn")  # fork would copy the driver's torch thread pool state

    def open(self, tasks: Sequence[Task]) -> int:
        cores = os.cpu_count() or 1
        cpus = max(task.resources.cpus for task in tasks)
        gpus = max(task.resources.gpus for task in tasks)
        size = self.workers or max(1, cores // cpus)
        if gpus > 0:
            import torch

            size = min(size, max(1, int(torch.cuda.device_count() // gpus)))
        self._size = max(1, min(size, len(tasks)))
        # Cores a smaller pool leaves free go to each worker's threads (e.g. --workers 1).
        self._threads = max(cpus, cores // self._size)
        return self._size

    def submit(self, key: int, task: Task) -> None:
        payload = pickle.dumps((task.function, task.args))
        worker = next((w for w in self._pool if w.key is None), None)
        if worker is None:
            worker = _Worker(self._context)
            self._pool.append(worker)
        try:
            worker.connection.send((key, self._threads, payload))
        except OSError:  # it died while idle: replace it
            self._discard(worker)
            worker = _Worker(self._context)
            self._pool.append(worker)
            worker.connection.send((key, self._threads, payload))
        worker.key = key

    def wait(self, timeout: float) -> list[tuple[int, Attempt]]:
        busy = [w for w in self._pool if w.key is not None]
        if not busy:
            return []
        ready = set(wait([w.connection for w in busy] + [w.process.sentinel for w in busy], timeout))
        finished: list[tuple[int, Attempt]] = []
        for worker in busy:
            if worker.connection not in ready and worker.process.sentinel not in ready:
                continue
            key = worker.key
            assert key is not None
            try:
                if worker.connection.poll():
                    answered, attempt = worker.connection.recv()
                    worker.key = None
                    finished.append((answered, attempt))
                    continue
            except (EOFError, OSError):
                pass
            if worker.process.is_alive():
                continue
            worker.process.join()
            finished.append((key, Attempt(error=_death(worker.process.exitcode), lost=True)))
            self._discard(worker)
        return finished

    def _discard(self, worker: _Worker) -> None:
        worker.connection.close()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        self._pool.remove(worker)

    def close(self) -> None:
        for worker in list(self._pool):
            if worker.key is None:
                try:
                    worker.connection.send(None)
                except OSError:
                    pass
                worker.process.join(timeout=10)
            self._discard(worker)
