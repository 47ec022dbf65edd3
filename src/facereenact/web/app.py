"""The HTTP face of :class:`~facereenact.web.service.WebService`: the page and a small JSON API.

Routes (every error is ``{"error": "one line"}`` with a fitting status; requests that change
anything must come from the page itself, see :mod:`facereenact.web.guard`):

- ``GET /``: the page; ``/static/…``: its script and style.
- ``GET /api/config``: limits and methods; ``GET /api/health``: jobs running and waiting.
- ``GET /api/examples``: example motions; ``GET /api/examples/{name}``: one clip (for preview).
- ``POST /api/uploads/source?name=…`` / ``POST /api/uploads/driving?name=…``: the file as the raw
  request body (streamed to disk, size-limited, then checked by content); ``GET
  /api/uploads/{id}/preview.png``: the portrait's faces with their fitted mesh.
- ``POST /api/jobs`` (:class:`~facereenact.web.service.JobChoices`): queue a run;
  ``GET /api/jobs/{id}``: state, place in line, progress; ``GET /api/jobs/{id}/video``: the
  result (``?download=1``: as an attachment); ``DELETE /api/jobs/{id}``: cancel or discard it.
- ``GET /api/live?source=…`` (a WebSocket): the Live tab, camera frames in and animated frames
  out (:mod:`facereenact.web.live`).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from facereenact.app.animate import StageMethod, worker_network
from facereenact.app.fit import FaceFitter, load_fitter
from facereenact.app.locations import resolve_assets
from facereenact.errors import FaceReenactError, NoFaceError
from facereenact.web.guard import cross_site_problem, host_allowed
from facereenact.web.jobqueue import Job, JobState, QueueFull
from facereenact.web.live import LiveSlots, live_session
from facereenact.web.service import JobChoices, NotFound, WebService
from facereenact.web.settings import ServerSettings
from facereenact.web.uploads import StoreFull, UploadTooLarge, receive, safe_name, stored_name

STATIC = Path(__file__).resolve().parent / "static"

log = logging.getLogger("facereenact.web")

_STATUS: tuple[tuple[type[FaceReenactError], int], ...] = (
    (UploadTooLarge, 413),
    (NotFound, 404),
    (QueueFull, 503),
    (StoreFull, 503),
    (NoFaceError, 422),
)

#: The cookie that tells one browser's uploads from another's (see :class:`~facereenact.web.uploads.UploadStore`).
CLIENT_COOKIE = "facereenact_client"
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")

#: The page loads nothing from elsewhere and may not be framed by other sites.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; script-src 'self'; "
        "style-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def create_app(
    settings: ServerSettings | None = None,
    fitter: FaceFitter | None = None,
    neural: StageMethod | None = None,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """The application. Loads the face fitter (and ``settings.model``'s network) now unless
    given, so a missing model file stops ``serve`` before it listens. ``allowed_hosts``: the Host
    headers accepted (``serve`` passes the loopback names when it binds to loopback, which keeps
    other web sites from reaching the server through DNS rebinding; None accepts any)."""
    settings = settings or ServerSettings()
    neural_name = None
    if neural is None and settings.model is not None:
        neural = worker_network(settings.model, settings.device)
    if fitter is None:
        fitter = load_fitter(resolve_assets(settings.assets), settings.device)
    if neural is not None:
        neural_name = settings.model.name if settings.model is not None else "trained model"
    service = WebService(settings, fitter, neural, neural_name)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="facereenact", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Refuse other hosts and other sites before any body is read; mark the page's answers."""
        host = request.headers.get("host", "")
        if allowed_hosts is not None and not host_allowed(host, allowed_hosts):
            return JSONResponse({"error": f"refused: this server does not answer to the host name {host[:80]!r} (see --allow-host)"}, status_code=400)
        problem = cross_site_problem(request.method, request.headers)
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=403)
        response = await call_next(request)
        for key, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path == "/" and not _CLIENT_ID.fullmatch(request.cookies.get(CLIENT_COOKIE, "")):
            response.set_cookie(CLIENT_COOKIE, secrets.token_urlsafe(16), httponly=True, samesite="strict")
        return response

    @app.exception_handler(FaceReenactError)
    async def user_error(_: Request, error: FaceReenactError) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(error, kind)), 400)
        return JSONResponse({"error": str(error)}, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 404:
            message = f"not found: {request.url.path}"
        elif error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(error.detail).lower()
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body" and not isinstance(part, int))
        message = first.get("msg", "invalid request")
        return JSONResponse({"error": f"bad request: {where}: {message}" if where else f"bad request: {message}"}, status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/config")
    def config() -> dict:
        return service.config()

    @app.get("/api/health")
    def health() -> dict:
        return service.health()

    @app.get("/api/examples")
    def examples() -> list[dict]:
        return [
            {"name": e.name, "seconds": round(e.seconds, 2), "frames": e.frames, "has_audio": e.has_audio, "url": f"/api/examples/{e.name}"}
            for e in service.examples.all()
        ]

    @app.get("/api/examples/{name}")
    def example_clip(name: str) -> FileResponse:
        example = service.examples.get(name)
        if example is None:
            raise NotFound(f"there is no example motion named {name!r}")
        return FileResponse(example.path, media_type="video/mp4" if example.path.suffix == ".mp4" else None)

    @app.post("/api/uploads/{kind}", response_model=None)
    async def upload(kind: Literal["source", "driving"], request: Request, name: str = "") -> Response | dict:
        filename = safe_name(name, "portrait" if kind == "source" else "clip")
        declared = request.headers.get("content-length")
        upload_id, folder = service.uploads.new_folder()
        try:
            path = folder / stored_name(kind, filename)
            settings = service.settings
            length = int(declared) if declared and declared.isdigit() else None
            await receive(request.stream(), path, filename, settings.max_upload_bytes, settings.max_upload_mb, length)
            accept = service.accept_source if kind == "source" else service.accept_driving
            stored = await run_in_threadpool(accept, _owner(request), upload_id, folder, path, filename)
        except ClientDisconnect:
            service.uploads.abandon(folder)
            log.warning("upload of %s cut off: the client went away", filename)
            return Response(status_code=400)
        except BaseException:
            service.uploads.abandon(folder)
            raise
        described = {"id": stored.id, "kind": kind, "name": stored.name, **stored.info}
        if stored.preview is not None:
            described["preview"] = f"/api/uploads/{stored.id}/preview.png"
        return described

    @app.get("/api/uploads/{upload_id}/preview.png")
    def preview(upload_id: str) -> FileResponse:
        stored = service.uploads.get(upload_id, "source")
        if stored is None or stored.preview is None:
            raise NotFound("that portrait is no longer on the server; upload it again")
        return FileResponse(stored.preview, media_type="image/png")

    @app.post("/api/jobs", status_code=202)
    def submit(request: JobChoices) -> dict:
        return service.status(service.submit(request))

    def _job(job_id: str) -> Job:
        job = service.queue.get(job_id)
        if job is None:
            raise NotFound("that job is no longer on the server")
        return job

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str) -> dict:
        return service.status(_job(job_id))

    @app.get("/api/jobs/{job_id}/video")
    def job_video(job_id: str, download: bool = False) -> FileResponse:
        job = _job(job_id)
        if job.state is not JobState.done or job.result is None:
            raise NotFound(f"that job has no result ({job.state.value})")
        name = job.payload.download_name
        return FileResponse(job.result, media_type="video/mp4", filename=name, content_disposition_type="attachment" if download else "inline")

    slots = LiveSlots(settings.max_live)

    @app.websocket("/api/live")
    async def live(websocket: WebSocket) -> None:
        await live_session(websocket, service, slots, allowed_hosts)

    @app.delete("/api/jobs/{job_id}")
    def discard(job_id: str) -> Response:
        if not service.queue.discard(job_id):
            raise NotFound("that job is no longer on the server")
        return Response(status_code=204)

    return app


def _owner(request: Request) -> str:
    """Who sent a request, for the per-client upload limit: the page's cookie, else the address."""
    cookie = request.cookies.get(CLIENT_COOKIE, "")
    if _CLIENT_ID.fullmatch(cookie):
        return f"cookie {cookie}"
    return f"address {request.client.host if request.client else 'unknown'}"
