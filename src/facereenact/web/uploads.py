"""Receiving uploads safely and keeping them while the page uses them.

A body is streamed to disk and refused as soon as it passes the size limit (or at once when its
declared length already does), so an over-size upload never fills the disk. The file is stored
under a name of the server's (:func:`stored_name`); the client's name, reduced to a harmless one,
is only shown. What the file *is* is decided later by decoding it, never by its name. Each upload
lives in its own folder, deleted when it goes unused for the keep time. Each client (a browser,
by its cookie; a tool, by its address) keeps a bounded number: its own oldest go first, so one
client's flood never pushes out another's files.
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facereenact.errors import FaceReenactError, InputError


class UploadTooLarge(FaceReenactError):
    """The body passed the server's upload limit."""


class StoreFull(FaceReenactError):
    """The server holds as many uploads as it may; they expire with the keep time."""


def too_large_message(name: str, limit_mb: float) -> str:
    """The one message for an over-size upload (the page shows the same words before sending)."""
    return f"{name} is larger than the {limit_mb:g} MB upload limit"


_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(name: str | None, fallback: str) -> str:
    """A file name that cannot leave its folder or hide: the last path part, odd characters
    replaced, no leading dots, at most 80 characters (the extension kept)."""
    base = re.split(r"[/\\]", name or "")[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    if not cleaned:
        return fallback
    if len(cleaned) > 80:
        stem, dot, suffix = cleaned.rpartition(".")
        cleaned = f"{stem[: 79 - len(suffix)]}.{suffix}" if dot and len(suffix) <= 10 else cleaned[:80]
    return cleaned


_PLAIN_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def stored_name(kind: str, name: str) -> str:
    """The server's own name for an upload's file: ``kind`` plus the client's extension when it
    is a plain one. Never the client's name, so it cannot collide with what the server writes
    beside it (the portrait's preview image)."""
    suffix = Path(name).suffix.lower()
    return f"{kind}{suffix}" if _PLAIN_SUFFIX.fullmatch(suffix) else kind


async def receive(chunks: AsyncIterator[bytes], target: Path, name: str, limit_bytes: int, limit_mb: float, declared: int | None) -> int:
    """Write the streamed body to ``target``; the number of bytes written.

    Raises:
        UploadTooLarge: the declared or the received size passes ``limit_bytes``.
        InputError: the body is empty.
    """
    if declared is not None and declared > limit_bytes:
        raise UploadTooLarge(too_large_message(name, limit_mb))
    size = 0
    with target.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit_bytes:
                raise UploadTooLarge(too_large_message(name, limit_mb))
            out.write(chunk)
    if size == 0:
        raise InputError(f"{name} is empty")
    return size


@dataclass(eq=False)
class Upload:
    """A checked upload: ``kind`` is "source" (a portrait) or "driving" (a clip)."""

    id: str
    kind: str
    #: Who sent it (:func:`facereenact.web.app` derives it from a cookie or the address).
    owner: str
    folder: Path
    path: Path
    name: str
    #: What the page is told about it (faces found, frames, seconds…), JSON-ready.
    info: dict[str, Any] = field(default_factory=dict)
    preview: Path | None = None
    last_used: float = field(default_factory=time.monotonic)


class UploadStore:
    """Uploads by id, each in its own folder under ``root``. A client keeps at most
    ``per_client`` (its least recently used go first); the store holds at most ``total`` folders,
    received or being received, and refuses more until some expire."""

    def __init__(self, root: Path, per_client: int, total: int, keep_seconds: float):
        self.root = root
        self.per_client = per_client
        self.total = total
        self.keep_seconds = keep_seconds
        self._uploads: dict[str, Upload] = {}
        self._receiving = 0
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)

    def new_folder(self) -> tuple[str, Path]:
        """A fresh id and its (new, empty) folder for an upload being received; give it back
        with :meth:`add` or :meth:`abandon`.

        Raises:
            StoreFull: ``total`` uploads are stored or arriving.
        """
        with self._lock:
            if len(self._uploads) + self._receiving >= self.total:
                raise StoreFull(f"the server holds {self.total} uploads, its limit; try again in a few minutes (unused uploads expire)")
            self._receiving += 1
        upload_id = secrets.token_urlsafe(12)
        folder = self.root / upload_id
        folder.mkdir()
        return upload_id, folder

    def add(self, upload: Upload) -> None:
        """Keep a checked upload (its folder came from :meth:`new_folder`)."""
        with self._lock:
            self._receiving -= 1
            self._uploads[upload.id] = upload
            owned = [u for u in self._uploads.values() if u.owner == upload.owner]
            for oldest in sorted(owned, key=lambda u: u.last_used)[: max(0, len(owned) - self.per_client)]:
                self._drop(oldest.id)

    def abandon(self, folder: Path) -> None:
        """Delete the folder of an upload that failed or was cut off."""
        with self._lock:
            self._receiving -= 1
        shutil.rmtree(folder, ignore_errors=True)

    def get(self, upload_id: str, kind: str | None = None) -> Upload | None:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or (kind is not None and upload.kind != kind):
                return None
            upload.last_used = time.monotonic()
            return upload

    def sweep(self) -> int:
        """Delete uploads unused for ``keep_seconds``; how many went."""
        now = time.monotonic()
        with self._lock:
            expired = [u.id for u in self._uploads.values() if now - u.last_used > self.keep_seconds]
            for upload_id in expired:
                self._drop(upload_id)
            return len(expired)

    def close(self) -> None:
        with self._lock:
            for upload_id in list(self._uploads):
                self._drop(upload_id)

    def _drop(self, upload_id: str) -> None:
        upload = self._uploads.pop(upload_id)
        shutil.rmtree(upload.folder, ignore_errors=True)
