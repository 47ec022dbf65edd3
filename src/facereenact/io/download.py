"""Fetching one file from a URL or a local folder: resumable, checked, atomic.

The bytes go to ``NAME.part`` beside the destination. An HTTP download that breaks off is
resumed from where the ``.part`` file ends (an HTTP ``Range`` request), within this call or by a
later one. Only once the whole file is there and its size and SHA-256 are the expected ones is
it renamed onto the destination, so the destination is either absent or complete and checked.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from facereenact.errors import AssetError
from facereenact.io.assets import sha256_of

#: ``on_progress(bytes done, total bytes or None)``.
ProgressCallback = Callable[[int, int | None], None]

#: Times a broken-off download is resumed within one call before giving up.
RETRIES = 5
#: Seconds to wait for a server to answer or send more bytes.
TIMEOUT = 30.0
_BLOCK = 1 << 16
_USER_AGENT = "facereenact-assets/1"
#: Failures worth another try: a connection that timed out or was cut (not one refused).
_TRANSIENT = (TimeoutError, socket.timeout, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https", "file")


def part_path(destination: Path) -> Path:
    """Where the bytes of ``destination`` gather until they are checked."""
    return destination.with_name(destination.name + ".part")


def fetch_file(
    source: str,
    destination: Path,
    size: int | None,
    sha256: str | None,
    on_progress: ProgressCallback = lambda done, total: None,
    retries: int = RETRIES,
    timeout: float = TIMEOUT,
) -> None:
    """Copy or download ``source`` (an http(s) or file URL, or a local path) to ``destination``.

    ``size`` and ``sha256`` (None: not known) are checked before the rename; a mismatch removes
    the downloaded bytes and raises :class:`AssetError`, as does a source that cannot be read.
    """
    made = [folder for folder in (destination.parent, *destination.parent.parents) if not folder.exists()]  # deepest first
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(destination)
    scheme = urllib.parse.urlsplit(source).scheme
    try:
        if scheme in ("http", "https"):
            _download(source, part, size, on_progress, retries, timeout)
        else:
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(source).path)) if scheme == "file" else Path(source)
            _copy(path, part, on_progress)
        _check(part, source, size, sha256)
    except BaseException:
        for folder in made:  # a failed fetch leaves no empty folders behind (a kept .part keeps its own)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    with open(part, "rb+") as handle:  # the bytes are on disk before the name points at them
        os.fsync(handle.fileno())
    os.replace(part, destination)


def _copy(path: Path, part: Path, on_progress: ProgressCallback) -> None:
    try:
        total = path.stat().st_size
        with open(path, "rb") as source, open(part, "wb") as out:
            done = 0
            for block in iter(lambda: source.read(_BLOCK * 16), b""):
                out.write(block)
                done += len(block)
                on_progress(done, total)
    except FileNotFoundError:
        part.unlink(missing_ok=True)
        raise AssetError(f"{path} does not exist") from None
    except OSError as error:
        part.unlink(missing_ok=True)
        raise AssetError(f"cannot copy {path} to {part.parent}: {error.strerror or error}") from None


def _check(part: Path, source: str, size: int | None, sha256: str | None) -> None:
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink()
        raise AssetError(f"{source} has {actual_size:,} bytes, expected {size:,}: it is not the catalogued file (nothing was written)")
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
            raise AssetError(f"{source} has SHA-256 {actual[:12]}…, expected {sha256[:12]}…: it is not the catalogued file (nothing was written)")


def _download(url: str, part: Path, size: int | None, on_progress: ProgressCallback, retries: int, timeout: float) -> None:
    """Fill ``part`` with ``url``'s bytes, resuming from what it holds; return when complete."""
    breaks = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:  # a stale .part of another file: start over
            part.unlink()
            have = 0
        if size is not None and have == size:
            return
        headers = {"User-Agent": _USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # nothing past what we have: the .part is complete (checked next)
                return
            raise AssetError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, _TRANSIENT) and breaks < retries:
                breaks += 1
                time.sleep(0.2 * breaks)
                continue
            raise AssetError(
                f"cannot reach {urllib.parse.urlsplit(url).netloc or url} ({_reason(reason)}): without a network, fetch from a mirror or a folder with --from"
            ) from None
        with response:
            total = _total(response, have, size)
            if response.status == 206 and not _resumes_at(response, have):
                response.close()
                part.unlink(missing_ok=True)  # the server answered another range: start over
                continue
            mode = "ab" if response.status == 206 else "wb"
            done = have if mode == "ab" else 0
            try:
                with open(part, mode) as out:
                    for block in iter(functools.partial(response.read, _BLOCK), b""):
                        out.write(block)
                        done += len(block)
                        on_progress(done, total)
            except (http.client.HTTPException, OSError) as error:
                if isinstance(error, OSError) and not isinstance(error, _TRANSIENT):
                    raise AssetError(f"cannot write {part}: {error.strerror or error}") from None
                # the connection broke off: resume below
        expected = total if total is not None else size
        if expected is None or part.stat().st_size >= expected:
            return
        breaks += 1
        if breaks > retries:
            raise AssetError(
                f"the download of {url} broke off {breaks} times, at {part.stat().st_size:,} of {expected:,} bytes: run the command again to resume it"
            )
        time.sleep(0.2 * breaks)


def _total(response: http.client.HTTPResponse, have: int, size: int | None) -> int | None:
    """The whole file's size from the response headers (else the catalogue's)."""
    if response.status == 206:
        whole = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        if whole.isdigit():
            return int(whole)
    length = response.headers.get("Content-Length")
    if length and length.isdigit():
        return int(length) + (have if response.status == 206 else 0)
    return size


def _resumes_at(response: http.client.HTTPResponse, have: int) -> bool:
    """A 206 answer starts at byte ``have``."""
    content_range = response.headers.get("Content-Range") or ""
    start = content_range.removeprefix("bytes ").partition("-")[0].strip()
    return start.isdigit() and int(start) == have


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
