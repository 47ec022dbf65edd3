"""``facereenact serve``: its options, a bad model is one error line, and the real command
listens on loopback, answers, and deletes its temporary folder when stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facereenact.cli import app

pytest.importorskip("uvicorn", reason="uvicorn is not installed (pip install 'facereenact[web]')")

runner = CliRunner()


def test_serve_lists_its_options() -> None:
    result = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--host", "--port", "--max-jobs", "--max-upload-mb", "--max-seconds", "--max-frames", "--model", "--data", "--assets"):
        assert option in result.output
    assert "127.0.0.1" in result.output


def test_serve_with_a_missing_model_is_one_error_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "nothing.safetensors")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), result.output


def _start_server(assets, data_dir: Path, temporary: Path) -> tuple[subprocess.Popen, int]:  # type: ignore[no-untyped-def,type-arg]
    """``facereenact serve`` as a process on a free loopback port, its temporary folder in
    ``temporary``, once it answers: the process and its port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(temporary), "FACEREENACT_ASSETS": str(assets.root)}
    command = [sys.executable, "-m", "facereenact", "serve", "--port", str(port), "--data", str(data_dir), "--max-jobs", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                assert json.load(answer) == {"ok": True, "running": 0, "waiting": 0}
                return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"the server did not answer: {process.communicate()[0]}") from None
            time.sleep(0.2)


def test_the_command_listens_on_loopback_and_cleans_up_when_stopped(assets, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    process, port = _start_server(assets, data_dir, tmp_path)
    try:
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("facereenact-web-")]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"open http://127.0.0.1:{port}/" in output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("facereenact-web-")]


def test_a_taken_port_is_one_error_line_before_anything_is_loaded(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # no model files at all: the port must be refused before they are looked for
        result = runner.invoke(app, ["serve", "--port", str(port), "--assets", str(tmp_path / "none"), "--model", str(tmp_path / "none.safetensors")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and lines == [f"error: port {port} on 127.0.0.1 is in use: choose another with --port"], result.output


def _post(port: int, path: str, body: bytes, content_type: str = "application/octet-stream") -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)


def _start_upload(port: int, declared: int, sent: int) -> socket.socket:
    """A raw connection that has begun an upload of ``declared`` bytes and sent ``sent`` of them."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = (
        f"POST /api/uploads/driving?name=slow.mp4 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    )
    connection.sendall(head.encode() + bytes(sent))
    return connection


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_with_slow_uploads_and_a_running_job_ends_within_seconds(assets, data_dir: Path, tmp_path: Path, stop: signal.Signals) -> None:  # type: ignore[no-untyped-def]
    """The process exits, its job cancelled and its folder gone, within 5 s; each upload a client
    abandoned is one log line, not a traceback."""
    process, port = _start_server(assets, data_dir, tmp_path)
    connections: list[socket.socket] = []
    try:
        source = _post(port, "/api/uploads/source?name=me.jpg", (data_dir / "portraits" / "lp_s12.jpg").read_bytes())["id"]
        driving = _post(port, "/api/uploads/driving?name=clip.mp4", (data_dir / "clips" / "hdtf_aoc.mp4").read_bytes())["id"]
        job = _post(port, "/api/jobs", json.dumps({"source": source, "driving": driving, "method": "warp"}).encode(), "application/json")["id"]
        while json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs/{job}", timeout=10))["state"] == "queued":
            time.sleep(0.1)
        for _ in range(3):  # clients that give up half-way
            _start_upload(port, 1_000_000, 10_000).close()
        connections = [_start_upload(port, 5_000_000, 50_000) for _ in range(3)]  # clients still sending
        time.sleep(0.5)
        assert json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs/{job}", timeout=10))["state"] == "running"
        started = time.monotonic()
        process.send_signal(stop)
        output, _ = process.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        for connection in connections:
            connection.close()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert took < 5.0, f"the server took {took:.1f} s to stop:\n{output}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("facereenact-web-")]
    assert "Traceback" not in output, output
    assert output.count("upload of slow.mp4 cut off: the client went away") == 3, output
