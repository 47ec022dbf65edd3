"""The Live tab's WebSocket with FastAPI's TestClient and the real engine: frames in, animated
frames out with the capture time echoed; the handshake's Host and Origin checks; the session
limit; frames that are not images, too large or too fast dropped and counted; re-centring; a
closed connection frees its slot."""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="FastAPI is not installed (pip install 'facereenact[web]')")
pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed (pip install 'facereenact[test]')")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from facereenact.io.video import iter_frames  # noqa: E402
from facereenact.web.app import create_app  # noqa: E402
from facereenact.web.guard import websocket_problem  # noqa: E402
from facereenact.web.live import RateLimit, decode_frame  # noqa: E402
from facereenact.web.settings import ServerSettings  # noqa: E402

OCTETS = {"Content-Type": "application/octet-stream"}
ORIGIN = {"origin": "http://testserver"}
CLIP = "hdtf_aoc"
PORTRAIT = "lp_s12"


@pytest.fixture(scope="module")
def client(fitter, data_dir: Path) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    settings = ServerSettings(max_live=1, live_fps=1000, live_frame_kb=200, live_max_side=200, data=data_dir)
    with TestClient(create_app(settings, fitter=fitter, allowed_hosts=["testserver"])) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def portrait_id(client: TestClient, data_dir: Path) -> str:
    path = data_dir / "portraits" / f"{PORTRAIT}.jpg"
    return client.post("/api/uploads/source", params={"name": path.name}, content=path.read_bytes(), headers=OCTETS).json()["id"]


@pytest.fixture(scope="module")
def jpegs(data_dir: Path) -> list[bytes]:
    frames = list(iter_frames(data_dir / "clips" / f"{CLIP}.mp4", 6))
    return [cv2.imencode(".jpg", cv2.cvtColor(cv2.resize(f, (256, 256)), cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]


def _frame(jpeg: bytes, at_ms: float) -> bytes:
    return struct.pack("<d", at_ms) + jpeg


def _next_json(ws, kind: str) -> dict:  # type: ignore[no-untyped-def]
    """The next text message of type ``kind`` (answers and other messages in between skipped)."""
    while True:
        message = ws.receive()
        if message.get("text") is not None:
            body = json.loads(message["text"])
            if body["type"] == kind:
                return body


def _next_answer(ws) -> tuple[float, float, np.ndarray]:  # type: ignore[no-untyped-def]
    while True:
        message = ws.receive()
        if message.get("bytes") is not None:
            data = message["bytes"]
            echoed, server_ms = struct.unpack_from("<df", data)
            image = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_COLOR)
            return echoed, server_ms, image


def test_frames_come_back_animated_with_their_capture_time(client: TestClient, portrait_id: str, jpegs: list[bytes]) -> None:
    with client.websocket_connect(f"/api/live?source={portrait_id}", headers=ORIGIN) as ws:
        assert _next_json(ws, "ready")["faces"] == 1
        ws.send_bytes(_frame(jpegs[0], 1000.0))
        echoed, server_ms, image = _next_answer(ws)
        assert echoed == 1000.0 and 0 < server_ms < 60_000
        assert image is not None and max(image.shape[:2]) == 200  # live_max_side
        ws.send_text(json.dumps({"type": "recentre"}))
        ws.send_bytes(_frame(jpegs[1], 1040.0))
        assert _next_answer(ws)[0] == 1040.0


def test_frames_that_are_not_images_too_large_or_too_fast_are_dropped_and_counted(fitter, data_dir, jpegs) -> None:  # type: ignore[no-untyped-def]
    settings = ServerSettings(max_live=1, live_fps=3, live_frame_kb=30, live_max_side=128, data=data_dir)
    with TestClient(create_app(settings, fitter=fitter)) as local:
        path = data_dir / "portraits" / f"{PORTRAIT}.jpg"
        portrait = local.post("/api/uploads/source", params={"name": path.name}, content=path.read_bytes(), headers=OCTETS).json()["id"]
        with local.websocket_connect(f"/api/live?source={portrait}", headers=ORIGIN) as ws:
            _next_json(ws, "ready")
            ws.send_bytes(_frame(b"\xff\xd8 not really a jpeg", 0.0))
            ws.send_bytes(b"short")
            ws.send_bytes(_frame(b"\x89PNG\r\n\x1a\n" + bytes(100), 0.0))
            ws.send_bytes(_frame(bytes(40_000), 0.0))  # over 30 kB
            ws.send_text("not json")
            for index in range(3):  # two more real frames fit the 3 per second
                ws.send_bytes(_frame(jpegs[index], 40.0 * index))
            ws.send_bytes(_frame(jpegs[3], 200.0))
            time.sleep(1.1)  # stats go out at most once a second, after a message
            ws.send_text(json.dumps({"type": "ping"}))
            stats = _next_json(ws, "stats")
    assert stats["undecodable"] == 3 and stats["too_large"] == 1
    assert stats["over_rate"] >= 1 and stats["received"] <= 3


def test_a_session_beyond_the_slots_is_refused_and_a_closed_one_frees_its_slot(client: TestClient, portrait_id: str, jpegs: list[bytes]) -> None:
    with client.websocket_connect(f"/api/live?source={portrait_id}", headers=ORIGIN) as first:
        _next_json(first, "ready")
        with client.websocket_connect(f"/api/live?source={portrait_id}", headers=ORIGIN) as second:
            refused = _next_json(second, "error")
            assert "live session is in use" in refused["error"]
            with pytest.raises(WebSocketDisconnect) as closed:
                second.receive_text()
            assert closed.value.code == 1013
        first.send_bytes(_frame(jpegs[0], 0.0))
        _next_answer(first)
    with client.websocket_connect(f"/api/live?source={portrait_id}", headers=ORIGIN) as again:  # the slot is free
        assert _next_json(again, "ready")["type"] == "ready"
        for index in range(3):  # closed with frames still coming in
            again.send_bytes(_frame(jpegs[index], 40.0 * index))
    deadline = time.monotonic() + 10
    while any(t.name.startswith("live-") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a closed connection stops its engine's threads"
        time.sleep(0.05)


def test_an_unknown_portrait_or_face_is_one_line(client: TestClient, portrait_id: str) -> None:
    with client.websocket_connect("/api/live?source=nothing", headers=ORIGIN) as ws:
        assert "no longer on the server" in _next_json(ws, "error")["error"]
    with client.websocket_connect(f"/api/live?source={portrait_id}&face=3", headers=ORIGIN) as ws:
        assert "face" in _next_json(ws, "error")["error"]
    with client.websocket_connect(f"/api/live?source={portrait_id}&method=neural", headers=ORIGIN) as ws:
        assert "warp only" in _next_json(ws, "error")["error"]


def test_the_handshake_from_another_site_or_host_is_refused(client: TestClient, portrait_id: str) -> None:
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site", **ORIGIN}):
        with pytest.raises(WebSocketDisconnect) as refused:
            with client.websocket_connect(f"/api/live?source={portrait_id}", headers=headers) as ws:
                ws.receive_text()
        assert refused.value.code == 1008
    assert websocket_problem({"host": "evil.example"}, ["127.0.0.1"]) is not None
    assert websocket_problem({"host": "127.0.0.1:7860", "origin": "http://127.0.0.1:7860"}, ["127.0.0.1"]) is None
    assert websocket_problem({"host": "127.0.0.1:7860"}, ["127.0.0.1"]) is None  # a tool without Origin


def test_frame_decoding_refuses_huge_and_odd_pictures() -> None:
    small = cv2.imencode(".jpg", np.full((64, 48, 3), 120, np.uint8))[1].tobytes()
    assert decode_frame(small).shape == (64, 48, 3)  # type: ignore[union-attr]
    huge = cv2.imencode(".jpg", np.zeros((1100, 2000, 3), np.uint8))[1].tobytes()
    assert decode_frame(huge) is None
    assert decode_frame(small[:40]) is None and decode_frame(b"") is None
    limit = RateLimit(2)
    assert [limit.allows(t) for t in (0.0, 0.1, 0.2, 1.05, 1.2)] == [True, True, False, True, True]


def test_a_server_without_live_slots_says_so(fitter, data_dir: Path, portrait_id: str) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(ServerSettings(max_live=0, data=data_dir), fitter=fitter)) as local:
        assert local.get("/api/config").json()["live"]["max_sessions"] == 0
        with local.websocket_connect(f"/api/live?source={portrait_id}", headers=ORIGIN) as ws:
            assert "turned off" in _next_json(ws, "error")["error"]


def test_a_failing_engine_ends_the_session_with_its_line(client: TestClient, portrait_id: str, jpegs: list[bytes], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from facereenact.app.live import LiveEngine

    def broken(self, followed):  # type: ignore[no-untyped-def]
        raise RuntimeError("out of memory")

    monkeypatch.setattr(LiveEngine, "make", broken)
    with client.websocket_connect(f"/api/live?source={portrait_id}", headers=ORIGIN) as ws:
        _next_json(ws, "ready")
        ws.send_bytes(_frame(jpegs[0], 0.0))
        assert _next_json(ws, "error")["error"] == "the live session stopped: out of memory"
    with client.websocket_connect(f"/api/live?source={portrait_id}", headers=ORIGIN) as again:  # its slot was freed
        assert _next_json(again, "ready")["type"] == "ready"


def test_the_page_has_the_live_tab_and_its_script(client: TestClient) -> None:
    page = client.get("/").text
    assert 'id="tab-live"' in page and 'src="/static/live.js"' in page
    script = client.get("/static/live.js")
    assert script.status_code == 200 and "getUserMedia" in script.text
    assert client.get("/api/config").json()["live"] == {"max_sessions": 1, "fps": 1000, "frame_kb": 200}
