"""The web page against a hostile client, with many variants of each abuse, not one example:
requests from other sites, forged Host names, upload names that collide with the server's own
files, clips whose header lies about their length, one client's flood of uploads, unknown
routes, and folders left by a killed server. Needs no model files: the routes under test refuse
before any face is fitted (a stand-in fitter fails the test if it is ever used)."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi", reason="FastAPI is not installed (pip install 'facereenact[web]')")
pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed (pip install 'facereenact[test]')")

from fastapi.testclient import TestClient  # noqa: E402

from facereenact.app.fit import FaceFitter  # noqa: E402
from facereenact.io.video import probe_video  # noqa: E402
from facereenact.web.app import create_app  # noqa: E402
from facereenact.web.guard import allowed_hosts, host_allowed  # noqa: E402
from facereenact.web.service import ROOT_PREFIX  # noqa: E402
from facereenact.web.settings import ServerSettings  # noqa: E402
from facereenact.web.uploads import StoreFull, Upload, UploadStore, stored_name  # noqa: E402

HOST = "testserver"  # the TestClient's Host header
OWN = f"http://{HOST}"
OCTETS = {"Content-Type": "application/octet-stream"}
HEALTH_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


class _NoFitter:
    """Stands in for the face fitter where no request may reach it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the fitter was used ({name}) by a request that should have been refused first")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = ServerSettings(max_seconds=60, work_dir=tmp_path_factory.mktemp("server"))
    app = create_app(settings, fitter=cast(FaceFitter, _NoFitter()), allowed_hosts=[HOST, "127.0.0.1"])
    with TestClient(app) as test_client:
        yield test_client


def _stored(client: TestClient) -> list[Path]:
    """Every upload folder on the server's disk."""
    return list((client.app.state.service.root / "uploads").iterdir())  # type: ignore[attr-defined]


# ---- requests from other sites ----------------------------------------------------------------

other_origins = st.one_of(
    st.sampled_from(["null", "http://attacker.example", "https://testserver.evil", "http://testserver:8080", "http://127.0.0.1", "file://", "HTTP://ATTACKER"]),
    st.builds(lambda host, port: f"http://{host}:{port}", st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5})?", fullmatch=True), st.integers(1, 65535)),
)
cross_fetch_sites = st.sampled_from(["cross-site", "same-site", "CROSS-SITE", " cross-site", "bogus"])
form_types = st.sampled_from(["", "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "TEXT/PLAIN"])
unsafe_routes = st.sampled_from([("POST", "/api/uploads/source?name=a.jpg"), ("POST", "/api/uploads/driving?name=a.mp4"), ("POST", "/api/jobs"), ("DELETE", "/api/jobs/abc")])


@settings(max_examples=60, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(route=unsafe_routes, origin=other_origins)
def test_a_request_from_another_origin_is_refused_before_its_body_is_read(client: TestClient, route: tuple[str, str], origin: str) -> None:
    method, url = route
    before = _stored(client)
    headers = {"Origin": origin, "Content-Type": "application/json" if url == "/api/jobs" else "application/octet-stream"}
    answer = client.request(method, url, headers=headers, content=b'{"source": "x", "example": "y"}')
    assert answer.status_code == 403 and answer.json()["error"].startswith("refused: the request came from another origin"), (origin, answer.text)
    assert _stored(client) == before


@settings(max_examples=30, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(route=unsafe_routes, site=cross_fetch_sites)
def test_a_request_the_browser_marks_as_cross_site_is_refused_even_without_an_origin(client: TestClient, route: tuple[str, str], site: str) -> None:
    method, url = route
    answer = client.request(method, url, headers={"Sec-Fetch-Site": site, **OCTETS}, content=b"x")
    assert answer.status_code == 403 and "another site" in answer.json()["error"]


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(url=st.sampled_from(["/api/uploads/source?name=a.jpg", "/api/uploads/driving?name=a.mp4", "/api/jobs"]), content_type=form_types)
def test_a_body_typed_as_a_form_or_text_is_refused(client: TestClient, url: str, content_type: str) -> None:
    """The types any page may send without asking first; everything else needs a preflight,
    which this server never grants."""
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post(url, headers={"Origin": OWN, **headers}, content=b'{"source": "x", "example": "y"}')
    assert answer.status_code == 403 and "content type" in answer.json()["error"]


def test_the_pages_own_requests_and_tools_without_an_origin_are_served(client: TestClient) -> None:
    job = {"source": "missing", "example": "none"}
    for headers in ({"Origin": OWN, "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"}, {}):
        answer = client.post("/api/jobs", headers=headers, json=job)
        assert answer.status_code == 404 and "portrait is no longer on the server" in answer.json()["error"]
    empty = client.post("/api/uploads/source?name=a.jpg", headers={"Origin": OWN, **OCTETS}, content=b"")
    assert empty.status_code == 400 and empty.json() == {"error": "a.jpg is empty"}
    assert client.get("/api/health", headers={"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"}).status_code == 200, "reading is harmless"


def test_the_page_hands_each_browser_a_strict_cookie_once(client: TestClient) -> None:
    first = client.get("/")
    cookie = first.headers["set-cookie"]
    assert "facereenact_client=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "set-cookie" not in client.get("/").headers, "a browser with its cookie keeps it"


@pytest.mark.parametrize(
    "cookie",
    ["", "short", "x" * 200, "a.b,c!d~e*f&g+h=i|j$k%l"],
)
def test_a_malformed_client_cookie_is_replaced(tmp_path: Path, cookie: str) -> None:
    app = create_app(ServerSettings(work_dir=tmp_path), fitter=cast(FaceFitter, _NoFitter()))
    with TestClient(app) as fresh:
        if cookie:
            fresh.cookies.set("facereenact_client", cookie)
        assert "facereenact_client=" in fresh.get("/").headers.get("set-cookie", "")


# ---- Host names ----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(host=st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=40))
def test_only_the_allowed_host_names_pass(host: str) -> None:
    allowed = allowed_hosts("127.0.0.1")
    assert allowed is not None
    name = host.strip().lower()
    bare = name[: name.find("]") + 1] if name.startswith("[") and "]" in name else name.split(":", 1)[0]
    assert host_allowed(host, allowed) == (bare in {"127.0.0.1", "localhost", "[::1]"})


def test_every_interface_keeps_a_host_check_and_only_star_turns_it_off() -> None:
    everywhere = allowed_hosts("0.0.0.0")
    assert everywhere is not None and "localhost" in everywhere and "attacker.example" not in everywhere
    import socket

    assert socket.gethostname().lower() in everywhere, "the machine's own name reaches it"
    assert "photos.lan" in (allowed_hosts("0.0.0.0", ["photos.lan"]) or [])
    assert allowed_hosts("0.0.0.0", ["*"]) is None
    assert host_allowed("[::1]:7860", allowed_hosts("::1") or []) and host_allowed("LOCALHOST:80", allowed_hosts("127.0.0.1") or [])
    assert allowed_hosts("192.168.1.20") == ["127.0.0.1", "localhost", "[::1]", "192.168.1.20"]


def test_a_refused_host_gets_one_error_line(client: TestClient) -> None:
    answer = client.get("/api/health", headers={"Host": "rebound.attacker.example"})
    assert answer.status_code == 400 and "host name" in answer.json()["error"]


# ---- upload names ------------------------------------------------------------------------------------

client_names = st.one_of(
    st.sampled_from(["preview.png", "PREVIEW.PNG", "../preview.png", "source", "source.jpg", "driving.mp4", "server.pid", "..", ".", "", "a/b\\c.jpg", "x.PnG", "clip.mp4.part"]),
    st.text(max_size=120),
)


@settings(max_examples=200)
@given(kind=st.sampled_from(["source", "driving"]), name=client_names)
def test_the_server_names_an_uploads_file_itself(kind: str, name: str) -> None:
    stored = stored_name(kind, name)
    assert stored.startswith(kind) and "/" not in stored and "\\" not in stored
    assert stored not in ("preview.png", "server.pid") and len(stored) <= len(kind) + 9
    assert stored == kind or stored[len(kind)] == "."


# ---- clips that lie about their length ---------------------------------------------------------------


def _clip(path: Path, frames: int, fps: int) -> Path:
    """A tiny H.264 clip: ``frames`` frames at ``fps`` frames a second."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        picture = np.zeros((16, 16, 3), np.uint8)
        for index in range(frames):
            picture[:] = index % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _claim_duration(path: Path, seconds: float) -> None:
    """Rewrite the mp4's movie, track and media headers to declare ``seconds``."""
    data = bytearray(path.read_bytes())
    for box in (b"mvhd", b"mdhd"):
        at = data.find(box)
        while at >= 0:
            assert data[at + 4] == 0, "version 0 boxes only"
            timescale = struct.unpack_from(">I", data, at + 16)[0]
            struct.pack_into(">I", data, at + 20, int(seconds * timescale))
            at = data.find(box, at + 1)
    movie_scale = struct.unpack_from(">I", data, data.find(b"mvhd") + 16)[0]
    struct.pack_into(">I", data, data.find(b"tkhd") + 24, int(seconds * movie_scale))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("frames", "fps", "claimed"), [(2000, 25, 4.0), (1600, 25, 1.0), (5000, 10000, None), (3700, 1000, None)])
def test_a_clip_longer_than_its_header_says_is_refused_quickly(client: TestClient, tmp_path: Path, frames: int, fps: int, claimed: float | None) -> None:
    clip = _clip(tmp_path / "clip.mp4", frames, fps)
    if claimed is not None:
        _claim_duration(clip, claimed)
    assert probe_video(clip).duration_s < 60, "the header alone would pass the 60 s limit"
    started = time.process_time()
    answer = client.post("/api/uploads/driving?name=clip.mp4", headers=OCTETS, content=clip.read_bytes())
    assert time.process_time() - started < 2.0
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("clip.mp4 lasts more than 60 s") or answer.json()["error"].startswith("clip.mp4 has more than 3600 frames")


def test_a_job_never_decodes_more_than_the_clip_limit() -> None:
    assert ServerSettings(max_seconds=2).frames_per_job == 120
    assert ServerSettings(max_seconds=2, max_frames=10).frames_per_job == 10
    assert ServerSettings(max_seconds=2, max_frames=10_000).frames_per_job == 120


# ---- one client's flood -----------------------------------------------------------------------


def _upload(store: UploadStore, owner: str) -> Upload:
    upload_id, folder = store.new_folder()
    upload = Upload(upload_id, "source", owner, folder, folder / "source.jpg", "a.jpg")
    store.add(upload)
    return upload


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(flood=st.integers(0, 60), per_client=st.integers(2, 6), total=st.integers(8, 30))
def test_a_flood_from_one_client_never_pushes_out_anothers_uploads(tmp_path: Path, flood: int, per_client: int, total: int) -> None:
    store = UploadStore(tmp_path / f"store-{flood}-{per_client}-{total}", per_client, total, keep_seconds=600)
    mine = [_upload(store, "cookie mine") for _ in range(2)]
    flooded = 0
    for _ in range(flood):
        try:
            _upload(store, "address attacker")
            flooded += 1
        except StoreFull:
            break
    for upload in mine:
        assert store.get(upload.id) is upload and upload.folder.is_dir()
    kept = [u for u in store._uploads.values() if u.owner == "address attacker"]
    assert len(kept) == min(flooded, per_client)
    assert len(store._uploads) <= total


def test_a_full_store_refuses_new_uploads_and_an_abandoned_one_frees_its_place(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "store", per_client=2, total=2, keep_seconds=600)
    _upload(store, "a")
    _, folder = store.new_folder()
    with pytest.raises(StoreFull):
        store.new_folder()
    store.abandon(folder)
    assert not folder.exists()
    _upload(store, "b")


# ---- answers to unknown routes ------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=HEALTH_CHECKS)
@given(path=st.from_regex(r"/(api/)?[a-z0-9_.-]{1,20}(/[a-z0-9_.-]{1,20})?", fullmatch=True))
def test_every_unknown_route_answers_with_the_pages_error_shape(client: TestClient, path: str) -> None:
    answer = client.get(path)
    if answer.status_code in (404, 405):
        assert set(answer.json()) == {"error"}, answer.text


def test_a_wrong_method_is_named(client: TestClient) -> None:
    answer = client.put("/api/health", headers=OCTETS, content=b"x")
    assert answer.status_code == 405 and answer.json() == {"error": "PUT is not allowed on /api/health"}


# ---- folders of killed servers ------------------------------------------------------------------


def test_a_killed_servers_folder_is_deleted_by_the_next_server(tmp_path: Path) -> None:
    """A server holds its folder with a lock the system drops when the process dies: a folder of
    the servers' name pattern without it is a killed server's; one held stays; others stay."""
    dead, alive = tmp_path / f"{ROOT_PREFIX}dead1234", tmp_path / f"{ROOT_PREFIX}live1234"
    for folder in (dead, alive, tmp_path / f"{ROOT_PREFIX}notours", tmp_path / "unrelated"):
        (folder / "uploads").mkdir(parents=True)
    held = subprocess.Popen(  # another live server: a process holding its folder's lock
        [sys.executable, "-c", "import sys; from pathlib import Path; from facereenact.io.atomic import lock_folder; lock_folder(Path(sys.argv[1])); print(flush=True); input()", str(alive)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert held.stdout is not None and held.stdout.readline() == "\n"
        app = create_app(ServerSettings(work_dir=tmp_path), fitter=cast(FaceFitter, _NoFitter()))
        with TestClient(app):
            root = app.state.service.root
            assert not dead.exists() and alive.is_dir()
            assert (tmp_path / f"{ROOT_PREFIX}notours").is_dir() and (tmp_path / "unrelated").is_dir()
            second = create_app(ServerSettings(work_dir=tmp_path), fitter=cast(FaceFitter, _NoFitter()))
            with TestClient(second):
                assert root.is_dir(), "a running server's folder is held, even from the same process"
        assert not root.exists()
    finally:
        held.communicate("\n")
