"""Which requests the server answers: its own page's, never another web site's.

Any page the user opens can make their browser send requests to this server. Three checks keep
such pages out, before a request's body is read:

- **Host.** The ``Host`` header must name this server (:func:`allowed_hosts`), so a site cannot
  reach it through DNS rebinding.
- **Origin.** A browser marks every POST and DELETE with ``Origin`` (and current browsers with
  ``Sec-Fetch-Site``); one that comes from another origin, or from a sandboxed page (``null``),
  is refused (:func:`cross_site_problem`).
- **Content type.** A body must be typed so that another site's page cannot send it without a
  CORS preflight, which this server never grants: a form's or plain text's type is refused.

Tools such as curl send neither ``Origin`` nor ``Sec-Fetch-Site`` and are served as before, given
a fitting ``Content-Type``.

A WebSocket handshake (the Live tab's) is a GET that the same-origin policy does not protect: any
page may open one to any server. Its Host and Origin are checked the same way before it is
accepted (:func:`websocket_problem`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

#: Methods that change the server's state; the only ones checked.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: Content types a page on another site may send without a CORS preflight (the Fetch standard's
#: CORS-safelisted request header values), and the empty type, which it may send too.
_FORM_TYPES = frozenset({"", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})

#: ``Sec-Fetch-Site`` values of a request the user or this server's own page made.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})

#: Host names that reach this machine only.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

#: Addresses that listen on every interface.
_ANY_ADDRESS = ("0.0.0.0", "::", "")


def cross_site_problem(method: str, headers: Mapping[str, str]) -> str | None:
    """Why this request may not change anything, or None when it may. ``headers``: lower-case
    names (as Starlette gives them)."""
    if method.upper() not in UNSAFE_METHODS:
        return None
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in _OWN_FETCH_SITES:
        return f"refused: the request came from another site (Sec-Fetch-Site: {fetch_site[:40]}); use this server's own page"
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, headers.get("host", "")):
        return f"refused: the request came from another origin ({origin[:80]}); use this server's own page"
    if method.upper() != "DELETE":
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type in _FORM_TYPES:
            shown = media_type or "none"
            return f"refused: a body of content type {shown}; send uploads as application/octet-stream (or the file's type) and jobs as application/json"
    return None


def websocket_problem(headers: Mapping[str, str], allowed: list[str] | None) -> str | None:
    """Why a WebSocket handshake is refused, or None when it may be accepted: a Host this server
    does not answer to (``allowed``: see :func:`allowed_hosts`; None accepts any), or an
    ``Origin`` (or ``Sec-Fetch-Site``) of another site. Browsers always send ``Origin`` on a
    WebSocket handshake; a tool without one is served, as with :func:`cross_site_problem`."""
    host = headers.get("host", "")
    if allowed is not None and not host_allowed(host, allowed):
        return f"refused: this server does not answer to the host name {host[:80]!r} (see --allow-host)"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.strip().lower() not in _OWN_FETCH_SITES:
        return f"refused: the connection came from another site (Sec-Fetch-Site: {fetch_site[:40]})"
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, host):
        return f"refused: the connection came from another origin ({origin[:80]})"
    return None


def _same_origin(origin: str, host: str) -> bool:
    """Whether an ``Origin`` header names the server the request was sent to (its ``Host``)."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and parts.netloc.lower() == host.strip().lower()


def allowed_hosts(listen_on: str, extra: Iterable[str] = ()) -> list[str] | None:
    """The ``Host`` names accepted by a server listening on ``listen_on``: the loopback names, the
    address it listens on, and, when that is every interface, this machine's names and
    addresses; plus ``extra`` (an operator's ``--allow-host``). ``*`` in ``extra`` turns the
    check off (None)."""
    extra = [name.strip().lower() for name in extra if name.strip()]
    if "*" in extra:
        return None
    names = list(LOOPBACK_NAMES)
    if listen_on in _ANY_ADDRESS:
        names += _machine_names()
    else:
        names.append(listen_on.lower())
    names += extra
    return list(dict.fromkeys(_host_header_form(name) for name in names))


def host_allowed(host_header: str, allowed: list[str]) -> bool:
    """Whether a ``Host`` header (name or address, with or without a port) is one of ``allowed``."""
    host = host_header.strip().lower()
    if host.startswith("["):  # an IPv6 address: "[::1]:7860"
        host = host[: host.find("]") + 1] if "]" in host else host
    else:
        host = host.split(":", 1)[0]
    return host in allowed


def _machine_names() -> list[str]:
    """This machine's host name, full name and the addresses they resolve to (no network)."""
    found = [socket.gethostname(), socket.getfqdn()]
    for name in list(found):
        try:
            found += [str(info[4][0]) for info in socket.getaddrinfo(name, None)]
        except OSError:
            continue
    return [name.lower() for name in found if name]


def _host_header_form(name: str) -> str:
    """An IPv6 address as a ``Host`` header carries it (in brackets); anything else unchanged."""
    try:
        if ipaddress.ip_address(name.strip("[]")).version == 6:
            return f"[{name.strip('[]')}]"
    except ValueError:
        pass
    return name
