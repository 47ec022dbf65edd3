"""One execution layer for per-clip work (``prepare``, ``evaluate``, ``animate --batch``).

The commands describe their work as :class:`Task` objects and hand them to a backend: ``local``
(worker processes on this machine, the default) or ``ray`` (a Ray cluster, an optional extra).
The per-clip functions are the same on both; only where they run differs.
"""

from __future__ import annotations

from enum import Enum

from facereenact.errors import OptionError
from facereenact.execute.core import (
    DEFAULT_RETRIES,
    Attempt,
    Backend,
    Resources,
    RunSummary,
    Task,
    TaskOutput,
    TaskResult,
    run_all,
    run_tasks,
    worker_cache,
)
from facereenact.execute.local import LocalBackend


class BackendName(str, Enum):
    local = "local"
    ray = "ray"


def make_backend(name: BackendName | str = BackendName.local, address: str | None = None, workers: int | None = None) -> Backend:
    """The backend a command's ``--backend``, ``--address`` and ``--workers`` name."""
    name = BackendName(name)
    if name is BackendName.local:
        if address is not None:
            raise OptionError(("address",), "names a Ray cluster: use it with the ray backend")
        return LocalBackend(workers)
    from facereenact.execute.ray_backend import RayBackend

    return RayBackend(address, workers)


__all__ = [
    "DEFAULT_RETRIES",
    "Attempt",
    "Backend",
    "BackendName",
    "LocalBackend",
    "Resources",
    "RunSummary",
    "Task",
    "TaskOutput",
    "TaskResult",
    "make_backend",
    "run_all",
    "run_tasks",
    "worker_cache",
]
