"""Reading and writing videos with PyAV (FFmpeg), frames as RGB ``uint8`` arrays.

Outputs are H.264 / yuv420p with the index at the front of the file (``+faststart``) so that
they play in browsers, and are written atomically: a failed or interrupted run leaves nothing
at the output path.
"""

from __future__ import annotations

import math
import os
import queue
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import IO

import av
import av.error
import cv2
import numpy as np

from facereenact.errors import InputError, OutputError
from facereenact.io.atomic import atomic_output
from facereenact.io.limits import MIN_IMAGE_SIDE, FrameSizeError
from facereenact.io.prefetch import prefetch

_PathLike = str | os.PathLike[str]

_CONTAINER_FORMATS: dict[str, str] = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
"""Output extension -> FFmpeg muxer name."""
#: The extensions :class:`VideoWriter` writes.
VIDEO_EXTENSIONS = tuple(_CONTAINER_FORMATS)

#: Frames larger than 4K UHD are encoded with a shorter look-ahead and queue, which bound the
#: encoder's memory (a 36-megapixel frame is 54 MB in 4:2:0, and x264 keeps tens of them).
HUGE_FRAME_PIXELS = 3840 * 2160
HUGE_FRAME_LOOKAHEAD = 3

_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
"""Sample rates the AAC encoder accepts; other sources are resampled to 48 kHz."""


@dataclass(frozen=True)
class VideoInfo:
    """What the pipeline needs to know about an input video before decoding it. ``width`` and
    ``height`` are those of the frames as shown (and as :func:`iter_frames` yields them)."""

    fps: float
    frame_count: int
    width: int
    height: int
    has_audio: bool
    duration_s: float


def probe_video(path: _PathLike) -> VideoInfo:
    """Describe a video without decoding it all.

    ``frame_count`` comes from the container's metadata when it has one, otherwise packets are
    counted by demuxing (no decoding). The first frame is decoded, so a file whose header is fine
    but whose data is missing or corrupt is refused here rather than halfway through a run.

    Raises:
        InputError: missing, unreadable or corrupt file, a still image, no video stream, or no
            video frames.
    """
    file = Path(path)
    container = _open_input(file)
    try:
        stream = _video_stream(container, file)
        has_audio = len(container.streams.audio) > 0
        packet_count = 0
        first_decoded = False
        turns = 0
        try:
            for packet in container.demux(stream):
                if packet.size > 0:
                    packet_count += 1
                if not first_decoded:
                    decoded = packet.decode()
                    first_decoded = len(decoded) > 0
                    turns = _quarter_turns(decoded[0]) if first_decoded else 0
                if first_decoded and stream.frames > 0:
                    break  # the metadata has the count; no need to read further
        except av.error.FFmpegError as error:
            raise InputError(f"{file} is not a readable video: {_reason(error)}") from None
        frame_count = stream.frames if stream.frames > 0 else packet_count
        if frame_count <= 0 or packet_count == 0:
            raise InputError(f"{file} has no video frames")
        if not first_decoded:
            raise InputError(f"{file} is not a readable video: none of its frames could be decoded")
        width = stream.codec_context.width
        height = stream.codec_context.height
        if turns % 2:  # shown turned a quarter: the frames arrive upright (see iter_frames)
            width, height = height, width
        duration_s = 0.0
        if stream.duration and stream.time_base:
            duration_s = float(stream.duration * stream.time_base)
        fps = _stream_fps(stream, frame_count, duration_s)
        if fps is None:
            raise InputError(f"{file} is not a readable video: it has no frame rate")
        if duration_s <= 0:
            duration_s = frame_count / fps
        return VideoInfo(
            fps=fps,
            frame_count=frame_count,
            width=width,
            height=height,
            has_audio=has_audio,
            duration_s=duration_s,
        )
    finally:
        container.close()


@dataclass(frozen=True)
class CountedLength:
    """A video's length as its packets show it, counted up to a bound (see :func:`count_length`)."""

    frames: int
    seconds: float
    #: True when counting stopped because ``frames`` or ``seconds`` passed the bound: the file
    #: holds more than that, however much more.
    over: bool


def count_length(path: _PathLike, max_frames: int, max_seconds: float) -> CountedLength:
    """Count a video's frames and the time they span by reading its packets (no decoding),
    stopping as soon as either passes its bound. Unlike :func:`probe_video`, it does not trust
    the container's declared duration or frame count, so a forged header cannot pass a limit;
    the work is bounded by ``max_frames`` packets.

    Raises:
        InputError: as :func:`probe_video`, for a file that is not a readable video.
    """
    file = Path(path)
    container = _open_input(file)
    try:
        stream = _video_stream(container, file)
        time_base = stream.time_base
        frames, spanned = 0, 0.0
        first = last = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                frames += 1
                if packet.pts is not None and time_base is not None:
                    stamp = float(packet.pts * time_base)
                    first = stamp if first is None else min(first, stamp)
                    last = stamp if last is None else max(last, stamp)
                    spanned = last - first
                if frames > max_frames or spanned > max_seconds:
                    return CountedLength(frames, spanned, over=True)
        except av.error.FFmpegError as error:
            raise InputError(f"{file} is not a readable video: {_reason(error)}") from None
        return CountedLength(frames, spanned, over=False)
    finally:
        container.close()


def iter_frames(path: _PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield decoded frames as (H, W, 3) ``uint8`` RGB arrays, at most ``max_frames`` of them.

    Decoding is multi-threaded and runs a few frames ahead in a background thread. Frames come
    upright: a display rotation in the file (portrait video from a phone) is applied. Every frame
    has the size of the first one (a mid-stream resolution change is rescaled), so the frames can
    always be stacked.

    Raises:
        InputError: the file cannot be opened, a frame cannot be decoded (the message names the
            frame index), or no frame was decoded at all.
        ValueError: ``max_frames`` is smaller than 1.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    yield from prefetch(_decode_frames(Path(path), max_frames))


class VideoReader:
    """One open video, decoded once: frames for whoever needs them and, from the same pass, the
    audio for the output (:attr:`audio`).

    Opening reads the header only (frame rate, an estimate of the frame count, whether there
    is audio); :meth:`frames` then decodes, once. Use as a context manager, or consume
    :meth:`frames` to the end (the file is closed when the pass ends).

    Raises:
        InputError: missing, unreadable or empty file, a still image, no video stream, no frame
            rate; later, from :meth:`frames`, an undecodable frame or no frames at all.
    """

    def __init__(self, path: _PathLike, with_audio: bool = True):
        self.path = Path(path)
        self._container: av.container.InputContainer | None = _open_input(self.path)
        #: What the pass over the file had to leave out, one line each (after :meth:`frames`).
        self.warnings: list[str] = []
        #: A video's frames each last one frame at :attr:`fps` (an animated image's may not).
        self.holds: list[int] | None = None
        try:
            stream = _video_stream(self._container, self.path)
            _check_frame_size(self.path, stream.codec_context.width, stream.codec_context.height)
            duration_s = _stream_seconds(stream)
            fps = _stream_fps(stream, stream.frames, duration_s)
            if fps is None:
                raise InputError(f"{self.path} is not a readable video: it has no frame rate")
            self.fps: float = fps
            self._declared = _declared_frames(self._container, stream, fps)
            #: The frames the file says it has (its frame count, or its duration times its rate,
            #: whichever is smaller; 0: unknown).
            self.frame_count: int = self._declared.count
            self.audio: AudioTrack | None = AudioTrack.of(self._container, self.path) if with_audio else None
        except BaseException:
            self.close()
            raise

    def frames(self, max_frames: int | None = None) -> Iterator[np.ndarray]:
        """The frames as :func:`iter_frames` gives them; a reader decodes its file only once."""
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {max_frames}")
        container, self._container = self._container, None
        if container is None:
            raise RuntimeError(f"{self.path} has already been decoded")
        return prefetch(_decode_frames(self.path, max_frames, container, self.audio, self.fps, self._declared, self.warnings.append))

    def close(self) -> None:
        """Close the file if its frames were never asked for (a started pass closes it itself)."""
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameStore:
    """Decoded frames kept for a second look, so a video need not be decoded twice: in memory up
    to ``memory_bytes``, the rest in an unnamed temporary file (gone when closed)."""

    def __init__(self, memory_bytes: int = 1 << 30):
        self.memory_bytes = memory_bytes
        self._in_memory: list[np.ndarray] = []
        self._spill: IO[bytes] | None = None
        self._shape: tuple[int, ...] | None = None
        self._count = 0

    def append(self, frame: np.ndarray) -> None:
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            raise ValueError(f"frame {self._count} is {frame.shape}, the others {self._shape}")
        if self._spill is None and (len(self._in_memory) + 1) * frame.nbytes > self.memory_bytes:
            self._spill = tempfile.TemporaryFile(prefix="facereenact-frames-")
        if self._spill is not None:
            self._spill.seek(0, os.SEEK_END)
            self._spill.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        else:
            self._in_memory.append(frame)
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < self._count:
            raise IndexError(index)
        if index < len(self._in_memory):
            return self._in_memory[index]
        assert self._spill is not None and self._shape is not None
        size = int(np.prod(self._shape))
        self._spill.seek((index - len(self._in_memory)) * size)
        return np.frombuffer(self._spill.read(size), dtype=np.uint8).reshape(self._shape)

    def stack(self, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) as one (T, H, W, 3) array."""
        return np.stack([self[i] for i in range(start, stop)])

    def close(self) -> None:
        self._in_memory.clear()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def __enter__(self) -> FrameStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Declared:
    """How many frames a file says it has (0: it does not say), and how many fewer a complete
    file may still decode to (a count read from the duration of every stream is rough)."""

    count: int
    slack: int

    def shortfall(self, file: Path, decoded: int) -> str | None:
        """The warning for a pass that ended after ``decoded`` frames; None when that is all."""
        if decoded >= self.count - self.slack:
            return None
        return f"{file} ends after {decoded} of the {self.count} frames it declares (cut short or damaged): only those {decoded} were used"


def _declared_frames(container: av.container.InputContainer, stream: av.VideoStream, fps: float) -> _Declared:
    """The frame count the header gives: the stream's own count and duration (the smaller of the
    two: an edit list can hide frames the count includes), else the container's duration, which
    also spans the other streams and is trusted to within a second."""
    counts = [stream.frames] if stream.frames > 0 else []
    seconds = _stream_seconds(stream)
    if seconds > 0:
        counts.append(round(seconds * fps))
    if counts:
        count = min(counts)
        return _Declared(count, max(1, count // 100))
    if container.duration and container.duration > 0:
        return _Declared(round(container.duration / av.time_base * fps), max(1, round(fps)))
    return _Declared(0, 0)


def _stream_seconds(stream: av.VideoStream) -> float:
    """The stream's duration: its header field, else the DURATION tag Matroska files carry."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return 0.0
    return 0.0


def _decode_frames(
    file: Path,
    max_frames: int | None,
    container: av.container.InputContainer | None = None,
    audio: AudioTrack | None = None,
    fps: float = 25.0,
    declared: _Declared | None = None,
    warn: Callable[[str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Decode ``container`` (opened here when None) and close it when done. With ``audio``, the
    audio packets met on the way are decoded into it, then as much more as the frames' duration
    needs: the soundtrack comes from the same pass over the file.

    With ``warn``, a file that ends before the frames ``declared`` (cut short), or whose data
    cannot be read past some frame (damaged), yields the frames before and says so through
    ``warn``; without it, damage is an :class:`InputError`. A file with no decodable frame at
    all is always an error."""
    container = container if container is not None else _open_input(file)
    try:
        stream = _video_stream(container, file)
        stream.thread_type = "AUTO"
        audio_stream = container.streams.audio[0] if audio is not None else None
        index = 0
        size: tuple[int, int] | None = None
        packets: Iterator[av.Packet] = container.demux(stream, audio_stream) if audio_stream is not None else container.demux(stream)
        exhausted = False
        damage: str | None = None
        audio_damage: str | None = None
        while max_frames is None or index < max_frames:
            try:
                packet = next(packets)
            except StopIteration:
                exhausted = True
                break
            except av.error.FFmpegError as error:
                damage = f"could not read frame {index}: {_reason(error)}"
                break
            if audio is not None and packet.stream is audio_stream:
                if audio_damage is None:
                    try:
                        audio.decode_packet(packet)
                    except InputError:
                        if warn is None:
                            raise
                        # the soundtrack stops here; the frames go on as far as they can be read
                        audio_damage = f"{file}: its audio could not be read past {audio.seconds:.2f} s: the rest is silent"
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                damage = f"could not decode frame {index}: {_reason(error)}"
                break
            for frame in frames:
                if size is None:
                    size = (frame.width, frame.height)
                    rgb = frame.to_ndarray(format="rgb24")
                else:
                    rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                yield _upright(rgb, frame)
                index += 1
                if max_frames is not None and index >= max_frames:
                    break
        if damage is not None and (warn is None or index == 0):
            raise InputError(f"{file}: {damage}")
        if index == 0:
            raise InputError(f"{file} has no decodable video frames")
        if warn is not None:
            if damage is not None:
                of = f" of the {declared.count} it declares" if declared is not None and declared.count > index else ""
                warn(f"{file} is damaged after frame {index}{of} ({damage}): only the {index} frames before were used")
            elif exhausted and declared is not None and (shortfall := declared.shortfall(file, index)) is not None:
                warn(shortfall)
            if audio_damage is not None:
                warn(audio_damage)
        if audio is not None and audio_stream is not None and not exhausted and damage is None and audio_damage is None:
            audio.read_until(container.demux(audio_stream), index / fps)  # stopped early: the soundtrack's rest
    finally:
        container.close()


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that show ``frame`` as meant: phones store portrait video
    in landscape with a display rotation, which FFmpeg decoders do not apply."""
    return round(frame.rotation / 90) % 4


def _upright(rgb: np.ndarray, frame: av.VideoFrame) -> np.ndarray:
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def read_frames(path: _PathLike, max_frames: int | None = None) -> np.ndarray:
    """All frames (or the first ``max_frames``) as one (T, H, W, 3) ``uint8`` RGB array."""
    return np.stack(list(iter_frames(path, max_frames=max_frames)))


def is_video_file(path: _PathLike) -> bool:
    """True if PyAV opens ``path`` with at least one video stream and it is not a still image.

    Only the container header is read. Never raises.
    """
    try:
        file = Path(path)
        if not file.is_file() or file.stat().st_size == 0:
            return False
        with av.open(str(file), mode="r") as container:
            return len(container.streams.video) > 0 and not _is_still_image(container)
    except Exception:  # a sniffer answers "no" rather than failing
        return False


class VideoWriter:
    """Write RGB frames to an H.264 video, optionally with the audio of another file.

    Use as a context manager::

        with VideoWriter("out.mp4", fps=info.fps, audio_from="driving.mp4") as writer:
            for frame in frames:
                writer.write(frame)

    * The container follows the extension: ``.mp4``, ``.mov`` or ``.mkv``.
    * Video is ``libx264``, ``yuv420p`` (browser-compatible), quality set by ``crf``; the
      ``preset`` trades file size for encoding speed (``veryfast`` keeps encoding from being the
      slowest stage of a reenactment at the same quality).
    * yuv420p needs an even width and height: an odd-sized frame gets one extra column and/or
      row copied from its last one (edge replication), so the output may be 1 pixel larger.
    * ``fps`` is stored as a fraction; values near the NTSC rates (23.976, 29.97, 59.94) become
      exactly 24000/1001, 30000/1001 and 60000/1001.
    * If ``audio_from`` has an audio stream, it is re-encoded to AAC after the last frame and cut
      to the duration of the frames actually written (so a ``--max-frames`` preview is not
      padded by the rest of the soundtrack). Mono stays mono; anything else becomes stereo.
    * Everything goes to a temporary file beside ``path`` that is renamed onto ``path`` only when
      the ``with`` block ends normally and at least one frame was written; otherwise it is
      deleted and ``path`` is left as it was.
    """

    def __init__(
        self,
        path: _PathLike,
        fps: float | Fraction,
        audio_from: _PathLike | AudioTrack | None = None,
        crf: int = 20,
        preset: str = "veryfast",
    ) -> None:
        self.path = Path(path)
        muxer = _CONTAINER_FORMATS.get(self.path.suffix.lower())
        if muxer is None:
            raise OutputError(
                f"cannot write {self.path}: unsupported video extension "
                f"{self.path.suffix or '(none)'!r}; use one of {', '.join(_CONTAINER_FORMATS)}"
            )
        if not (isinstance(fps, Fraction) or math.isfinite(fps)) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be between 0 and 51, got {crf}")
        self._muxer = muxer
        self.rate = _rate_fraction(fps)
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._audio = audio_from if isinstance(audio_from, AudioTrack) else AudioTrack.open(Path(audio_from)) if audio_from is not None else None
        self._stack: ExitStack | None = None
        self._container: av.container.OutputContainer | None = None
        self._video: av.VideoStream | None = None
        self._size: tuple[int, int] | None = None  # (height, width) of the frames given
        self._encoder: _BackgroundEncoder | None = None

    def __enter__(self) -> VideoWriter:
        if self._stack is not None:
            raise RuntimeError("this VideoWriter is already open")
        stack = ExitStack()
        tmp = stack.enter_context(atomic_output(self.path))
        options = {"movflags": "+faststart"} if self._muxer in ("mp4", "mov") else {}
        try:
            self._container = av.open(str(tmp), mode="w", format=self._muxer, options=options)
        except (av.error.FFmpegError, OSError) as error:
            stack.__exit__(type(error), error, error.__traceback__)
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None
        self._stack = stack
        return self

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) ``uint8`` RGB frame; all frames must have the same size."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write() must be called inside its `with` block")
        array = np.asarray(frame)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {array.shape} {array.dtype}")
        height, width = array.shape[:2]
        if self._size is None:
            self._start_streams(height, width)
        elif (height, width) != self._size:
            raise ValueError(
                f"frame {self.frames_written} is {width}×{height} but the video is "
                f"{self._size[1]}×{self._size[0]}"
            )
        if height % 2 or width % 2:
            array = cv2.copyMakeBorder(np.ascontiguousarray(array), 0, height % 2, 0, width % 2, cv2.BORDER_REPLICATE)
        # OpenCV converts to the encoder's 4:2:0 (BT.601, limited range, as FFmpeg's own scaler
        # does) several times faster than the conversion inside the encoder. The converted frame
        # is a new array, so the caller may reuse its buffer while the frame is still queued.
        planes = cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_RGB2YUV_I420)
        encoder = self._encoder
        assert encoder is not None
        if encoder.failure is not None:
            raise OutputError(f"cannot write {self.path}: {encoder.failure}")
        encoder.submit(planes, self.frames_written)
        self.frames_written += 1

    def write_batch(self, frames: np.ndarray) -> None:
        """Encode a (T, H, W, 3) ``uint8`` RGB batch (or any iterable of frames)."""
        for frame in frames:
            self.write(frame)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        container, self._container = self._container, None
        if stack is None or container is None:
            return
        encoder, self._encoder = self._encoder, None
        if exc_type is not None:
            if encoder is not None:
                encoder.close(drop=True)
            _close_quietly(container)
            stack.__exit__(exc_type, exc, tb)  # deletes the temporary file
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}")
            assert encoder is not None
            encoder.close(drop=False)
            if encoder.failure is not None:
                raise OutputError(f"cannot write {self.path}: {encoder.failure}")
            self._finish(container, encoder.audio)
        except BaseException as error:
            if encoder is not None and encoder.audio is not None:
                encoder.audio.close()
            _close_quietly(container)
            stack.__exit__(type(error), error, error.__traceback__)
            raise
        try:
            stack.__exit__(None, None, None)  # renames the temporary file onto the path
        except OSError as error:
            raise OutputError(f"cannot write {self.path}: {error.strerror or error}") from None

    def _start_streams(self, height: int, width: int) -> None:
        """Create the streams on the first frame, once the size is known (all before muxing)."""
        assert self._container is not None
        video = self._container.add_stream("libx264", rate=self.rate, time_base=1 / self.rate)
        video.width = width + width % 2
        video.height = height + height % 2
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(self.crf), "preset": self.preset}
        huge = width * height > HUGE_FRAME_PIXELS
        if huge:  # x264 holds its look-ahead frames in memory: fewer of a huge one
            video.options["rc-lookahead"] = str(HUGE_FRAME_LOOKAHEAD)
        self._video = video
        feed = None
        if self._audio is not None:
            audio = self._container.add_stream("aac", rate=self._audio.out_rate)
            audio.layout = self._audio.out_layout
            audio.time_base = Fraction(1, self._audio.out_rate)
            feed = self._audio.feed(self._container, audio)
        self._encoder = _BackgroundEncoder(self._container, video, self.rate, feed, depth=1 if huge else 4)
        self._size = (height, width)

    def _finish(self, container: av.container.OutputContainer, audio: AudioFeed | None) -> None:
        """Flush the video encoder, the audio up to the video's end, write the trailer."""
        assert self._video is not None
        try:
            for packet in self._video.encode(None):
                container.mux(packet)
            if audio is not None:
                audio.finish(Fraction(self.frames_written) / self.rate)
            container.close()
        except av.error.FFmpegError as error:
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None


class _BackgroundEncoder:
    """Encodes and muxes frames in a worker thread, a few frames behind the producer, and the
    ``audio`` as far as the frames reach (interleaved as it is written, and not left to the end).

    libx264 and the muxer release the GIL, so the next frames are generated while the current
    ones are encoded. The first failure is kept in ``failure`` (a one-line reason) and later
    frames are dropped; the writer reports it.
    """

    def __init__(self, container: av.container.OutputContainer, stream: av.VideoStream, rate: Fraction, audio: AudioFeed | None, depth: int = 4):
        self.failure: str | None = None
        self.audio = audio
        self._container, self._stream, self._time_base = container, stream, 1 / rate
        self._queue: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue(maxsize=depth)
        self._drop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="video-encoder", daemon=True)
        self._thread.start()

    def submit(self, planes: np.ndarray, index: int) -> None:
        self._queue.put((planes, index))

    def close(self, drop: bool) -> None:
        """Wait until every submitted frame is encoded (or, with ``drop``, discard the rest)."""
        if drop:
            self._drop.set()
            while self._thread.is_alive():  # unblock a full queue, then let the worker see the end
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                try:
                    self._queue.put_nowait(None)
                except queue.Full:
                    pass
                self._thread.join(timeout=0.05)
            if self.audio is not None:
                self.audio.close()
            return
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._drop.is_set() or self.failure is not None:
                continue
            try:
                planes, index = item
                _encode_planes(self._container, self._stream, planes, index, self._time_base)
                if self.audio is not None:
                    self.audio.until((index + 1) * self._time_base)
            except Exception as error:  # reported by the writer; keep draining so it never blocks
                self.failure = _reason(error)


def _encode_planes(
    container: av.container.OutputContainer, stream: av.VideoStream, planes: np.ndarray, index: int, time_base: Fraction
) -> None:
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.pts = index
    frame.time_base = time_base
    for packet in stream.encode(frame):
        container.mux(packet)


class AudioTrack:
    """An input's audio: how it is encoded into an output, and its decoded frames.

    Built from an open container (:meth:`of`), it is filled by the same pass that decodes the
    video (:class:`VideoReader`); built from a path (:meth:`open`), it decodes that file's audio
    lazily, while the output is being written.
    """

    def __init__(self, origin: Path, sample_rate: int, channels: int, offset_s: float):
        self.origin = origin
        self.sample_rate = sample_rate
        self.out_rate = sample_rate if sample_rate in _AAC_RATES else 48000
        self.out_layout = "mono" if channels == 1 else "stereo"
        #: Audio start minus video start in the source, to keep lip sync.
        self.offset_s = offset_s
        self._frames: list[av.AudioFrame] = []
        self._samples = 0
        self._lazy = False

    @classmethod
    def of(cls, container: av.container.InputContainer, path: Path) -> AudioTrack | None:
        """The container's first audio stream, described (no frames yet); None without audio."""
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        if not rate:
            raise InputError(f"{path} is not a readable video: its audio has no sample rate")
        channels = stream.codec_context.channels or len(stream.codec_context.layout.channels)
        audio_start = _start_seconds(stream)
        video_start = _start_seconds(container.streams.video[0]) if container.streams.video else audio_start
        return cls(path, rate, channels, audio_start - video_start)

    @classmethod
    def open(cls, path: Path) -> AudioTrack | None:
        """The audio of the file at ``path``, decoded from it when the output is written."""
        container = _open_input(path)
        try:
            track = cls.of(container, path)
        finally:
            container.close()
        if track is not None:
            track._lazy = True
        return track

    @property
    def seconds(self) -> float:
        """The length of the audio decoded so far."""
        return self._samples / self.sample_rate

    def decode_packet(self, packet: av.Packet) -> None:
        """Keep the audio frames of ``packet`` (met in the pass that decodes the video)."""
        for frame in self._frames_of(packet):
            self._frames.append(frame)
            self._samples += frame.samples

    def _frames_of(self, packet: av.Packet) -> list[av.AudioFrame]:
        try:
            frames = packet.decode()
        except av.error.FFmpegError as error:
            raise InputError(f"could not read the audio of {self.origin}: {_reason(error)}") from None
        assert all(isinstance(frame, av.AudioFrame) for frame in frames)
        return frames  # type: ignore[return-value]  # an audio stream's packets decode to audio frames

    def read_until(self, packets: Iterator[av.Packet], video_seconds: float) -> None:
        """Decode further packets until the audio covers ``video_seconds`` of the video (and a
        second more): the rest of the soundtrack would be cut off anyway."""
        needed = (video_seconds - self.offset_s + 1.0) * self.sample_rate
        for packet in packets:
            if self._samples >= needed:
                break
            self.decode_packet(packet)

    def decoded(self) -> Generator[av.AudioFrame, None, None]:
        """The track's audio frames, in order (decoded from the file now if it is lazy)."""
        if not self._lazy:
            yield from self._frames
            return
        source = _open_input(self.origin)
        try:
            for packet in source.demux(source.streams.audio[0]):
                yield from self._frames_of(packet)
        finally:
            source.close()

    def feed(self, container: av.container.OutputContainer, out: av.AudioStream) -> AudioFeed:
        """An encoder of this audio into ``out``, fed as far as the video is written."""
        return AudioFeed(self, container, out)


class AudioFeed:
    """Encodes a track's audio as AAC into an output, placed on the video's timeline.

    :meth:`until` encodes the decoded frames that end before a time (a writer calls it as frames
    are written, so the audio is not all encoded at the end); :meth:`finish` keeps exactly
    [0, duration) and flushes. Samples are placed by a running count from the stream's start
    (robust to sloppy per-packet timestamps); the encoder resamples and re-chunks them itself.
    """

    def __init__(self, track: AudioTrack, container: av.container.OutputContainer, out: av.AudioStream):
        self._container, self._out = container, out
        self._rate = track.sample_rate
        self._time_base = Fraction(1, track.sample_rate)
        self._position = round(track.offset_s * track.sample_rate)  # of the next frame's first sample
        self._frames = track.decoded()
        self._next: av.AudioFrame | None = None

    def until(self, seconds: Fraction) -> None:
        """Encode every frame that ends by ``seconds`` of the video."""
        end = int(seconds * self._rate)
        while (frame := self._peek()) is not None and self._position + frame.samples <= end:
            self._take(frame, end)

    def finish(self, duration: Fraction) -> None:
        """Encode the rest of [0, ``duration``) of the video's timeline, and flush."""
        total = int(duration * self._rate)
        try:
            while self._position < total and (frame := self._peek()) is not None:
                self._take(frame, total)
        finally:
            self.close()
        for packet in self._out.encode(None):
            self._container.mux(packet)

    def close(self) -> None:
        self._frames.close()

    def _peek(self) -> av.AudioFrame | None:
        if self._next is None:
            self._next = next(self._frames, None)
        return self._next

    def _take(self, frame: av.AudioFrame, total: int) -> None:
        """Encode ``frame``'s samples that lie in [0, ``total``) of the timeline."""
        self._next = None
        start, count = self._position, frame.samples
        self._position += count
        first, last = max(0, -start), min(count, total - start)
        if last <= first:
            return
        if first > 0 or last < count:
            frame = _slice_audio(frame, first, last)
        frame.pts = start + first
        frame.time_base = self._time_base
        for packet in self._out.encode(frame):
            self._container.mux(packet)


def _slice_audio(frame: av.AudioFrame, first: int, last: int) -> av.AudioFrame:
    """Samples [first, last) of ``frame`` as a new frame of the same format."""
    samples = frame.to_ndarray()
    if frame.format.is_planar:
        part = samples[:, first:last]
    else:  # packed: one row with the channels interleaved
        channels = len(frame.layout.channels)
        part = samples[:, first * channels : last * channels]
    sliced = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=frame.format.name, layout=frame.layout.name)  # type: ignore[arg-type]  # any sample format PyAV decodes
    sliced.sample_rate = frame.sample_rate
    return sliced


def _open_input(file: Path) -> av.container.InputContainer:
    """Open a media file for reading; every failure becomes a one-line InputError."""
    if not file.exists():
        raise InputError(f"{file} does not exist")
    if file.is_dir():
        raise InputError(f"{file} is a folder, not a video")
    try:
        if file.stat().st_size == 0:
            raise InputError(f"{file} is empty")
        return av.open(str(file), mode="r")
    except (av.error.FFmpegError, OSError) as error:
        raise InputError(f"{file} is not a readable video: {_reason(error)}") from None


def _check_frame_size(file: Path, width: int, height: int) -> None:
    """Refuse a video whose header gives frames too small to hold a face (0: not known yet)."""
    if 0 < min(width, height) < MIN_IMAGE_SIDE:
        raise FrameSizeError(f"{file} is a video of only {width}×{height} pixels; frames must be at least {MIN_IMAGE_SIDE} pixels on each side")


class StillImageError(InputError):
    """FFmpeg opened the file as a still image, not a video."""


def _video_stream(container: av.container.InputContainer, file: Path) -> av.VideoStream:
    if _is_still_image(container):
        raise StillImageError(f"{file} is an image, not a video")
    if not container.streams.video:
        raise InputError(f"{file} has no video stream")
    return container.streams.video[0]


def _is_still_image(container: av.container.InputContainer) -> bool:
    """FFmpeg's image demuxers ("png_pipe", "jpeg_pipe", "image2", ...) open stills as video."""
    name = container.format.name
    return name.endswith("_pipe") or name.startswith("image2")


def _stream_fps(stream: av.VideoStream, frame_count: int, duration_s: float) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return float(rate)
    if duration_s > 0:
        return frame_count / duration_s
    return None


def _start_seconds(stream: av.stream.Stream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _rate_fraction(fps: float | Fraction) -> Fraction:
    """An exact frame rate: NTSC-like rates snap to k·1000/1001, others to a small fraction."""
    if isinstance(fps, Fraction):
        return fps
    nearest = round(fps)
    if abs(fps - nearest) > 1e-6:
        ntsc = round(fps * 1001 / 1000)
        if abs(fps - Fraction(ntsc * 1000, 1001)) < 0.005:
            return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def _reason(error: BaseException) -> str:
    """The human part of an FFmpeg/OS error, without the errno and the repeated file name."""
    text = getattr(error, "strerror", None)
    return str(text) if text else str(error) or type(error).__name__


def _close_quietly(container: av.container.Container) -> None:
    try:
        container.close()
    except Exception:  # already failing; the temporary file is about to be deleted anyway
        pass
