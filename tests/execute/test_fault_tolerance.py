"""Acceptance of the execution layer on real work: a worker killed in the middle of ``prepare``
or ``animate --batch`` is retried and named, and every output appears exactly once, with no
half-written file left. Ray runs in a local instance started here (two CPUs, like CI)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facereenact.cli import app
from facereenact.io.video import probe_video
from facereenact.train.clipstore import load_clip

CLIPS = ("dpe_s", "grid_bbaf2n", "pcavs_00015", "stk_nice")
runner = CliRunner()


def _processes() -> dict[int, str]:
    """pid → command line (Ray shows a running task's name there as ``ray::NAME``)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return found


def _local_workers() -> list[int]:
    """The local backend's worker processes: this process's spawned children."""
    children: list[int] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            children += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    commands = _processes()
    return [pid for pid in children if "spawn_main" in commands.get(pid, "")]


class Killer(threading.Thread):
    """Kills one worker process once ``pick`` names one (pid, task name), then stops."""

    def __init__(self, pick: Callable[[], tuple[int, str] | None], timeout: float = 120):
        super().__init__(daemon=True)
        self.pick, self.timeout = pick, timeout
        self.killed: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.stop.is_set() and time.monotonic() < deadline:
            target = self.pick()
            if target is not None:
                os.kill(target[0], signal.SIGKILL)
                self.killed = target[1]
                return
            time.sleep(0.01)

    def __enter__(self) -> Killer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.join()


def _ray_worker_running(names: set[str]) -> tuple[int, str] | None:
    for pid, command in _processes().items():
        name = command.removeprefix("ray::").strip()
        if command.startswith("ray::") and name in names:
            return pid, name
    return None


@pytest.fixture(scope="module")
def videos(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for name in CLIPS:
        shutil.copy(data_dir / "clips" / f"{name}.mp4", folder / f"{name}.mp4")
    return folder


@pytest.mark.parametrize("backend", ["ray", "local"])
def test_prepare_survives_a_killed_worker(backend: str, request: pytest.FixtureRequest, videos: Path, assets, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if backend == "ray":
        request.getfixturevalue("local_ray")
        killer = Killer(lambda: _ray_worker_running(set(CLIPS)))
    out = tmp_path / "prepared"
    if backend == "local":
        # A worker only while at least two clips are left, so it holds one (the pool has two):
        # one killed after the last clip, idle, loses nothing and is rightly not retried.
        def busy_worker() -> tuple[int, str] | None:
            left = len(CLIPS) - len(list((out / "clips").glob("*.npz")))
            return (workers[0], "a local worker") if left >= 2 and (workers := _local_workers()) else None

        killer = Killer(busy_worker)
    started = time.monotonic()
    with killer:
        result = runner.invoke(app, ["prepare", str(videos), str(out), "--size", "64", "--max-frames", "25", "--backend", backend, "--assets", str(assets.root)])
    print(f"prepare on {backend} with one worker killed: {time.monotonic() - started:.1f} s")
    assert killer.killed is not None, "no worker was seen running a clip"
    assert result.exit_code == 0, result.output
    retried = [line for line in result.output.splitlines() if "retrying" in line]
    assert len(retried) == 1, result.output
    if backend == "ray":
        assert f"retrying {killer.killed} (attempt 2 of 3)" in retried[0]
    assert "worker" in retried[0] and "4 done, 0 skipped (finished earlier), 0 failed" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(c["clip"] for c in manifest["clips"]) == sorted(CLIPS) and not manifest["failed"]
    assert sorted(p.name for p in (out / "clips").iterdir()) == sorted(f"{c}.npz" for c in CLIPS), "a clip is missing, doubled or half-written"
    assert all(len(load_clip(out / "clips" / f"{c}.npz")) == 25 for c in CLIPS)


def test_animate_batch_survives_a_killed_worker(local_ray, data_dir: Path, assets, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    jobs = tmp_path / "jobs.csv"
    names = {f"{clip}.mp4" for clip in CLIPS[:3]}
    with open(jobs, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["source", "driving", "output", "max_frames"])
        for clip in CLIPS[:3]:
            writer.writerow([data_dir / "portraits" / "lp_s12.jpg", data_dir / "clips" / f"{clip}.mp4", f"{clip}.mp4", 40])
    out = tmp_path / "animated"

    def writing() -> tuple[int, str] | None:
        """A worker caught while its video is half-written (its temporary file exists)."""
        partial = {p.name.split(".")[1] + ".mp4" for p in out.glob(".*.part.mp4")} if out.is_dir() else set()
        return _ray_worker_running(partial & names) if partial else None

    started = time.monotonic()
    with Killer(writing) as killer:
        result = runner.invoke(app, ["animate", "--batch", str(jobs), "--out", str(out), "--crop-only", "--backend", "ray", "--assets", str(assets.root)])
    print(f"animate --batch on ray with one worker killed mid-write: {time.monotonic() - started:.1f} s")
    assert killer.killed is not None, "no worker was caught writing a video"
    assert result.exit_code == 0, result.output
    assert f"retrying {killer.killed} (attempt 2 of 3)" in result.output
    assert "3 done, 0 skipped (finished earlier), 0 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(names), "a video is missing or a half-written one was left"
    assert all(probe_video(out / name).frame_count == 40 for name in names)
