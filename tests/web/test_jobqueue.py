"""The job queue alone, with runners that wait on events: at most N run, the rest wait in line
with their position, failures leave the workers healthy, and folders go when they should."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from facereenact.errors import InputError
from facereenact.web.jobqueue import Job, JobQueue, JobState, Outcome, QueueFull


def _wait_for(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


class GatedRunner:
    """Each job writes a result, then waits until the test opens its gate (or fails on request)."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.running = 0
        self.most_running = 0

    def gate(self, job_id: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(job_id, threading.Event())

    def __call__(self, job: Job) -> Outcome:
        with self.lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            tick = job.progress("animating", 3)
            while not self.gate(job.id).wait(0.01):
                tick(0)  # a cancelled job stops here
            if job.payload == "bad input":
                raise InputError("clip.mp4 has no video frames")
            if job.payload == "bug":
                raise RuntimeError("a bug")
            result = job.folder / "result.mp4"
            result.write_bytes(b"video")
            return Outcome(result, 3, ["a note"])
        finally:
            with self.lock:
                self.running -= 1


def _job(tmp_path: Path, name: str, payload: object = None) -> Job:
    folder = tmp_path / name
    (folder / "source").mkdir(parents=True)
    (folder / "source" / "portrait.jpg").write_bytes(b"input")
    return Job(name, folder, payload)


@pytest.fixture()
def runner() -> GatedRunner:
    return GatedRunner()


@pytest.fixture()
def queue(runner: GatedRunner):  # type: ignore[no-untyped-def]
    jobs = JobQueue(runner, max_jobs=2, max_waiting=2, keep_seconds=60)
    jobs.start()
    yield jobs
    for gate in runner.gates.values():
        gate.set()
    jobs.close(timeout=5)


def test_at_most_n_run_and_the_rest_wait_in_line_with_their_position(queue: JobQueue, runner: GatedRunner, tmp_path: Path) -> None:
    jobs = [_job(tmp_path, f"job{i}") for i in range(4)]
    for job in jobs:
        queue.submit(job)
    _wait_for(lambda: jobs[0].state is JobState.running and jobs[1].state is JobState.running)
    assert [queue.position(job) for job in jobs] == [None, None, 1, 2]
    assert queue.counts() == (2, 2)
    time.sleep(0.1)  # nothing else starts while both slots are taken
    assert jobs[2].state is JobState.queued and runner.running == 2

    runner.gate("job1").set()  # one slot frees: the first in line starts, the next moves up
    _wait_for(lambda: jobs[2].state is JobState.running)
    assert jobs[1].state is JobState.done and queue.position(jobs[3]) == 1
    for job in jobs:
        runner.gate(job.id).set()
    _wait_for(lambda: all(job.state is JobState.done for job in jobs))
    assert runner.most_running == 2
    assert jobs[2].started_at >= jobs[1].finished_at  # type: ignore[operator]
    for job in jobs:  # inputs deleted, result kept
        assert sorted(p.name for p in job.folder.iterdir()) == ["result.mp4"]
        assert job.frames == 3 and job.notes == ["a note"]


def test_a_full_line_refuses_more_with_a_clear_message(queue: JobQueue, tmp_path: Path) -> None:
    for i in range(4):
        queue.submit(_job(tmp_path, f"job{i}"))
    with pytest.raises(QueueFull, match="busy"):
        queue.submit(_job(tmp_path, "one too many"))


def test_failures_keep_their_message_delete_the_folder_and_the_workers_go_on(queue: JobQueue, runner: GatedRunner, tmp_path: Path) -> None:
    bad, bug, good = _job(tmp_path, "bad", "bad input"), _job(tmp_path, "bug", "bug"), _job(tmp_path, "good")
    for job in (bad, bug, good):
        runner.gate(job.id).set()
        queue.submit(job)
    _wait_for(lambda: all(job.finished for job in (bad, bug, good)))
    assert (bad.state, bad.message) == (JobState.failed, "clip.mp4 has no video frames")
    assert bug.state is JobState.failed and "internal error" in bug.message
    assert good.state is JobState.done
    assert not bad.folder.exists() and not bug.folder.exists() and good.result is not None and good.result.is_file()


def test_discarding_a_waiting_or_running_job_stops_it_and_deletes_its_folder(queue: JobQueue, runner: GatedRunner, tmp_path: Path) -> None:
    jobs = [_job(tmp_path, f"job{i}") for i in range(3)]
    for job in jobs:
        queue.submit(job)
    _wait_for(lambda: jobs[0].state is JobState.running and jobs[1].state is JobState.running)
    assert queue.discard("job2") and jobs[2].state is JobState.cancelled and not jobs[2].folder.exists()
    assert queue.discard("job0")
    _wait_for(lambda: jobs[0].finished)
    assert jobs[0].state is JobState.cancelled and queue.get("job0") is None
    _wait_for(lambda: not jobs[0].folder.exists())
    assert not queue.discard("job0")


def test_finished_results_go_after_the_keep_time(runner: GatedRunner, tmp_path: Path) -> None:
    jobs = JobQueue(runner, max_jobs=1, max_waiting=0, keep_seconds=0.2)
    jobs.start()
    try:
        job = _job(tmp_path, "job")
        runner.gate("job").set()
        jobs.submit(job)
        _wait_for(lambda: job.finished)
        assert jobs.sweep() == 0 and job.folder.exists()
        time.sleep(0.3)
        assert jobs.sweep() == 1 and not job.folder.exists() and jobs.get("job") is None
    finally:
        jobs.close(timeout=5)


def test_closing_cancels_everything_and_deletes_every_folder(runner: GatedRunner, tmp_path: Path) -> None:
    jobs = JobQueue(runner, max_jobs=1, max_waiting=2, keep_seconds=60)
    jobs.start()
    submitted = [_job(tmp_path, f"job{i}") for i in range(3)]
    for job in submitted:
        jobs.submit(job)
    _wait_for(lambda: submitted[0].state is JobState.running)
    jobs.close(timeout=5)
    assert not any(job.folder.exists() for job in submitted)
    with pytest.raises(QueueFull, match="shutting down"):
        jobs.submit(_job(tmp_path, "late"))
