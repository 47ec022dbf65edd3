"""The command line on hostile media and on being stopped: a driving video cut short is animated
as far as it goes with a warning naming what was read; an animated image drives with every frame
for its own duration; an output that cannot hold the result is refused naming the driving; a
command killed by SIGTERM leaves nothing, and a re-run clears what SIGKILL left. Every command
runs through :func:`tests.cli_inputs.run_cli`, which fails a test whose command changed an input."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import facereenact
from facereenact.io.video import VideoWriter, iter_frames, probe_video
from tests.cli_inputs import error_line, run_cli

CLIP_FRAMES = 40


@pytest.fixture()
def assets_env(assets, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEREENACT_ASSETS", str(assets.root))
    return assets


@pytest.fixture(scope="module")
def face_frames(data_dir: Path) -> list[np.ndarray]:
    return [cv2.resize(frame, (128, 128), interpolation=cv2.INTER_AREA) for frame in iter_frames(data_dir / "clips" / "hdtf_aoc.mp4", CLIP_FRAMES)]


@pytest.fixture(scope="module")
def face_clip(face_frames: list[np.ndarray], data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short talking-head clip with sound, its index at the front (as a web download has it),
    so that a cut keeps the header that declares all its frames."""
    path = tmp_path_factory.mktemp("clip") / "talk.mp4"
    with VideoWriter(path, 25, audio_from=data_dir / "clips" / "hdtf_aoc.mp4") as writer:
        writer.write_batch(np.stack(face_frames))
    return path


def _portrait(data_dir: Path) -> Path:
    return data_dir / "portraits" / "lp_s12.jpg"


WARP = ("--method", "warp", "--crop-only", "--crop-size", "64")


@pytest.mark.parametrize("fraction", [0.35, 0.7])
def test_a_driving_video_cut_short_is_animated_as_far_as_it_goes_and_says_so(assets_env, data_dir: Path, face_clip: Path, tmp_path: Path, fraction: float) -> None:  # type: ignore[no-untyped-def]
    cut = tmp_path / "cut.mp4"
    data = face_clip.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    output = tmp_path / "out.mp4"
    result = run_cli("animate", "--source", _portrait(data_dir), "--driving", cut, "-o", output, *WARP)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    written = probe_video(output).frame_count
    assert 0 < written < CLIP_FRAMES
    assert any(f"ends after {written} of the {CLIP_FRAMES} frames" in line for line in warnings), result.output
    assert f"({written} frames)" in result.output


@pytest.mark.parametrize("extension", [".gif", ".png", ".webp"])
def test_an_animated_image_drives_with_every_frame_for_its_duration(assets_env, data_dir: Path, face_frames: list[np.ndarray], tmp_path: Path, extension: str) -> None:  # type: ignore[no-untyped-def]
    durations = [40, 120, 40, 200, 80, 40]
    animation = cv2.Animation()
    animation.frames = [cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) for frame in face_frames[: len(durations)]]
    animation.durations = durations
    driving = tmp_path / f"moving{extension}"
    assert cv2.imwriteanimation(str(driving), animation)
    output = tmp_path / "out.mp4"
    result = run_cli("animate", "--source", _portrait(data_dir), "--driving", driving, "-o", output, *WARP)
    assert result.exit_code == 0, result.output
    from facereenact.io.animation import constant_rate

    rate, holds = constant_rate(durations)
    info = probe_video(output)
    assert info.frame_count == sum(holds) and abs(info.fps - float(rate)) < 1e-6
    assert abs(info.duration_s - sum(durations) / 1000) < 1 / float(rate)


@pytest.mark.parametrize("output", ["out.mp4", "out.mov", "out.mkv", "frames"])
@pytest.mark.parametrize("still", ["lp_s5.jpg", "one-frame.gif"])
def test_a_still_driving_with_a_moving_output_blames_the_driving(assets_env, data_dir: Path, tmp_path: Path, output: str, still: str) -> None:  # type: ignore[no-untyped-def]
    driving = data_dir / "portraits" / still
    if still.endswith(".gif"):
        driving = tmp_path / still
        animation = cv2.Animation()
        animation.frames = [cv2.imread(str(data_dir / "portraits" / "lp_s5.jpg"))]
        animation.durations = [100]
        assert cv2.imwriteanimation(str(driving), animation)
    result = run_cli("animate", "--source", _portrait(data_dir), "--driving", driving, "-o", tmp_path / output, *WARP)
    line = error_line(result)
    assert result.exit_code == 1
    assert f"the driving {driving} is a still image" in line and "unsupported" not in line, line
    assert not (tmp_path / output).exists()


@pytest.mark.parametrize("output", ["out.png", "out.jpg", "out.webp"])
def test_a_moving_driving_with_a_picture_output_blames_the_driving(assets_env, data_dir: Path, face_clip: Path, tmp_path: Path, output: str) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("animate", "--source", _portrait(data_dir), "--driving", face_clip, "-o", tmp_path / output, *WARP)
    line = error_line(result)
    assert f"the driving {face_clip} moves" in line and "unsupported" not in line, line


@pytest.mark.parametrize(("extension", "size"), [(".png", (1, 1)), (".ppm", (1, 1)), (".pgm", (20, 40)), (".jpg", (31, 300)), (".ras", (2, 2))])
@pytest.mark.parametrize("role", ["--source", "--driving"])
def test_a_picture_too_small_is_named_as_such(assets_env, data_dir: Path, face_clip: Path, tmp_path: Path, extension: str, size: tuple[int, int], role: str) -> None:  # type: ignore[no-untyped-def]
    tiny = tmp_path / f"tiny{extension}"
    image = np.full((size[1], size[0], 3), 99, np.uint8)
    assert cv2.imwrite(str(tiny), image[..., 0] if extension == ".pgm" else image)
    inputs = {"--source": _portrait(data_dir), "--driving": face_clip, role: tiny}
    result = run_cli("animate", *(word for pair in inputs.items() for word in pair), "-o", tmp_path / "out.mp4", *WARP)
    line = error_line(result)
    assert f"is only {size[0]}×{size[1]} pixels" in line and "neither" not in line, line


@pytest.mark.parametrize("command", ["animate", "export", "release"])
def test_a_folder_given_as_a_checkpoint_is_called_a_folder(tmp_path: Path, command: str) -> None:
    folder = tmp_path / "model.safetensors"
    folder.mkdir()
    arguments = {"animate": ["animate", "--model", folder], "export": ["export", folder], "release": ["release", folder, "-o", tmp_path / "r.safetensors"]}[command]
    line = error_line(run_cli(*arguments))
    assert "is not a file but a folder" in line and "does not exist" not in line, line


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start_animation(data_dir: Path, output: Path, assets: Path, frames: int) -> subprocess.Popen[str]:
    env = {**os.environ, "FACEREENACT_ASSETS": str(assets), "PYTHONPATH": str(Path(facereenact.__file__).parents[1])}  # the package under test
    command = [sys.executable, "-m", "facereenact", "animate", "--source", str(_portrait(data_dir)), "--driving", str(data_dir / "clips" / "hdtf_aoc.mp4"),
               "-o", str(output), "--method", "warp", "--max-frames", str(frames)]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_output_to_start(process: subprocess.Popen[str], folder: Path) -> Path:
    """The temporary of the output, once frames are going into it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0]
        parts = [p for p in folder.glob(".out.*.part.mp4") if p.stat().st_size > 0]
        if parts:
            return parts[0]
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the output never started")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_animation_leaves_nothing_once_rerun(assets, data_dir: Path, tmp_path: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM ends animate like Ctrl-C (its temporary deleted, exit 143); SIGKILL cannot be
    handled, and the next run of the same output deletes the temporary it left."""
    inputs = [_portrait(data_dir), data_dir / "clips" / "hdtf_aoc.mp4"]
    before = [_sha(path) for path in inputs]
    output = tmp_path / "out.mp4"
    process = _start_animation(data_dir, output, assets.root, 150)
    part = _wait_for_output_to_start(process, tmp_path)
    process.send_signal(getattr(signal, how))
    said, _ = process.communicate(timeout=60)
    if how == "SIGTERM":
        assert process.returncode == 128 + signal.SIGTERM, said
        assert "terminated" in said and "Traceback" not in said, said
        assert sorted(tmp_path.iterdir()) == [], "no half-written output is left"
    else:
        assert process.returncode == -signal.SIGKILL and part.exists()
        rerun = _start_animation(data_dir, output, assets.root, 2)
        said, _ = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, said
        assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"], "the killed run's temporary is gone"
    assert [_sha(path) for path in inputs] == before
