"""Tests for facereenact.io.video: probing, decoding, H.264 writing with audio, atomicity."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facereenact.errors import InputError, OutputError
from facereenact.io import video
from facereenact.io.image import is_video_file as image_module_is_video_file
from facereenact.io.image import write_image
from facereenact.io.video import (
    FrameStore,
    VideoInfo,
    VideoReader,
    VideoWriter,
    is_video_file,
    iter_frames,
    probe_video,
    read_frames,
)

WIDTH, HEIGHT, FPS, SECONDS = 64, 48, 25, 2
FRAMES = FPS * SECONDS
SAMPLE_RATE = 44100

from tests.conftest import DATA as SHARED_DATA  # noqa: E402


def synthetic_frames(count: int = FRAMES, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Smooth gradients (H.264-friendly) whose blue channel encodes the frame index."""
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = (np.arange(width) * 255 // max(width - 1, 1))[None, None, :]
    frames[..., 1] = (np.arange(height) * 255 // max(height - 1, 1))[None, :, None]
    frames[..., 2] = (np.arange(count) * 200 // max(count - 1, 1))[:, None, None]
    return frames


def make_source_video(path: Path, *, with_audio: bool = True, faststart: bool = False, display_rotation: int = 0) -> np.ndarray:
    """Encode a 2 s 64×48 25 fps H.264 clip (plus a 440 Hz stereo sine) directly with PyAV;
    ``display_rotation``: degrees counter-clockwise a player turns the stored frames."""
    frames = synthetic_frames()
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        if display_rotation:
            video.set_display_rotation(display_rotation)
        audio = container.add_stream("aac", rate=SAMPLE_RATE) if with_audio else None
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None:
            t = np.arange(SAMPLE_RATE * SECONDS) / SAMPLE_RATE
            wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, wave.size, 1024):
                chunk = np.ascontiguousarray(np.stack([wave[start : start + 1024]] * 2))
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = SAMPLE_RATE
                frame.pts = start
                frame.time_base = Fraction(1, SAMPLE_RATE)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return frames


def audio_seconds(path: Path) -> float:
    """Duration of the decoded audio (samples / rate), independent of container metadata."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("source") / "source.mp4"
    make_source_video(path)
    return path


@pytest.fixture(scope="module")
def silent_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("silent") / "silent.mp4"
    make_source_video(path, with_audio=False)
    return path


# --- probing and reading -------------------------------------------------------------------


def test_probe_synthetic_video(source: Path) -> None:
    info = probe_video(source)
    assert isinstance(info, VideoInfo)
    assert info.fps == pytest.approx(25.0)
    assert info.frame_count == FRAMES
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.has_audio
    assert info.duration_s == pytest.approx(2.0, abs=0.05)


def test_probe_video_without_audio(silent_source: Path) -> None:
    assert not probe_video(silent_source).has_audio


def test_probe_counts_packets_when_metadata_has_no_frame_count(tmp_path: Path, source: Path) -> None:
    # Matroska stores no per-stream frame count, so probe_video has to demux.
    path = tmp_path / "copy.mkv"
    with VideoWriter(path, fps=25) as writer:
        writer.write_batch(read_frames(source))
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0
    info = probe_video(path)
    assert info.frame_count == FRAMES
    assert info.duration_s == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_a_display_rotation_is_applied_so_frames_arrive_upright(tmp_path: Path, degrees: int) -> None:
    """Phones store portrait video in landscape with a display rotation; faces must arrive
    upright for the detector, as a player shows them."""
    path = tmp_path / "turned.mp4"
    stored = make_source_video(path, with_audio=False, display_rotation=degrees)
    shown = np.rot90(stored[:3], degrees // 90, axes=(1, 2))
    frames = read_frames(path, max_frames=3)
    assert frames.shape == shown.shape
    assert np.abs(frames.astype(int) - shown.astype(int)).mean() < 3  # H.264 round trip
    info = probe_video(path)
    assert (info.width, info.height) == (shown.shape[2], shown.shape[1])


def test_read_frames_round_trip(source: Path) -> None:
    frames = read_frames(source)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    error = np.abs(frames.astype(int) - synthetic_frames().astype(int))
    assert error.mean() < 4


def test_iter_frames_respects_max_frames(source: Path) -> None:
    frames = list(iter_frames(source, max_frames=7))
    assert len(frames) == 7
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for frame in frames)
    assert read_frames(source, max_frames=1).shape == (1, HEIGHT, WIDTH, 3)
    with pytest.raises(ValueError):
        list(iter_frames(source, max_frames=0))


# --- input errors -----------------------------------------------------------------------------


def test_missing_video(tmp_path: Path) -> None:
    for call in (probe_video, read_frames):
        with pytest.raises(InputError, match="does not exist"):
            call(tmp_path / "nowhere.mp4")


def test_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a folder"):
        probe_video(tmp_path)


def test_empty_video(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    for call in (probe_video, read_frames):
        with pytest.raises(InputError, match="is empty"):
            call(path)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("definitely not a video\n" * 50)
    with pytest.raises(InputError, match=r"notes\.mp4 is not a readable video: \S"):
        probe_video(path)


def test_truncated_mp4(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "cut.mp4"
    path.write_bytes(source.read_bytes()[:2048])
    for call in (probe_video, read_frames):
        with pytest.raises(InputError, match=r"cut\.mp4 is not a readable video: ") as caught:
            call(path)
        assert "\n" not in str(caught.value)


def test_truncated_faststart_mp4(tmp_path: Path) -> None:
    # With the index at the front, the first 2 KB may hold a complete header but no frame data.
    full = tmp_path / "full.mp4"
    make_source_video(full, faststart=True)
    path = tmp_path / "cut.mp4"
    path.write_bytes(full.read_bytes()[:2048])
    with pytest.raises(InputError, match=r"cut\.mp4 (is not a readable video|has no video frames)"):
        probe_video(path)
    with pytest.raises(InputError, match=r"cut\.mp4 (is not a readable video|has no (decodable )?video frames)"):
        read_frames(path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "sound.m4a"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 4096), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = SAMPLE_RATE, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    with pytest.raises(InputError, match="has no video stream"):
        probe_video(path)


def test_video_stream_without_frames(tmp_path: Path) -> None:
    path = tmp_path / "hollow.avi"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("mpeg4", rate=25)
    stream.width, stream.height = WIDTH, HEIGHT
    container.start_encoding()
    container.close()
    with pytest.raises(InputError, match=r"hollow\.avi has no video frames"):
        probe_video(path)
    with pytest.raises(InputError, match="has no decodable video frames"):
        read_frames(path)


def test_still_image_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "still.png"
    write_image(path, synthetic_frames(1)[0])
    with pytest.raises(InputError, match="is an image, not a video"):
        probe_video(path)


# --- writing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 0, 0), (230, 20, 20), (20, 200, 40), (30, 40, 220), (128, 128, 128)])
def test_writer_keeps_flat_colours(tmp_path: Path, colour: tuple[int, int, int]) -> None:
    """The RGB → 4:2:0 conversion uses the range and matrix decoders assume: colours come back."""
    frames = np.empty((3, 32, 48, 3), np.uint8)
    frames[:] = colour
    with VideoWriter(tmp_path / "flat.mp4", fps=25) as writer:
        writer.write_batch(frames)
    back = read_frames(tmp_path / "flat.mp4").astype(int)
    assert np.abs(back - np.array(colour)).max() <= 4


def test_writer_round_trip(tmp_path: Path) -> None:
    frames = synthetic_frames(30)
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=25) as writer:
        writer.write(frames[0])
        writer.write_batch(frames[1:])
    assert writer.frames_written == 30
    info = probe_video(path)
    assert (info.frame_count, info.width, info.height, info.fps) == (30, WIDTH, HEIGHT, 25.0)
    assert not info.has_audio
    back = read_frames(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 4
    # The blue channel encodes the frame index: frames come back in order.
    assert np.all(np.diff(back[:, HEIGHT // 2, WIDTH // 2, 2].astype(int)) >= -3)
    assert files_in(tmp_path) == ["out.mp4"]


def test_writer_output_is_browser_friendly_h264(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=25) as writer:
        writer.write_batch(synthetic_frames(5))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: index before the data


@pytest.mark.parametrize("fps", [30000 / 1001, 29.97, Fraction(30000, 1001)])
def test_ntsc_frame_rate_is_exact(tmp_path: Path, fps: float | Fraction) -> None:
    path = tmp_path / "ntsc.mp4"
    with VideoWriter(path, fps=fps) as writer:
        writer.write_batch(synthetic_frames(10))
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    assert probe_video(path).fps == pytest.approx(30000 / 1001, abs=1e-6)


@pytest.mark.parametrize("fps", [12.5, 24, 60])
def test_other_frame_rates_are_preserved(tmp_path: Path, fps: float) -> None:
    path = tmp_path / "rate.mp4"
    with VideoWriter(path, fps=fps) as writer:
        writer.write_batch(synthetic_frames(6))
    assert probe_video(path).fps == pytest.approx(fps)


@pytest.mark.parametrize("extension", [".mp4", ".mov", ".mkv"])
@pytest.mark.parametrize("count", [FRAMES, 20])
def test_audio_is_copied_and_trimmed_to_the_video(
    tmp_path: Path, source: Path, extension: str, count: int
) -> None:
    path = tmp_path / f"with_audio{extension}"
    with VideoWriter(path, fps=25, audio_from=source) as writer:
        writer.write_batch(read_frames(source, max_frames=count))
    info = probe_video(path)
    assert info.has_audio and info.frame_count == count
    video_seconds = count / 25
    assert audio_seconds(path) == pytest.approx(video_seconds, abs=0.1)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == SAMPLE_RATE
        # The sine survives the round trip (it is not silence).
        samples = np.concatenate([frame.to_ndarray()[0] for frame in container.decode(audio)])
    assert 0.1 < np.abs(samples).max() < 0.5


def test_the_audio_is_encoded_along_the_frames_not_all_after_them(tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[int] = []
    before_finish: list[int] = []
    take, finish = video.AudioFeed._take, video.AudioFeed.finish

    def counted_take(self: video.AudioFeed, frame: av.AudioFrame, total: int) -> None:
        taken.append(frame.samples)
        take(self, frame, total)

    def counted_finish(self: video.AudioFeed, duration: Fraction) -> None:
        before_finish.append(len(taken))
        finish(self, duration)

    monkeypatch.setattr(video.AudioFeed, "_take", counted_take)
    monkeypatch.setattr(video.AudioFeed, "finish", counted_finish)
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=25, audio_from=source) as writer:
        writer.write_batch(read_frames(source, max_frames=FRAMES))
    # Every audio frame that ends before the last video frame went in as the frames did; the end
    # cuts the last one or two to the video's length.
    assert len(before_finish) == 1 and 0 < before_finish[0] and len(taken) - before_finish[0] <= 2
    assert audio_seconds(path) == pytest.approx(FRAMES / 25, abs=0.1)


def test_packed_mono_pcm_audio_is_trimmed_and_stays_mono(tmp_path: Path) -> None:
    # 16-bit PCM decodes to a packed (interleaved) format, unlike AAC's planar float.
    source = tmp_path / "pcm.mkv"
    rate = 16000
    with av.open(str(source), mode="w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width, video.height = WIDTH, HEIGHT
        audio = container.add_stream("pcm_s16le", rate=rate)
        audio.layout = "mono"
        for index, rgb in enumerate(synthetic_frames()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        t = np.arange(rate * SECONDS) / rate
        wave = (8000 * np.sin(2 * np.pi * 300 * t)).astype(np.int16)
        for start in range(0, wave.size, 700):
            frame = av.AudioFrame.from_ndarray(wave[None, start : start + 700], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)

    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=FPS, audio_from=source) as writer:
        writer.write_batch(synthetic_frames(17))
    assert audio_seconds(path) == pytest.approx(17 / FPS, abs=0.1)
    with av.open(str(path)) as container:
        audio_out = container.streams.audio[0].codec_context
        assert (audio_out.name, audio_out.sample_rate, audio_out.layout.name) == ("aac", rate, "mono")


def test_audio_source_without_audio_gives_silent_video(tmp_path: Path, silent_source: Path) -> None:
    path = tmp_path / "silent_out.mp4"
    with VideoWriter(path, fps=25, audio_from=silent_source) as writer:
        writer.write_batch(synthetic_frames(10))
    assert not probe_video(path).has_audio


def test_missing_audio_source_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        VideoWriter(tmp_path / "out.mp4", fps=25, audio_from=tmp_path / "nowhere.mp4")
    assert files_in(tmp_path) == []


def test_odd_size_is_padded_by_edge_replication(tmp_path: Path) -> None:
    frames = np.zeros((4, 33, 31, 3), dtype=np.uint8)
    frames[..., 0] = 60
    frames[:, -1, :, :] = (200, 200, 200)  # bright last row
    frames[:, :, -1, :] = (0, 220, 0)  # green last column
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=25) as writer:
        writer.write_batch(frames)
    info = probe_video(path)
    assert (info.width, info.height) == (32, 34)
    back = read_frames(path).astype(int)
    assert back.shape == (4, 34, 32, 3)
    # The added column repeats the green one and the added row repeats the bright one.
    assert np.abs(back[:, 2:-2, -1] - back[:, 2:-2, -2]).mean() < 12
    assert np.abs(back[:, 2:-2, -1] - np.array([0, 220, 0])).mean() < 25
    assert np.abs(back[:, -1, 2:-2] - np.array([200, 200, 200])).mean() < 25


def test_frames_must_keep_their_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="but the video is"):
        with VideoWriter(tmp_path / "out.mp4", fps=25) as writer:
            writer.write(synthetic_frames(1)[0])
            writer.write(synthetic_frames(1, height=32, width=32)[0])
    assert files_in(tmp_path) == []


def test_exception_inside_with_leaves_nothing(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, fps=25, audio_from=source) as writer:
            writer.write_batch(synthetic_frames(10))
            raise RuntimeError("boom")
    assert files_in(tmp_path) == []


def test_exception_keeps_an_existing_output(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous result")
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, fps=25) as writer:
            writer.write_batch(synthetic_frames(3))
            raise KeyboardInterrupt
    assert path.read_bytes() == b"previous result"
    assert files_in(tmp_path) == ["out.mp4"]


def test_a_failure_in_the_encoder_thread_is_one_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video, "_encode_planes", broken)
    path = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="No space left on device"), VideoWriter(path, fps=25) as writer:
        writer.write_batch(synthetic_frames(40))
    assert files_in(tmp_path) == []


def test_zero_frames_is_an_output_error(tmp_path: Path, source: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(OutputError, match="no frames were written"):
        with VideoWriter(path, fps=25, audio_from=source):
            pass
    assert files_in(tmp_path) == []


def test_unsupported_extension(tmp_path: Path) -> None:
    for name in ("out.avi", "out.gif", "out"):
        with pytest.raises(OutputError, match="unsupported video extension"):
            VideoWriter(tmp_path / name, fps=25)
    assert files_in(tmp_path) == []


def test_missing_output_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        with VideoWriter(tmp_path / "missing" / "out.mp4", fps=25) as writer:
            writer.write_batch(synthetic_frames(2))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "out.mp4", fps=0)
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "out.mp4", fps=float("nan"))
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "out.mp4", fps=25, crf=99)
    with pytest.raises(RuntimeError):
        VideoWriter(tmp_path / "out.mp4", fps=25).write(synthetic_frames(1)[0])
    with pytest.raises(ValueError):
        with VideoWriter(tmp_path / "out.mp4", fps=25) as writer:
            writer.write(synthetic_frames(1)[0].astype(np.float32))
    assert files_in(tmp_path) == []


# --- sniffing ---------------------------------------------------------------------------------


def test_sniffers(tmp_path: Path, source: Path) -> None:
    mkv_named_txt = tmp_path / "clip.txt"
    with VideoWriter(tmp_path / "clip.mkv", fps=25) as writer:
        writer.write_batch(synthetic_frames(3))
    (tmp_path / "clip.mkv").rename(mkv_named_txt)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    still = tmp_path / "still.jpg"
    write_image(still, synthetic_frames(1)[0])

    for sniff in (is_video_file, image_module_is_video_file):
        assert sniff(source)
        assert sniff(str(mkv_named_txt))  # by content, not by name
        for not_video in (text, empty, still, tmp_path / "missing.mp4", tmp_path):
            assert not sniff(not_video)


# --- real data --------------------------------------------------------------------------------


def test_probe_real_clip() -> None:
    clip = SHARED_DATA / "clips" / "hdtf_aoc.mp4"
    if not clip.is_file():
        pytest.skip(f"real test clip not available at {clip.resolve()}")
    info = probe_video(clip)
    assert info.fps == 25.0
    assert (info.width, info.height) == (512, 512)
    assert info.has_audio is True
    assert info.frame_count == 200


# --- one pass: VideoReader and FrameStore -------------------------------------------------


def _decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1)


@pytest.mark.parametrize("max_frames", [None, 7])
def test_a_reader_gives_the_frames_and_the_audio_of_one_pass(tmp_path: Path, source: Path, max_frames: int | None) -> None:
    reader = VideoReader(source)
    assert reader.fps == pytest.approx(25.0) and reader.frame_count == FRAMES and reader.audio is not None
    frames = list(reader.frames(max_frames))
    assert np.array_equal(np.stack(frames), read_frames(source, max_frames))
    with pytest.raises(RuntimeError, match="already been decoded"):
        reader.frames()
    from_pass, from_file = tmp_path / "pass.mp4", tmp_path / "file.mp4"
    for output, audio in ((from_pass, reader.audio), (from_file, source)):
        with VideoWriter(output, fps=25, audio_from=audio) as writer:
            writer.write_batch(np.stack(frames))
    assert np.array_equal(_decoded_audio(from_pass), _decoded_audio(from_file)), "the pass's audio is the file's, to the sample"


def test_a_reader_without_audio_and_one_never_decoded(source: Path, silent_source: Path) -> None:
    assert VideoReader(silent_source).audio is None
    assert VideoReader(source, with_audio=False).audio is None
    with VideoReader(source) as reader:  # closed without decoding: nothing left open or running
        assert reader.frame_count == FRAMES


@settings(max_examples=10, deadline=None)
@given(count=st.integers(1, 12), budget_frames=st.integers(0, 14))
def test_a_frame_store_gives_back_what_it_kept_in_memory_or_spilled(count: int, budget_frames: int) -> None:
    frames = synthetic_frames(count, 16, 24)
    with FrameStore(memory_bytes=budget_frames * frames[0].nbytes) as store:
        for frame in frames:
            store.append(frame)
        assert len(store) == count
        assert np.array_equal(store.stack(0, count), frames)
        assert np.array_equal(store[count - 1], frames[-1])
        with pytest.raises(IndexError):
            store[count]
        with pytest.raises(ValueError, match="the others"):
            store.append(np.zeros((8, 8, 3), np.uint8))
