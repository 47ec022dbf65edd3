"""The command line on good and bad input: one clear line, non-zero exit, nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from facereenact.io.image import write_image
from facereenact.io.video import VideoWriter, read_frames
from tests.cli_inputs import run_cli


def _run(*args: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    return run_cli(*args)  # fails the test if the command changed one of its inputs


def _error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:"), lines[0]
    return lines[0]


@pytest.fixture()
def assets_env(assets, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEREENACT_ASSETS", str(assets.root))
    return assets


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_fit_an_image_writes_arrays_summary_and_overlay(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _run("fit", data_dir / "portraits" / "lp_s12.jpg", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert _leftovers(tmp_path) == ["lp_s12.fit.json", "lp_s12.fit.npz", "lp_s12.overlay.png"]
    summary = json.loads((tmp_path / "lp_s12.fit.json").read_text())
    assert len(summary["faces"]) == 1 and {"yaw", "pitch", "roll"} <= set(summary["faces"][0])
    arrays = np.load(tmp_path / "lp_s12.fit.npz")
    assert arrays["shape"].shape == (1, 40) and arrays["expression"].shape == (1, 10)
    assert arrays["landmarks"].shape == (1, 68, 3) and arrays["rotation"].shape == (1, 3, 3)


def test_fit_a_video_and_render_pncc(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    clip = data_dir / "clips" / "hdtf_aoc.mp4"
    result = _run("fit", clip, "--out", tmp_path, "--max-frames", "12")
    assert result.exit_code == 0, result.output
    arrays = np.load(tmp_path / "hdtf_aoc.fit.npz")
    assert arrays["expression"].shape == (12, 10) and arrays["found"].all()
    assert len(read_frames(tmp_path / "hdtf_aoc.overlay.mp4")) == 12

    output = tmp_path / "pncc.mp4"
    result = _run("pncc", "--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", clip, "-o", output, "--max-frames", "10")
    assert result.exit_code == 0, result.output
    frames = read_frames(output)
    assert frames.shape == (10, 512, 1024, 3)
    assert frames[:, :, 512:].mean() > 10, "the PNCC half is not empty"


def test_not_an_image(assets_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is not a picture")
    out = tmp_path / "out"
    result = _run("fit", fake, "--out", out)
    assert result.exit_code == 1
    assert "neither an image nor a video" in _error_line(result)
    assert not out.exists() or _leftovers(out) == []


def test_image_without_a_face(assets_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    picture = tmp_path / "wall.png"
    write_image(picture, np.tile(np.linspace(0, 255, 200, dtype=np.uint8)[None, :, None], (150, 1, 3)))
    out = tmp_path / "out"
    result = _run("fit", picture, "--out", out)
    assert result.exit_code == 1
    assert "no face" in _error_line(result)
    assert _leftovers(out) == []


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100])
def test_empty_or_corrupt_video(assets_env, tmp_path, content) -> None:  # type: ignore[no-untyped-def]
    video = tmp_path / "clip.mp4"
    video.write_bytes(content)
    out = tmp_path / "out"
    result = _run("fit", video, "--out", out)
    assert result.exit_code == 1
    _error_line(result)
    assert not out.exists() or _leftovers(out) == []


def test_truncated_real_video(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    video = tmp_path / "cut.mp4"
    video.write_bytes((data_dir / "clips" / "hdtf_aoc.mp4").read_bytes()[:3000])
    result = _run("pncc", "--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", video, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 1
    _error_line(result)
    assert _leftovers(tmp_path) == ["cut.mp4"]


def test_unwritable_output(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _run("pncc", "--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", data_dir / "clips" / "hdtf_aoc.mp4",
                  "-o", tmp_path / "missing-folder" / "out.mp4", "--max-frames", "3")  # fmt: skip
    assert result.exit_code == 1
    assert "does not exist" in _error_line(result)
    assert _leftovers(tmp_path) == []


def test_a_video_whose_face_is_lost_for_good_leaves_nothing(assets_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    video = tmp_path / "blank.mp4"
    with VideoWriter(video, 25) as writer:
        writer.write_batch(np.full((10, 64, 64, 3), 128, np.uint8))
    out = tmp_path / "out"
    result = _run("fit", video, "--out", out)
    assert result.exit_code == 1
    assert "no face" in _error_line(result)
    assert _leftovers(out) == []


def test_missing_assets_are_named_at_once_with_the_fetch_command(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.io.assets import MODEL_FILES

    (tmp_path / "3ddfa").mkdir()
    (tmp_path / "3ddfa" / "Model_PAF.pkl").write_bytes(b"present (its content is checked when it is loaded)")
    photo = tmp_path / "photo.png"
    write_image(photo, np.zeros((32, 32, 3), np.uint8))
    result = _run("fit", photo, "--assets", tmp_path, "--out", tmp_path / "o")
    assert result.exit_code == 1
    line = _error_line(result)
    missing = [name for name in MODEL_FILES if name != "3ddfa/Model_PAF.pkl"]
    assert all(name in line for name in missing) and "Model_PAF" not in line, line
    assert f"{len(missing)} files are missing" in line and f"facereenact assets fetch --dir {tmp_path}" in line


def test_corrupt_checkpoint(tmp_path, assets, data_dir) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "assets" / "3ddfa"
    folder.mkdir(parents=True)
    for file in (assets.root / "3ddfa").iterdir():
        (folder / file.name).symlink_to(file)
    (folder.parent / "mediapipe").symlink_to(assets.root / "mediapipe")
    (folder / "mb05_120x120.pth").unlink()
    (folder / "mb05_120x120.pth").write_bytes(b"PK\x03\x04 broken")
    result = _run("fit", data_dir / "portraits" / "lp_s12.jpg", "--assets", folder.parent, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "corrupt" in _error_line(result)


def test_animate_keeps_frame_count_fps_and_audio(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.io.video import probe_video

    output = tmp_path / "animated.mp4"
    portrait = data_dir / "portraits" / "lp_s12.jpg"
    result = _run("animate", "--source", portrait, "--driving", data_dir / "clips" / "hdtf_aoc.mp4", "-o", output, "--max-frames", "12")
    assert result.exit_code == 0, result.output
    info = probe_video(output)
    assert (info.frame_count, info.fps, info.has_audio) == (12, 25.0, True)
    from facereenact.io.image import read_image

    height, width = read_image(portrait).shape[:2]
    # H.264 in yuv420p needs even sides: an odd side gains one replicated pixel.
    assert (info.height, info.width) == (height + height % 2, width + width % 2), "output size = source image size"


def test_animate_crop_only_compare_and_still_image(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.io.image import read_image
    from facereenact.io.video import probe_video

    output = tmp_path / "crop.mp4"
    result = _run("animate", "--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", data_dir / "clips" / "dpe_s.mp4",
                  "-o", output, "--max-frames", "5", "--crop-only", "--compare", "--crop-size", "128")  # fmt: skip
    assert result.exit_code == 0, result.output
    info = probe_video(output)
    assert (info.width, info.height, info.frame_count, info.has_audio) == (384, 128, 5, False)

    still = tmp_path / "still.png"
    result = _run("animate", "--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", data_dir / "portraits" / "lp_s5.jpg", "-o", still)
    assert result.exit_code == 0, result.output
    assert read_image(still).shape == read_image(data_dir / "portraits" / "lp_s12.jpg").shape


def test_animate_source_without_a_face(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    picture = tmp_path / "wall.png"
    write_image(picture, np.full((200, 200, 3), 90, np.uint8))
    result = _run("animate", "--source", picture, "--driving", data_dir / "clips" / "hdtf_aoc.mp4", "-o", tmp_path / "out.mp4")
    assert result.exit_code == 1
    assert "no face found in the source" in _error_line(result)
    assert _leftovers(tmp_path) == ["wall.png"]


def test_animate_source_with_two_faces_picks_the_largest_and_says_so(assets_env, portraits, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import cv2

    big = portraits["lp_s12"]
    small = cv2.resize(portraits["lp_s5"], (big.shape[1] // 2, big.shape[0] // 2))
    pair = np.concatenate([big, np.pad(small, ((0, big.shape[0] - small.shape[0]), (0, 0), (0, 0)))], axis=1)
    source = tmp_path / "two.png"
    write_image(source, pair)
    result = _run("animate", "--source", source, "--driving", data_dir / "clips" / "hdtf_aoc.mp4", "-o", tmp_path / "out.mp4", "--max-frames", "3")
    assert result.exit_code == 0, result.output
    assert "2 faces" in result.output and "--face-index" in result.output
    result = _run("animate", "--source", source, "--driving", data_dir / "clips" / "hdtf_aoc.mp4", "-o", tmp_path / "o2.mp4", "--face-index", "5")
    assert result.exit_code == 1
    assert "has 2 face(s)" in _error_line(result)


def test_animate_warns_once_when_the_driving_face_is_lost(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from facereenact.io.video import iter_frames

    frames = np.stack(list(iter_frames(data_dir / "clips" / "hdtf_aoc.mp4", 16)))
    frames[5:9] = 0
    driving = tmp_path / "gap.mp4"
    with VideoWriter(driving, 25) as writer:
        writer.write_batch(frames)
    result = _run("animate", "--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", driving, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert result.output.count("lost in frames 5–8") == 1


def test_animate_zero_frame_video(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import av

    driving = tmp_path / "empty.avi"
    container = av.open(str(driving), "w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height = 64, 64
    container.start_encoding()
    container.close()
    result = _run("animate", "--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", driving, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 1
    _error_line(result)
    assert _leftovers(tmp_path) == ["empty.avi"]


def test_animate_method_choices(assets_env, data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--method warp needs no model and refuses one; the default (neural) uses the shipped model,
    and a broken --model is one error line with no output left behind."""
    common = ("--source", data_dir / "portraits" / "lp_s12.jpg", "--driving", data_dir / "clips" / "dpe_s.mp4", "--max-frames", "2", "--crop-only")
    result = _run("animate", *common, "--method", "warp", "--model", tmp_path / "x.safetensors", "-o", tmp_path / "a.mp4")
    assert "--model" in _error_line(result)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    result = _run("animate", *common, "--model", broken, "-o", tmp_path / "b.mp4")
    assert "is not a safetensors file" in _error_line(result)
    assert not (tmp_path / "b.mp4").exists()
    result = _run("animate", *common, "--method", "warp", "-o", tmp_path / "c.mp4")
    assert result.exit_code == 0, result.output
    result = _run("animate", *common, "-o", tmp_path / "d.mp4")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.mp4").stat().st_size > 0 and (tmp_path / "d.mp4").stat().st_size > 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("animate", "--crop-size", "2000"), "error: --crop-size 2000 is outside 64–1024"),
        (("animate", "--max-frames", "0"), "error: --max-frames 0 is below 1"),
        (("animate", "--expression-scale", "5"), "error: --expression-scale 5.0 is outside 0.0–2.0"),
        (("animate", "--pose-scale", "-1"), "error: --pose-scale -1.0 is outside 0.0–2.0"),
        (("animate", "--pose-scale", "nan"), "error: --pose-scale nan is outside 0.0–2.0"),
        (("animate", "--regions", "eyes,nose"), "error: --regions nose is not one of eyes, gaze, brows, mouth"),
        (("animate", "--regions", ","), "error: --regions , names no region"),
        (("animate", "--expression-only", "--pose-only"), "error: --expression-only and --pose-only exclude each other"),
        (("animate", "--method", "warp", "--model", "x.safetensors"), "error: --model is a neural checkpoint"),
        (("prepare", "videos", "prepared", "--address", "auto"), "error: --address names a Ray cluster"),
    ],
)
def test_options_are_named_as_flags_in_errors(arguments: tuple[str, ...], message: str) -> None:
    """The request and the lower layers name options by field; the command line words them as flags."""
    result = _run(*arguments)
    assert result.exit_code == 1 and _error_line(result).startswith(message), result.output


def test_version() -> None:
    from facereenact import __version__

    result = _run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"facereenact {__version__}"
