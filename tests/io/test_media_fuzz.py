"""Hostile media for the readers: videos cut short or damaged at any point, animated images of
any length and timing, pictures too small in every format, junk under media names. Each gives
the frames that can be read with a warning naming what was left out, or one InputError."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from facereenact.errors import InputError
from facereenact.io.image import MIN_IMAGE_SIDE
from facereenact.io.media import open_media
from facereenact.io.video import VideoReader, VideoWriter

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FRAMES = 60


def _colour(index: int) -> np.ndarray:
    """A frame whose flat colour tells its index (robust to a GIF's palette)."""
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[..., 0] = (index * 37) % 256
    frame[..., 1] = 255 - (index * 53) % 256
    frame[..., 2] = 128
    return frame


@pytest.fixture(scope="module")
def whole_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Noise videos of FRAMES frames (noise: every frame costs bytes, so a cut loses frames)."""
    folder = tmp_path_factory.mktemp("whole")
    rng = np.random.default_rng(1)
    made = {}
    for extension in (".mp4", ".mov", ".mkv"):
        path = folder / f"clip{extension}"
        with VideoWriter(path, 25) as writer:
            for _ in range(FRAMES):
                writer.write(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        made[extension] = path.read_bytes()
    return made


def _read(path: Path) -> tuple[int, list[str]]:
    """(frames decoded, warnings) of ``path`` read the way the commands read a driving video."""
    media = open_media(path)
    assert isinstance(media, VideoReader)
    with media as reader:
        count = sum(1 for _ in reader.frames())
    return count, reader.warnings


@FUZZ
@given(extension=st.sampled_from([".mp4", ".mov", ".mkv"]), fraction=st.floats(0.03, 0.97))
@example(extension=".mp4", fraction=0.3)
def test_a_video_cut_short_says_how_much_was_read(whole_videos: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, extension: str, fraction: float) -> None:
    path = tmp_path_factory.mktemp("cut") / f"cut{extension}"
    data = whole_videos[extension]
    path.write_bytes(data[: int(len(data) * fraction)])
    try:
        count, warnings = _read(path)
    except InputError as error:  # nothing decodable at all: one line saying so
        assert "\n" not in str(error)
        return
    assert count < FRAMES
    assert len(warnings) == 1, warnings
    assert f"{count} of the {FRAMES} frames" in warnings[0] and str(path) in warnings[0]


@FUZZ
@given(extension=st.sampled_from([".mp4", ".mov", ".mkv"]), start=st.floats(0.1, 0.9), length=st.integers(16, 4000), seed=st.integers(0, 2**16))
def test_damaged_data_mid_stream_stops_with_what_was_read(
    whole_videos: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory, extension: str, start: float, length: int, seed: int
) -> None:
    path = tmp_path_factory.mktemp("damaged") / f"damaged{extension}"
    data = bytearray(whole_videos[extension])
    at = int(len(data) * start)
    data[at : at + length] = np.random.default_rng(seed).integers(0, 256, len(data[at : at + length]), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    try:
        count, warnings = _read(path)
    except InputError as error:
        assert "\n" not in str(error)
        return
    if count < FRAMES - 1:
        assert warnings and all(str(path) in line for line in warnings), (count, warnings)


@FUZZ
@given(count=st.integers(1, 30), fps=st.sampled_from([Fraction(25), Fraction(30000, 1001), Fraction(24), Fraction(60)]), extension=st.sampled_from([".mp4", ".mov", ".mkv"]))
def test_a_whole_video_reads_whole_without_a_warning(tmp_path_factory: pytest.TempPathFactory, count: int, fps: Fraction, extension: str) -> None:
    path = tmp_path_factory.mktemp("whole") / f"clip{extension}"
    with VideoWriter(path, fps) as writer:
        for index in range(count):
            writer.write(_colour(index))
    assert _read(path) == (count, [])


def test_no_example_clip_is_taken_for_cut_short(data_dir: Path) -> None:
    """Real clips' headers (an edit list hiding frames the count includes, durations a frame
    off, Matroska tags) never make a whole file look cut short."""
    from tests.conftest import clip_paths

    for clip in clip_paths(data_dir):
        count, warnings = _read(clip)
        assert warnings == [], (clip.name, count, warnings)


def _animation(path: Path, frames: list[np.ndarray], durations: list[int]) -> None:
    animation = cv2.Animation()
    animation.frames = [cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) for frame in frames]
    animation.durations = durations
    assert cv2.imwriteanimation(str(path), animation)


DELAYS = st.sampled_from([0, 10, 20, 30, 33, 40, 50, 70, 100, 150, 1000])


@FUZZ
@given(extension=st.sampled_from([".gif", ".png", ".webp"]), durations=st.lists(DELAYS, min_size=2, max_size=8))
def test_an_animated_image_is_every_frame_for_its_own_duration(tmp_path_factory: pytest.TempPathFactory, extension: str, durations: list[int]) -> None:
    path = tmp_path_factory.mktemp("anim") / f"moving{extension}"
    frames = [_colour(i) for i in range(len(durations))]
    _animation(path, frames, durations)
    from facereenact.io.animation import AnimationReader, constant_rate

    media = open_media(path)
    assert isinstance(media, AnimationReader), "an animated image is not one still frame"
    with media as reader:
        read = list(reader.frames())
    assert len(read) == len(frames) and reader.warnings == []
    for got, wanted in zip(read, frames):  # the same frames, in order (a GIF's palette dithers)
        assert np.abs(got.mean((0, 1)) - wanted.mean((0, 1))).max() < 8
    _, stored = cv2.imreadanimation(str(path))  # the durations the file holds (a GIF's are centiseconds)
    assert reader.holds == constant_rate([int(d) for d in stored.durations])[1] and len(reader.holds) == len(frames)


@settings(max_examples=200, deadline=None)
@given(durations=st.lists(st.integers(0, 5000), min_size=1, max_size=40))
def test_the_constant_rate_keeps_every_frame_and_the_timing(durations: list[int]) -> None:
    from facereenact.io.animation import MAX_RATE, constant_rate

    rate, holds = constant_rate(durations)
    shown = [d if d > 10 else 100 for d in durations]  # browsers show delays of 10 ms or less as 100 ms
    assert 0 < rate <= MAX_RATE and len(holds) == len(durations) and min(holds) >= 1
    wanted = Fraction(sum(shown), 1000) * rate  # output frames the whole animation lasts
    if math.gcd(*shown) * MAX_RATE >= 1000:
        assert sum(holds) == wanted, "the durations share a step of the rate: exact"
    else:  # each frame rounded to whole steps, a frame shorter than one step taking one
        assert abs(sum(holds) - wanted) <= Fraction(1, 2) + sum(1 for d in shown if d * rate < 1000)


@pytest.mark.parametrize("extension", [".gif", ".png", ".webp"])
def test_a_one_frame_animation_format_is_a_still(tmp_path: Path, extension: str) -> None:
    path = tmp_path / f"still{extension}"
    _animation(path, [_colour(3)], [100])
    assert isinstance(open_media(path), np.ndarray)


@pytest.mark.parametrize("extension", [".gif", ".png", ".webp"])
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_an_animation_cut_short_is_read_as_far_as_it_goes_or_refused(tmp_path: Path, extension: str, fraction: float) -> None:
    whole = tmp_path / f"whole{extension}"
    rng = np.random.default_rng(0)
    _animation(whole, [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(12)], [40] * 12)
    cut = tmp_path / f"cut{extension}"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    try:
        media = open_media(cut)
    except InputError as error:
        assert "\n" not in str(error) and str(cut) in str(error)
        return
    if isinstance(media, np.ndarray):
        return  # the decoder made one picture of what is there
    with media as reader:
        count = len(list(reader.frames()))
    assert count < 12 and reader.warnings and f"{count} of the 12 frames" in reader.warnings[0]


#: Still formats OpenCV writes, some recognised by their first bytes and some only by FFmpeg.
STILL_FORMATS = [".png", ".jpg", ".bmp", ".webp", ".tiff", ".gif", ".ppm", ".pgm", ".pnm", ".ras"]


def _still(path: Path, width: int, height: int) -> None:
    image = np.full((height, width, 3), 90, np.uint8)
    if path.suffix == ".gif":
        _animation(path, [image], [100])
    elif path.suffix == ".pgm":
        assert cv2.imwrite(str(path), image[..., 0])
    else:
        assert cv2.imwrite(str(path), image), path


@FUZZ
@given(extension=st.sampled_from(STILL_FORMATS), width=st.integers(1, 80), height=st.integers(1, MIN_IMAGE_SIDE - 1))
@example(extension=".ppm", width=1, height=1)
def test_a_picture_too_small_says_so_in_any_format(tmp_path_factory: pytest.TempPathFactory, extension: str, width: int, height: int) -> None:
    path = tmp_path_factory.mktemp("small") / f"tiny{extension}"
    _still(path, width, height)
    with pytest.raises(InputError) as refused:
        open_media(path)
    message = str(refused.value)
    assert "pixels" in message and "neither" not in message, message


@pytest.mark.parametrize("extension", STILL_FORMATS)
def test_a_picture_in_any_format_opens(tmp_path: Path, extension: str) -> None:
    path = tmp_path / f"picture{extension}"
    _still(path, 40, 36)
    image = open_media(path)
    assert isinstance(image, np.ndarray) and image.shape == (36, 40, 3)


def test_a_video_too_small_says_so(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
    for _ in range(3):
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    with pytest.raises(InputError, match="only 16×16 pixels"):
        open_media(path)


@FUZZ
@given(content=st.binary(min_size=1, max_size=3000), extension=st.sampled_from([".jpg", ".png", ".gif", ".webp", ".mp4", ".mov", ".mkv", ".avi", ".ppm", ""]))
@example(content=b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, extension=".mp4")
@example(content=b"GIF89a\x40\x00\x30\x00", extension=".gif")
def test_junk_under_any_media_name_is_one_line(tmp_path_factory: pytest.TempPathFactory, content: bytes, extension: str) -> None:
    path = tmp_path_factory.mktemp("junk") / f"junk{extension}"
    path.write_bytes(content)
    try:
        media = open_media(path)
    except InputError as error:
        assert "\n" not in str(error)
        return
    if not isinstance(media, np.ndarray):  # whatever FFmpeg made of it must read or refuse cleanly
        with media as reader:
            try:
                list(reader.frames())
            except InputError as error:
                assert "\n" not in str(error)
