"""The page's Live tab: camera frames in over a WebSocket, animated portrait frames back.

Protocol (``/api/live?source=UPLOAD_ID&face=0&mode=relative&method=warp``):

- The page sends each camera frame as one binary message: its capture time (8 bytes,
  little-endian float64, the page's clock in ms) followed by a JPEG.
- The server answers each frame it makes with one binary message: the capture time it answers
  (8 bytes, float64, echoed, so the page measures camera → shown), the server's own receipt →
  sent time in ms (4 bytes, float32), then a JPEG.
- Text messages are JSON: the page sends ``{"type": "recentre"}``; the server sends
  ``{"type": "ready"}`` once the portrait is prepared, ``{"type": "stats", …}`` about once a
  second (:meth:`~facereenact.app.live.LiveStats.summary`) and ``{"type": "error", "error":
  "one line"}`` before it closes a connection it refuses.

The same safety as the rest of the server (see docs/security.md): the handshake's Host and Origin
are checked before it is accepted (a browser cannot be made to open it from another site); a
frame larger than :attr:`ServerSettings.live_frame_bytes`, over :attr:`ServerSettings.live_fps`,
or not a decodable JPEG of at most :data:`MAX_LIVE_PIXELS` is dropped and counted; at most
:attr:`ServerSettings.max_live` sessions run at once (one more is refused with a line the page
shows); a closed connection stops its session and frees its slot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import threading
import time
from collections import deque
from typing import Any

import cv2
import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from facereenact.app.animate import AnimateRequest, GenerationMethod, MotionMode
from facereenact.app.live import Captured, LatestFrame, LiveEngine, LiveFrame, LiveOptions, LiveStats, drive
from facereenact.app.media import image_header_size, read_still
from facereenact.errors import FaceReenactError
from facereenact.web.guard import websocket_problem
from facereenact.web.service import WebService

log = logging.getLogger("facereenact.web")

#: Largest camera frame accepted (width × height): full HD.
MAX_LIVE_PIXELS = 1920 * 1080
#: The JPEG quality of the frames sent back.
JPEG_QUALITY = 85
#: Seconds between stats messages.
STATS_EVERY_S = 1.0
#: WebSocket close codes: the policy was broken; the server failed; the server is busy (try later).
POLICY_VIOLATION, INTERNAL_ERROR, TRY_AGAIN_LATER = 1008, 1011, 1013
_HEADER = struct.Struct("<d")
_ANSWER = struct.Struct("<df")


class LiveSlots:
    """At most ``limit`` live sessions at once."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.used -= 1


def decode_frame(data: bytes) -> np.ndarray | None:
    """A JPEG camera frame as RGB (H, W, 3) uint8, or None when it is not one, or is larger than
    :data:`MAX_LIVE_PIXELS` (its header is read before any pixel is decoded)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    size = image_header_size(data)
    if size is None or size[0] * size[1] > MAX_LIVE_PIXELS or min(size) < 16:
        return None
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class RateLimit:
    """At most ``per_second`` events in any second (a sliding window)."""

    def __init__(self, per_second: float):
        self.per_second = per_second
        self._times: deque[float] = deque()

    def allows(self, now: float) -> bool:
        while self._times and now - self._times[0] >= 1.0:
            self._times.popleft()
        if len(self._times) >= self.per_second:
            return False
        self._times.append(now)
        return True


async def live_session(websocket: WebSocket, service: WebService, slots: LiveSlots, allowed_hosts: list[str] | None) -> None:
    """One live connection, from handshake to clean-up."""
    problem = websocket_problem(websocket.headers, allowed_hosts)
    if problem is not None:
        log.warning("live connection refused: %s", problem)
        await websocket.close(code=POLICY_VIOLATION)  # before accepting: the handshake fails
        return
    await websocket.accept()
    if not slots.take():
        busy = f"the server's {slots.limit} live session{'s are' if slots.limit > 1 else ' is'} in use; try again when one ends"
        await _refuse(websocket, busy if slots.limit else "live driving is turned off on this server (serve --max-live)", TRY_AGAIN_LATER)
        return
    engine: LiveEngine | None = None
    try:
        try:
            request, source = _choices(websocket, service)
            engine = await asyncio.to_thread(_engine, service, request, source)
        except FaceReenactError as error:
            await _refuse(websocket, str(error), POLICY_VIOLATION)
            return
        await websocket.send_text(json.dumps({"type": "ready", "faces": engine.faces_found}))
        await _run(websocket, service, engine)
    finally:
        if engine is not None:
            engine.close()
        slots.give_back()


async def _refuse(websocket: WebSocket, message: str, code: int) -> None:
    await websocket.send_text(json.dumps({"type": "error", "error": message}))
    await websocket.close(code=code)


def _choices(websocket: WebSocket, service: WebService) -> tuple[AnimateRequest, np.ndarray]:
    """The request and the source portrait the connection's query names."""
    query = websocket.query_params
    stored = service.uploads.get(query.get("source", ""), "source")
    if stored is None:
        raise FaceReenactError("that portrait is no longer on the server; upload it again")
    method = query.get("method", GenerationMethod.warp.value)
    if method == GenerationMethod.neural.value and service.neural is None:
        raise FaceReenactError("this server offers the warp only")
    face = query.get("face", "0")
    request = AnimateRequest(
        method=method, mode=query.get("mode", MotionMode.relative.value), face_index=int(face) if face.isdigit() else -1,  # type: ignore[arg-type]
    )  # fmt: skip
    return request, read_still(stored.path)


def _engine(service: WebService, request: AnimateRequest, source: np.ndarray) -> LiveEngine:
    method = service.neural if request.method is GenerationMethod.neural else None
    return LiveEngine(service.fitter, source, request.reenact_options(), method, LiveOptions(max_size=service.settings.live_max_side))


async def _run(websocket: WebSocket, service: WebService, engine: LiveEngine) -> None:
    """Receive frames into the engine's mailbox while its threads make and send the answers."""
    loop = asyncio.get_running_loop()
    settings = service.settings
    inbox: LatestFrame[Captured] = LatestFrame()
    stats = LiveStats()
    rate = RateLimit(settings.live_fps)
    gone = threading.Event()

    def deliver(result: LiveFrame) -> None:
        _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        captured = result.captured
        server_ms = (time.monotonic() - captured.captured_at) * 1000
        message = _ANSWER.pack(captured.time * 1000, server_ms) + jpeg.tobytes()  # the page's own capture time
        if not gone.is_set():
            future = asyncio.run_coroutine_threadsafe(websocket.send_bytes(message), loop)
            try:
                future.result(timeout=10)
            except Exception:  # the connection closed while sending: the receiver ends the session
                gone.set()
                inbox.close()

    def work() -> None:
        try:
            drive(engine, inbox, deliver, stats)
        except Exception as error:  # a failure ends the session with its line, not the server
            log.exception("live session failed")
            if not gone.is_set():
                asyncio.run_coroutine_threadsafe(_refuse(websocket, f"the live session stopped: {error}", INTERNAL_ERROR), loop)

    worker = threading.Thread(target=work, name="live-session", daemon=True)
    worker.start()
    index, last_stats = 0, time.monotonic()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            now = time.monotonic()
            if message.get("text") is not None:
                if _command(message["text"]) == "recentre":
                    engine.recentre()
            else:
                data: bytes = message.get("bytes") or b""
                if len(data) > settings.live_frame_bytes:
                    stats.too_large += 1
                    continue
                if not rate.allows(now):
                    stats.over_rate += 1
                    continue
                frame = await asyncio.to_thread(decode_frame, data[_HEADER.size :]) if len(data) > _HEADER.size else None
                if frame is None:
                    stats.undecodable += 1
                    continue
                client_ms = _HEADER.unpack_from(data)[0]
                if not math.isfinite(client_ms):  # the page's clock is only trusted to be a number
                    client_ms = now * 1000
                inbox.put(Captured(frame, now, client_ms / 1000.0, index))
                index += 1
            if now - last_stats >= STATS_EVERY_S:
                last_stats = now
                await websocket.send_text(json.dumps({"type": "stats", **stats.summary(), "received": index}))
    except WebSocketDisconnect:
        pass
    finally:
        gone.set()
        inbox.close()
        await asyncio.to_thread(worker.join)
        log.info("live session ended: %s", stats.line())


def _command(text: str) -> str | None:
    """The ``type`` of a text message from the page (None when it is not one)."""
    try:
        message: Any = json.loads(text)
    except ValueError:
        return None
    return message.get("type") if isinstance(message, dict) else None
