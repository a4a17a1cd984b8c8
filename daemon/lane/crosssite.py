"""Keeping other web sites out of the kiosk API and the lane screen.

The API has no log-in: it listens on the loopback interface only. A browser on the
terminal could still be led to it by a page from elsewhere (a form that posts to
127.0.0.1, a script on another local port, a DNS name rebound to 127.0.0.1), so every
request is checked before any handler sees it:

- `Host` must be there and name the loopback interface (127.0.0.1, localhost or [::1])
  and the port the API listens on: a rebound DNS name (`evil.example`,
  `127.0.0.1.nip.io`, `localhost.`), a number spelt otherwise (`127.1`, `0x7f000001`)
  or another port is refused;
- `Origin`, when the browser sends one, must be this very origin (scheme, host and
  port); `Origin: null` (a sandboxed frame, a file) is refused too;
- `Sec-Fetch-Site`, when the browser sends it, must say `same-origin` or `none` (typed
  in, or opened by the kiosk browser itself);
- a POST must say `Content-Type: application/json` (a `charset`, if any, utf-8): a plain
  HTML form or a "simple" cross-site fetch can only send `text/plain`, form or multipart
  bodies, and the JSON type makes a browser ask first (a preflight nobody answers), so a
  JSON body dressed as `text/plain` is refused (415) as well.

Programs on the terminal (curl, the tests) send neither header and are let through, as
before. Every answer carries a strict Content-Security-Policy (scripts, styles, images
and connections from this origin only; nothing inline, no frames) and headers that
stop it being framed, sniffed or cached.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
    " frame-ancestors 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_SAME = frozenset({"same-origin", "none"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def host_name(host: str) -> str | None:
    """The name part of a Host header (`127.0.0.1:8765` -> `127.0.0.1`, `[::1]:80` ->
    `::1`), lower-cased; None when it is not a well-formed host."""
    if host.startswith("["):
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return name.lower()
    name, sep, port = host.rpartition(":")
    if not sep:
        name = host
    elif not port.isdigit():
        return None
    return name.lower() or None


def host_port(host: str) -> int | None:
    """The port a well-formed Host header names (80 when it names none)."""
    tail = host.rpartition("]")[2] if host.startswith("[") else host
    _, sep, port = tail.rpartition(":")
    if not sep:
        return 80
    return int(port) if port.isdigit() and len(port) <= 5 else None


def refusal(request: web.Request) -> str | None:
    """Why `request` comes from outside this terminal's own pages, or None."""
    hosts = request.headers.getall("Host", [])
    host = hosts[0] if len(hosts) == 1 else ", ".join(hosts)
    served = _local_port(request)
    if (
        len(hosts) != 1
        or host_name(host) not in LOOPBACK_NAMES
        or (served is not None and host_port(host) != served)
    ):
        return (
            f"Host {host[:80]!r} is not this terminal's loopback address; open the lane "
            f"screen at http://127.0.0.1:{served or '<port>'}/"
        )
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"http://{request.host}":
        return f"a page from {origin[:80]!r} cannot use this lane; only the lane's own screen may"
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in _SAME:
        return f"a {fetch_site[:20]} request cannot use this lane; only the lane's own screen may"
    return None


def media_refusal(request: web.Request) -> str | None:
    """Why the body of `request` is not one this API reads (JSON in UTF-8), or None."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    sent = request.headers.getall("Content-Type", [])
    charset = (request.charset or "utf-8").lower()
    if len(sent) != 1 or request.content_type != "application/json" or charset != "utf-8":
        shown = ", ".join(sent)[:80] if sent else "none"
        return f"a {request.method} here takes Content-Type application/json (UTF-8), not {shown!r}"
    return None


def _local_port(request: web.Request) -> int | None:
    transport = request.transport
    address = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
        return address[1]
    return None


@web.middleware
async def loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (403, saying why) any request another site could have made the browser send,
    and (415) a POST whose body is not JSON."""
    why = refusal(request)
    if why is not None:
        return web.Response(
            status=403,
            text=json.dumps({"ok": False, "error": why}),
            content_type="application/json",
        )
    why = media_refusal(request)
    if why is not None:
        return web.Response(
            status=415,
            text=json.dumps({"ok": False, "error": why}),
            content_type="application/json",
        )
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, streamed or not, just before its headers go out."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def protect(app: web.Application) -> None:
    """Put the checks and the headers on `app` (before it starts)."""
    app.middlewares.append(loopback_only)
    app.on_response_prepare.append(security_headers)
