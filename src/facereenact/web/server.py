"""Running the page under uvicorn: the port is taken before anything is announced, and a stop
(Ctrl+C or SIGTERM) ends the process within seconds, whatever clients are still sending.

On a stop uvicorn stops listening, gives open requests :data:`SHUTDOWN_GRACE_S` to finish and
then cuts them off (each is one log line, :class:`_CutOffQuietly`); the application's shutdown
then cancels the jobs and deletes the server's temporary folder
(:meth:`facereenact.web.service.WebService.close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI

from facereenact.errors import FaceReenactError

log = logging.getLogger("facereenact.web")

#: Seconds a stopping server lets unfinished requests (a slow upload) go on before cutting them.
SHUTDOWN_GRACE_S = 1


class PortUnavailable(FaceReenactError):
    """The address and port cannot be listened on (in use, or not this machine's)."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, ready to hand to uvicorn.

    Raises:
        PortUnavailable: the port is taken, or the address is not one of this machine's.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortUnavailable(f"port {port} on {host} is in use: choose another with --port") from None
        raise PortUnavailable(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    except (socket.gaierror, OverflowError) as error:
        sock.close()
        raise PortUnavailable(f"cannot listen on {host}:{port}: {error}") from None
    return sock


class _CutOffQuietly:
    """ASGI wrapper: a request that uvicorn cancels at a stop (a slow upload still arriving) is
    answered "stopping" and logged in one line, instead of a traceback per request."""

    def __init__(self, application: Any):
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.application(scope, receive, send)
            return
        try:
            await self.application(scope, receive, send)
        except asyncio.CancelledError:
            log.warning("%s %s cut off: the server is stopping", scope["method"], scope["path"])
            with contextlib.suppress(Exception):  # the answer may have begun, or the client gone
                await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": b'{"error": "the server is stopping"}'})


def serve(application: FastAPI, sock: socket.socket, announce: Callable[[], None]) -> None:
    """Serve on a socket from :func:`listening_socket` until stopped; ``announce`` is called
    just before (the port is already taken, so what it says holds)."""
    config = uvicorn.Config(_CutOffQuietly(application), log_level="warning", timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    announce()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises the Ctrl+C again once it has shut down cleanly
        pass
