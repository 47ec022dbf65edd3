"""The ``ray`` backend: the same tasks as Ray tasks, on a cluster or on a local Ray instance.

Ray is an optional extra (``pip install "facereenact[ray]"``) and is imported only here, when
the backend opens. Each task asks Ray for its CPUs and GPUs, so a mixed cluster puts fitting on
CPU nodes and neural generation on GPU nodes. Ray's own retries are off: a lost worker comes
back to the driver loop (:func:`~facereenact.execute.core.run_tasks`), which retries and logs
by name exactly as for the local backend. Workers are reused between tasks (``max_calls=0``,
also for GPU tasks, where Ray would otherwise start a fresh process per task), so the worker
cache keeps model weights loaded.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

from facereenact.errors import NotAvailableError
from facereenact.execute.core import Attempt, Task, call, describe_error

#: Tasks kept submitted per free slot, so workers never wait on the driver between tasks.
QUEUE_DEPTH = 2
#: Seconds to wait for a cluster's port to answer before saying it cannot be reached.
CONNECT_TIMEOUT = 5.0


def _check_reachable(address: str) -> None:
    """Fail at once on a HOST:PORT (or ray://HOST:PORT) that nothing answers: Ray itself keeps
    retrying such an address for over a minute before it gives up."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise NotAvailableError(f"cannot reach Ray at {address}: {reason} (is 'ray start --head' running there?)") from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise NotAvailableError('the ray backend needs Ray: pip install "facereenact[ray]"') from None
    return ray


class RayBackend:
    """Ray tasks on the cluster at ``address`` ("auto": the one this machine belongs to;
    HOST:PORT; else ``RAY_ADDRESS``), or on a Ray instance started here and stopped at the end
    when neither is given. An already initialised Ray (``ray.init`` by the caller) is used as
    it is."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.address = address
        self.workers = workers
        self._ray: Any = None
        self._remote: Any = None
        self._owned = False
        self._running: dict[Any, int] = {}

    def open(self, tasks: Sequence[Task]) -> int:
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS")
            settings: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                # "local": a fresh instance even where `ray start` runs a cluster (--address auto joins that)
                address, settings["num_cpus"] = "local", os.cpu_count() or 1
            _check_reachable(address)
            try:
                ray.init(address=address, **settings)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise NotAvailableError(f"cannot start or reach Ray at {address}: {error}") from None
            self._owned = True
        self._remote = ray.remote(max_calls=0)(call)
        if self.workers:
            return self.workers
        cluster = ray.cluster_resources()
        cpus = max(task.resources.cpus for task in tasks)
        gpus = max(task.resources.gpus for task in tasks)
        slots = int(cluster.get("CPU", 1) // cpus)
        if gpus > 0:
            slots = min(slots, int(cluster.get("GPU", 0) // gpus))
        return max(1, slots) * QUEUE_DEPTH

    def submit(self, key: int, task: Task) -> None:
        options = {"num_cpus": task.resources.cpus, "num_gpus": task.resources.gpus, "max_retries": 0, "name": task.name}
        reference = self._remote.options(**options).remote(task.function, task.args, task.resources.cpus)
        self._running[reference] = key

    def wait(self, timeout: float) -> list[tuple[int, Attempt]]:
        ray = self._ray
        if not self._running:
            return []
        ready, rest = ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if ready and rest:
            ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        finished = []
        for reference in ready:
            key = self._running.pop(reference)
            try:
                attempt = ray.get(reference)
            except ray.exceptions.RayTaskError as error:  # raised outside the task's function (e.g. it did not unpickle)
                attempt = Attempt(error=f"cannot run the task on the worker: {describe_error(error.cause or error)}")
            except ray.exceptions.RayError as error:  # the worker, its node or the result was lost
                attempt = Attempt(error=f"{type(error).__name__}: {_first_line(error)}", lost=True)
            finished.append((key, attempt))
        return finished

    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for reference in self._running:
            ray.cancel(reference, force=True)
        self._running.clear()
        if self._owned:
            ray.shutdown()
            self._owned = False


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
