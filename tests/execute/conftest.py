"""A local Ray instance shared by a test module (Ray takes seconds to start), or a skip with the
reason when the ``ray`` extra is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def start_local_ray() -> Iterator[None]:
    """Two CPUs, like this project's CI machines; workers import this repository's code and tests."""
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "facereenact[ray]"); the ray backend is not tested')
    paths = [str(REPO / "src"), str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    yield from start_local_ray()
