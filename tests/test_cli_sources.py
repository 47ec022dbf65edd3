"""``animate --source VIDEO`` and ``--face-index all`` on the command line: what they write and
say, and their refusals as one ``error:`` line with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facereenact.io.image import read_image, write_image
from facereenact.io.video import VideoWriter, probe_video
from tests.cli_inputs import run_cli


@pytest.fixture()
def assets_env(assets, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEREENACT_ASSETS", str(assets.root))
    return assets


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def test_a_source_video_is_re_acted_at_its_own_rate(assets_env, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    output = tmp_path / "v2v.mp4"
    result = run_cli(
        "animate", "--source", data_dir / "clips" / "pcavs_00098.mp4", "--driving", data_dir / "clips" / "stk_trump.mp4",
        "-o", output, "--method", "warp", "--crop-only", "--max-frames", "5", "--regions", "mouth", "--length", "loop",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "(5 frames)" in result.output
    assert result.output.count("resampled") == 1, result.output
    info = probe_video(output)
    assert info.frame_count == 5 and info.fps == pytest.approx(25.0)


def test_a_source_video_without_a_face_is_one_error_line(assets_env, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blank = tmp_path / "wall.mp4"
    with VideoWriter(blank, 25) as writer:
        for _ in range(4):
            writer.write(np.full((96, 96, 3), 128, np.uint8))
    result = run_cli("animate", "--source", blank, "--driving", data_dir / "clips" / "hdtf_aoc.mp4", "-o", tmp_path / "out.mp4", "--method", "warp")
    assert result.exit_code == 1
    assert "no face found in any frame" in _error_line(result.output) and "source video wall.mp4" in result.output
    assert not (tmp_path / "out.mp4").exists()


def test_source_audio_for_a_photo_is_refused_naming_the_flag(assets_env, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(
        "animate", "--source", data_dir / "portraits" / "lp_s1.jpg", "--driving", data_dir / "clips" / "hdtf_aoc.mp4",
        "-o", tmp_path / "out.mp4", "--audio", "source",
    )  # fmt: skip
    assert result.exit_code == 1
    assert _error_line(result.output).startswith("error: --audio source is for a source video")


def test_every_face_of_a_pair_and_a_face_beyond_them(assets_env, data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import cv2

    left, right = (read_image(data_dir / "portraits" / f"{name}.jpg") for name in ("lp_s1", "lp_s5"))
    pair = np.concatenate([cv2.resize(p, (300, 300), interpolation=cv2.INTER_AREA) for p in (left, right)], axis=1)
    source = tmp_path / "pair.png"
    write_image(source, pair)
    output = tmp_path / "both.mp4"
    result = run_cli("animate", "--source", source, "--driving", data_dir / "clips" / "hdtf_aoc.mp4", "-o", output, "--method", "warp", "--max-frames", "3", "--face-index", "all")
    assert result.exit_code == 0, result.output
    assert "animating faces 0, 1" in result.output
    info = probe_video(output)
    assert (info.width, info.height) == (600, 300) and info.frame_count == 3
    result = run_cli("animate", "--source", source, "--driving", data_dir / "clips" / "hdtf_aoc.mp4", "-o", tmp_path / "o.mp4", "--face-index", "0,7")
    assert result.exit_code == 1
    assert _error_line(result.output) == "error: --face-index 7 asked for, but the source image has 2 face(s)"
