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


def test_the_command_listens_on_loopback_and_cleans_up_when_stopped(assets, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(tmp_path), "FACEREENACT_ASSETS": str(assets.root)}
    command = [sys.executable, "-m", "facereenact", "serve", "--port", str(port), "--data", str(data_dir), "--max-jobs", "1"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                    assert json.load(answer) == {"ok": True, "running": 0, "waiting": 0}
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "the server did not answer"
                time.sleep(0.2)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("facereenact-web-")]
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"open http://127.0.0.1:{port}/" in output
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("facereenact-web-")]
