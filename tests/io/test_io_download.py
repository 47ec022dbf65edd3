"""Fetching one file: resumed after a dropped connection, checked before the rename, atomic."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from facereenact.errors import AssetError
from facereenact.io.download import fetch_file, part_path

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Origin:
    """A local HTTP server standing in for a file's public origin."""

    url: str
    files: dict[str, bytes]
    #: Answers to cut off after this many body bytes, one per request, in order.
    drops: list[int] = field(default_factory=list)
    #: The Range header of every request (None: none sent).
    ranges: list[str | None] = field(default_factory=list)
    honour_ranges: bool = True


@pytest.fixture()
def origin() -> Iterator[Origin]:
    state = Origin("", {"w.bin": PAYLOAD})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            data = state.files.get(self.path.lstrip("/"))
            state.ranges.append(self.headers.get("Range"))
            if data is None:
                self.send_error(404)
                return
            start = 0
            asked = self.headers.get("Range")
            if asked and state.honour_ranges:
                start = int(asked.removeprefix("bytes=").partition("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drops:
                self.wfile.write(body[: state.drops.pop(0)])
                self.wfile.flush()
                self.close_connection = True  # the connection drops in the middle of the body
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_a_dropped_connection_is_resumed_where_it_broke_off(origin: Origin, tmp_path: Path) -> None:
    origin.drops = [300_000, 200_000]
    seen: list[tuple[int, int | None]] = []
    target = tmp_path / "assets" / "w.bin"
    fetch_file(f"{origin.url}/w.bin", target, len(PAYLOAD), DIGEST, lambda done, total: seen.append((done, total)))
    assert target.read_bytes() == PAYLOAD
    assert origin.ranges == [None, "bytes=300000-", "bytes=500000-"]
    assert not part_path(target).exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_a_later_run_resumes_the_part_file_an_interrupted_one_left(origin: Origin, tmp_path: Path) -> None:
    target = tmp_path / "w.bin"
    part_path(target).write_bytes(PAYLOAD[:123_456])
    fetch_file(f"{origin.url}/w.bin", target, len(PAYLOAD), DIGEST)
    assert origin.ranges == ["bytes=123456-"]
    assert target.read_bytes() == PAYLOAD


def test_a_server_that_ignores_ranges_starts_over(origin: Origin, tmp_path: Path) -> None:
    origin.honour_ranges = False
    target = tmp_path / "w.bin"
    part_path(target).write_bytes(PAYLOAD[:1000])
    fetch_file(f"{origin.url}/w.bin", target, len(PAYLOAD), DIGEST)
    assert target.read_bytes() == PAYLOAD


def test_a_complete_part_file_is_checked_and_renamed(origin: Origin, tmp_path: Path) -> None:
    target = tmp_path / "w.bin"
    part_path(target).write_bytes(PAYLOAD)
    fetch_file(f"{origin.url}/w.bin", target, len(PAYLOAD), DIGEST)
    assert origin.ranges == [] and target.read_bytes() == PAYLOAD


def test_other_bytes_are_refused_and_nothing_is_written(origin: Origin, tmp_path: Path) -> None:
    origin.files["w.bin"] = PAYLOAD[:-1] + b"x"
    target = tmp_path / "w.bin"
    with pytest.raises(AssetError, match="SHA-256 .* expected .*nothing was written"):
        fetch_file(f"{origin.url}/w.bin", target, len(PAYLOAD), DIGEST)
    assert not target.exists() and not part_path(target).exists()


def test_a_connection_that_keeps_breaking_gives_up_with_one_line(origin: Origin, tmp_path: Path) -> None:
    origin.drops = [1000] * 10
    target = tmp_path / "w.bin"
    with pytest.raises(AssetError, match="broke off 3 times.*run the command again to resume") as caught:
        fetch_file(f"{origin.url}/w.bin", target, len(PAYLOAD), DIGEST, retries=2)
    assert "\n" not in str(caught.value)
    assert not target.exists() and part_path(target).stat().st_size == 3000, "what arrived is kept for the next run"


def test_missing_on_the_server_and_unreachable(origin: Origin, tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="HTTP 404"):
        fetch_file(f"{origin.url}/absent.bin", tmp_path / "a.bin", None, None)
    with pytest.raises(AssetError, match="cannot reach 127.0.0.1:9 .*--from"):
        fetch_file("http://127.0.0.1:9/w.bin", tmp_path / "a.bin", None, None)
    with pytest.raises(AssetError, match="cannot reach"):
        fetch_file("http://127.0.0.1:9/w.bin", tmp_path / "examples" / "new" / "a.bin", None, None)
    assert list(tmp_path.iterdir()) == [], "a failed fetch leaves no file and no folder it made"


def test_a_local_file_is_copied_through_a_part_file_and_checked(tmp_path: Path) -> None:
    source = tmp_path / "mirror.bin"
    source.write_bytes(PAYLOAD)
    target = tmp_path / "out" / "w.bin"
    fetch_file(str(source), target, len(PAYLOAD), DIGEST)
    assert target.read_bytes() == PAYLOAD
    fetch_file(source.as_uri(), tmp_path / "out" / "v.bin", len(PAYLOAD), DIGEST)
    with pytest.raises(AssetError, match="does not exist"):
        fetch_file(str(tmp_path / "absent.bin"), tmp_path / "out" / "x.bin", None, None)
