"""``facereenact live``: a camera (or a file played at its own frame rate) drives the portrait,
shown in a window where there is a display and written to a file when asked.

A capture thread reads frames as they come (a file: paced by the wall clock, as a camera would
give them, skipping those the reading itself fell behind on) into a :class:`LatestFrame`; the
engine takes the newest each time it is free (:func:`~facereenact.app.live.drive`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from facereenact.app import examples
from facereenact.app.animate import AnimateRequest, refuse_to_overwrite, worker_network
from facereenact.app.fit import load_fitter
from facereenact.app.live import Captured, LatestFrame, LiveEngine, LiveFrame, LiveOptions, LiveStats, drive
from facereenact.app.locations import resolve_assets
from facereenact.errors import InputError
from facereenact.io.media import read_still
from facereenact.io.video import VIDEO_EXTENSIONS, VideoReader, VideoWriter, probe_video

#: The preview window's title; a key press in it (q or Esc) stops.
WINDOW = "facereenact live (q: quit, r: re-centre)"


class Capture(Protocol):
    """Frames from a camera or a file, put into ``inbox`` until :meth:`stop` or the end."""

    fps: float
    #: Frames captured so far (given to the engine or skipped).
    frames: int
    #: Frames the capture itself skipped (it fell behind), counted as dropped.
    skipped: int
    #: Every frame is to be made, none dropped (a file read as fast as the engine goes).
    every_frame: bool

    def run(self, inbox: LatestFrame[Captured], stop: threading.Event) -> None: ...


class PlayedFile:
    """A video file given frame by frame. ``realtime``: at its own frame rate by the wall clock,
    what a camera showing that clip would give (frames the engine is too slow for are dropped);
    otherwise as fast as the engine takes them, none dropped."""

    def __init__(self, path: Path, realtime: bool):
        self.path, self.realtime = path, realtime
        self.fps = probe_video(path).fps
        self.frames = self.skipped = 0
        self.every_frame = not realtime

    def run(self, inbox: LatestFrame[Captured], stop: threading.Event) -> None:
        period = 1.0 / self.fps
        with VideoReader(self.path, with_audio=False) as reader:
            start = time.monotonic()
            for index, frame in enumerate(reader.frames()):
                self.frames = index + 1
                if self.every_frame:
                    inbox.put(Captured(frame, time.monotonic(), index * period, index), wait=True)
                    if stop.is_set():
                        return
                    continue
                due = start + index * period
                wait = due - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    return
                if stop.is_set():
                    return
                if time.monotonic() - due > period:  # decoding fell a frame behind: a camera would have moved on
                    self.skipped += 1
                    continue
                inbox.put(Captured(frame, due, index * period, index))


class Camera:
    """A camera opened with OpenCV, by its index."""

    def __init__(self, index: int):
        self.capture = cv2.VideoCapture(index)
        if not self.capture.isOpened():
            raise InputError(f"cannot open camera {index}: no such camera, or it is in use (use --driving FILE --realtime without one)")
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS)) or 30.0
        self.frames = self.skipped = 0
        self.every_frame = False

    def run(self, inbox: LatestFrame[Captured], stop: threading.Event) -> None:
        index = 0
        try:
            while not stop.is_set():
                ok, bgr = self.capture.read()
                if not ok:
                    return
                now = time.monotonic()
                inbox.put(Captured(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), now, now, index))
                index += 1
                self.frames = index
        finally:
            self.capture.release()


def has_display() -> bool:
    """Whether a window can be shown: a desktop session, and an OpenCV built with a GUI."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    gui = [line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:")]
    return not gui or "NONE" not in gui[0].upper()


class _Preview:
    """The window; a key press of q or Esc asks to stop, r to re-centre."""

    def __init__(self, engine: LiveEngine, stop: threading.Event):
        self.engine, self.stop = engine, stop

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(WINDOW, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.stop.set()
        elif key == ord("r"):
            self.engine.recentre()

    def close(self) -> None:
        cv2.destroyWindow(WINDOW)


class _HeldWriter:
    """Writes each output once per captured frame it stands for (up to the next output), so the
    file plays in real time at the capture's rate however many frames were dropped."""

    def __init__(self, writer: VideoWriter):
        self.writer, self.next_index = writer, 0
        self.last: np.ndarray | None = None

    def write(self, result: LiveFrame) -> None:
        repeats = max(1, result.captured.index - self.next_index + 1) if self.last is not None else 1
        previous = self.last if self.last is not None else result.image
        for _ in range(repeats - 1):  # the frames dropped before this one show the previous output
            self.writer.write(previous)
        self.writer.write(result.image)
        self.last, self.next_index = result.image, result.captured.index + 1

    def finish(self, captured: int) -> None:
        """Hold the last output through the frames captured after it (dropped at the end)."""
        for _ in range(captured - self.next_index):
            if self.last is not None:
                self.writer.write(self.last)


def run_live(
    engine: LiveEngine,
    capture: Capture,
    output: Path | None,
    preview: bool,
    seconds: float | None,
    on_frame: Callable[[LiveFrame], None] | None = None,
) -> LiveStats:
    """Drive ``engine`` from ``capture`` until it ends, ``seconds`` pass, the window is closed
    (q) or Ctrl+C; the result goes to the window and/or ``output`` (complete even after Ctrl+C)."""
    inbox: LatestFrame[Captured] = LatestFrame()
    stop = threading.Event()
    stats = LiveStats()

    def feed() -> None:
        try:
            capture.run(inbox, stop)
        finally:
            inbox.close()

    with ExitStack() as cleanup:
        held = _HeldWriter(cleanup.enter_context(VideoWriter(output, capture.fps))) if output is not None else None
        window = _Preview(engine, stop) if preview else None
        if window is not None:
            cleanup.callback(window.close)

        def deliver(result: LiveFrame) -> None:
            if held is not None:
                held.write(result)
            if window is not None:
                window.show(result.image)
            if on_frame is not None:
                on_frame(result)
            if stop.is_set():
                inbox.close()

        feeder = threading.Thread(target=feed, name="live-capture", daemon=True)
        feeder.start()
        cleanup.callback(feeder.join, 5)
        cleanup.callback(stop.set)
        if seconds is not None:
            timer = threading.Timer(seconds, stop.set)
            timer.start()
            cleanup.callback(timer.cancel)
        try:
            drive(engine, inbox, deliver, stats, capture.every_frame)
        except KeyboardInterrupt:  # Ctrl+C is how a camera session ends: keep what was made
            pass
        stop.set()
        feeder.join(5)
        if held is not None:
            held.finish(capture.frames)
    stats.dropped += capture.skipped
    return stats


def live_file(
    request: AnimateRequest,
    source: Path | None,
    camera: int | None,
    driving: Path | None,
    realtime: bool,
    output: Path | None,
    preview: bool,
    seconds: float | None,
    assets: Path | None,
    device: str,
    data: Path | None,
    options: LiveOptions,
) -> LiveStats:
    """``facereenact live``: check what can be checked before the slow loading (the output's
    kind, the model files, the network), prepare the source, open the capture, run."""
    if output is not None:
        if output.suffix.lower() not in VIDEO_EXTENSIONS:
            raise InputError(f"the live result is a video: name a {', '.join(VIDEO_EXTENSIONS)} output, not {output.name}")
        refuse_to_overwrite(output, {name: path for name, path in (("source", source), ("driving", driving)) if path is not None})
    resolved = resolve_assets(assets)
    source = source or examples.default_portrait(data, assets)
    checkpoint = request.checkpoint()
    method = worker_network(checkpoint, device) if checkpoint is not None else None
    capture: Capture = PlayedFile(driving, realtime) if driving is not None else Camera(camera or 0)
    fitter = load_fitter(resolved, device)
    with LiveEngine(fitter, read_still(source), request.reenact_options(), method, options) as engine:
        return run_live(engine, capture, output, preview, seconds)
