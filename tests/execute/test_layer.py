"""The execution layer with trivial functions, on both backends: results, failures, retries of
lost workers, the worker cache, and the run summary."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from facereenact.errors import InputError, NotAvailableError, OptionError
from facereenact.execute import LocalBackend, Resources, RunSummary, Task, make_backend, run_all, run_tasks
from tests.execute import helpers


@pytest.fixture(params=["local", "ray"])
def backend_name(request: pytest.FixtureRequest) -> str:
    if request.param == "ray":
        request.getfixturevalue("local_ray")
    return request.param


def _backend(name: str):  # type: ignore[no-untyped-def]
    return make_backend(name, workers=2 if name == "local" else None)


def test_results_come_back_in_task_order_with_frames(backend_name: str) -> None:
    tasks = [Task(f"n{i}", helpers.square, (i,)) for i in range(6)]
    summary = RunSummary()
    seen: list[str] = []
    results = run_all(_backend(backend_name), tasks, summary, on_result=lambda r: seen.append(r.name), log=lambda _: None)
    assert [r.output.value for r in results] == [i * i for i in range(6)]
    assert sorted(seen) == sorted(t.name for t in tasks)
    assert summary.frames == 6 and len(summary.done) == 6 and not summary.failed and summary.frames_per_second > 0


def test_a_raising_task_fails_at_once_and_the_others_complete(backend_name: str) -> None:
    tasks = [Task("good", helpers.square, (3,)), Task("bad", helpers.refuse, ("corrupt video",)), Task("unsendable", helpers.unpicklable)]
    lines: list[str] = []
    summary = RunSummary()
    results = {r.name: r for r in run_all(_backend(backend_name), tasks, summary, log=lines.append)}
    assert results["good"].ok and results["good"].output.value == 9
    assert results["bad"].error == "corrupt video" and results["bad"].attempts == 1
    assert not results["unsendable"].ok and results["unsendable"].attempts == 1
    assert "failed bad: corrupt video" in lines
    assert sorted(name for name, _ in summary.failed) == ["bad", "unsendable"]
    assert any(line.startswith("failed bad: corrupt video") for line in summary.lines())


def test_a_lost_worker_is_retried_and_named(backend_name: str, tmp_path: Path) -> None:
    tasks = [Task("fragile", helpers.die_once, (str(tmp_path / "marker"),))] + [Task(f"n{i}", helpers.square, (i,)) for i in range(3)]
    lines: list[str] = []
    summary = RunSummary()
    results = {r.name: r for r in run_all(_backend(backend_name), tasks, summary, log=lines.append)}
    assert all(r.ok for r in results.values()), results
    assert results["fragile"].attempts == 2 and results["fragile"].output.value == "survived"
    assert [line for line in lines if line.startswith("retrying fragile (attempt 2 of 3)")], lines
    assert summary.retried == ["fragile"] and len(summary.done) == 4


def test_a_task_that_always_kills_its_worker_fails_after_bounded_retries(backend_name: str) -> None:
    tasks = [Task("doomed", helpers.always_die), Task("fine", helpers.square, (2,))]
    lines: list[str] = []
    results = {r.name: r for r in run_tasks(_backend(backend_name), tasks, retries=1, log=lines.append)}
    assert results["fine"].ok
    assert not results["doomed"].ok and results["doomed"].attempts == 2 and "tried 2 times" in results["doomed"].error
    assert sum(line.startswith("retrying doomed") for line in lines) == 1


def test_the_worker_cache_builds_once_per_worker(backend_name: str) -> None:
    tasks = [Task(f"n{i}", helpers.cached, ("weights",)) for i in range(8)]
    results = run_all(_backend(backend_name), tasks, RunSummary(), log=lambda _: None)
    by_worker: dict[int, set[int]] = {}
    for result in results:
        pid, builds = result.output.value
        by_worker.setdefault(pid, set()).add(builds)
    assert all(builds == {1} for builds in by_worker.values()), by_worker
    assert len(by_worker) <= 2


def test_local_pool_size_follows_cores_and_task_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    tasks = [Task(f"n{i}", helpers.square, (i,), Resources(cpus=2)) for i in range(10)]
    assert LocalBackend().open(tasks) == 4
    assert LocalBackend().open(tasks[:3]) == 3
    single = LocalBackend(workers=1)
    assert single.open(tasks) == 1 and single._threads == 8  # a smaller pool gives its workers the spare cores


def test_task_names_must_be_unique() -> None:
    with pytest.raises(InputError, match="two tasks are named a"):
        list(run_tasks(LocalBackend(), [Task("a", helpers.square, (1,)), Task("a", helpers.square, (2,))]))


def test_address_needs_the_ray_backend() -> None:
    with pytest.raises(OptionError, match="address names a Ray cluster") as raised:
        make_backend("local", address="auto")
    assert raised.value.options == ("address",), "the interface names the option its own way"


def test_an_unreachable_ray_address_is_one_clear_line_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the port: the error comes in seconds, not after Ray's minute of retries."""
    import socket
    import time

    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh driver, whatever ran before here
    with socket.socket() as probe:  # a port that was free a moment ago, and now nothing holds
        probe.bind(("127.0.0.1", 0))
        unused_tcp_port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(NotAvailableError, match=rf"cannot reach Ray at 127.0.0.1:{unused_tcp_port}: .*ray start --head"):
        make_backend("ray", address=f"127.0.0.1:{unused_tcp_port}").open([Task("a", helpers.square, (1,))])
    assert time.monotonic() - started < 10


def test_the_ray_backend_without_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the extra
    with pytest.raises(NotAvailableError, match=r'pip install "facereenact\[ray\]"'):
        make_backend("ray").open([Task("a", helpers.square, (1,))])
