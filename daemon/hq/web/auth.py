"""Who is asking: sign-in and sign-out, the session on every request, CSRF, roles.

- Every page but the sign-in form and the static files needs a live session;
  a page asked for without one sends the browser to sign in (and back after).
- Every POST carries a CSRF token: the session's (a form field `csrf` or the
  header `X-CSRF-Token`), or, on the sign-in form itself, the token of a
  short-lived cookie set with the form. A POST from another origin is refused.
- What changes the ledger needs the manager role; a viewer's POST gets 403.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import NoReturn
from urllib.parse import quote, unquote, urljoin, urlsplit

from aiohttp import web

from daemon.hq.users import User, find_user, verify_password
from daemon.hq.web.sessions import (
    WebSession,
    end_session,
    find_session,
    set_flash,
    start_session,
    touch,
)
from daemon.hq.web.state import DASHBOARD, FLASH, SESSION, Flash, render

SESSION_COOKIE = "posd_hq_session"
LOGIN_COOKIE = "posd_hq_login"
OPEN_PATHS = ("/login", "/static/", "/healthz")
# Not pages: no redirect to sign in, no flash message taken.
QUIET_PATHS = ("/api/", "/counts/stream")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cookie_options(request: web.Request) -> dict[str, object]:
    return {"httponly": True, "samesite": "Strict", "secure": request.secure, "path": "/"}


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
        _headers(response)
        raise
    _headers(response)
    return response


def _headers(response: web.StreamResponse) -> None:
    if response.prepared:
        return
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
        " frame-ancestors 'none'; form-action 'self'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session, send strangers to sign in, check every POST's CSRF token."""
    if request.path.startswith(OPEN_PATHS):
        if request.method == "POST":
            await _check_origin(request)
        return await handler(request)
    dash = request.app[DASHBOARD]
    token = request.cookies.get(SESSION_COOKIE)
    now = dash.settings.wall()
    policy = dash.settings.sessions
    session = None
    if token:
        session = await dash.db.read(lambda store: find_session(store.db, token, now, policy))
    if session is None:
        if request.method == "GET" and not request.path.startswith(QUIET_PATHS):
            target = request.rel_url.raw_path_qs  # percent-encoded: plain ASCII
            raise web.HTTPSeeOther(f"/login?next={quote(target, safe='')}")
        raise web.HTTPUnauthorized(
            text="sign in first: your session has ended or you never signed in",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        await _check_origin(request)
        await _check_csrf(request, session.csrf)
    if now - session.seen_s >= policy.touch_s:
        await dash.db.write(lambda central: touch(central.backend, session, now))
    if session.flash and request.method == "GET" and not request.path.startswith(QUIET_PATHS):
        request[FLASH] = Flash.parse(session.flash)
        await dash.db.write(lambda central: set_flash(central.backend, session, None))
    request[SESSION] = session
    return await handler(request)


async def redirect_with(request: web.Request, flash: Flash, location: str) -> NoReturn:
    """Show `flash` on the page at `location` (POST, then redirect, then GET)."""
    dash = request.app[DASHBOARD]
    session = current(request)
    await dash.db.write(lambda central: set_flash(central.backend, session, flash.stored()))
    raise web.HTTPSeeOther(location)


async def _check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.host:
        raise web.HTTPForbidden(
            text=f"a form from {origin} cannot change this dashboard; use the dashboard itself",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )


async def _check_csrf(request: web.Request, expected: str) -> None:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise web.HTTPForbidden(
            text="this form has expired or did not come from this dashboard; reload the page"
            " and try again",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )


def current(request: web.Request) -> WebSession:
    session: WebSession = request[SESSION]
    return session


def require_manager(request: web.Request, what: str) -> User:
    """The signed-in user, when a manager; 403 (saying so) otherwise."""
    user = current(request).user
    if not user.is_manager:
        raise web.HTTPForbidden(
            text=f"{what} needs a manager; {user.name} is signed in as {user.role}",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
    return user


# -- the sign-in form ------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, None, 200)


def _login_page(
    request: web.Request, message: str | None, status: int, name: str = ""
) -> web.Response:
    # The same token while the cookie lasts: a second sign-in tab (or a stray request
    # for an icon) must not void the form already open.
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{32}", token):
        token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        status=status,
        login_csrf=token,
        message=message,
        name=name,
        next=local_target(request.query.get("next") or ""),
    )
    response.set_cookie(LOGIN_COOKIE, token, max_age=3600, **cookie_options(request))  # type: ignore[arg-type]
    return response


async def login(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    form = await request.post()
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    target = local_target(str(form.get("next") or ""))
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    sent = str(form.get("csrf") or "")
    if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return _login_page(
            request, "The sign-in form had expired; please sign in again.", 403, name
        )
    address = request.remote or "?"
    attempt = secrets.token_hex(8)
    now = dash.settings.wall()
    wait = await dash.db.write(
        lambda central: dash.throttle.reserve(central.backend, address, name, attempt, now)
    )
    if wait > 0:
        minutes = max(1, math.ceil(wait / 60))
        return _login_page(
            request,
            f"Too many failed sign-ins for {name!r} from this address; try again in"
            f" {minutes} minute{'s' if minutes != 1 else ''}.",
            429,
            name,
        )
    found = await dash.db.read(lambda store: find_user(store.db, name)) if name else None
    stored = found[1] if found else await dash.decoy_hash()
    loop = asyncio.get_running_loop()
    matches = await loop.run_in_executor(None, verify_password, password, stored)
    if found is None or not matches:
        return _login_page(request, "Wrong user name or password: nobody was signed in.", 401, name)
    await dash.db.write(
        lambda central: dash.throttle.release(central.backend, address, name, attempt)
    )
    user = found[0]
    token = await dash.db.write(
        lambda central: start_session(
            central.backend, user, dash.settings.wall(), dash.settings.sessions
        )
    )
    response = web.HTTPSeeOther(target or "/")
    response.set_cookie(SESSION_COOKIE, token, **cookie_options(request))  # type: ignore[arg-type]
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def logout(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    session = current(request)
    await dash.db.write(lambda central: end_session(central.backend, session))
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


def local_target(target: str) -> str:
    """`target` when it is a path on this site; "" otherwise (no open redirect).

    Browsers forgive a great deal in a Location: they drop tabs and line breaks,
    read `\\` as `/`, and take `//host`, `/\\host` or `https:host` to be another site.
    So only a path of visible ASCII is let through (no blanks, no control characters,
    no backslash), one that starts with a single `/` (also once percent-decoded) and
    that still names this site after it is resolved against it."""
    if len(target) > 2048 or not target.startswith("/") or target.startswith("//"):
        return ""
    if any(not "!" <= c <= "~" or c == "\\" for c in target):
        return ""
    # Should anything on the way decode it once, it must still be a local path.
    decoded = unquote(target).replace("\t", "").replace("\n", "").replace("\r", "")
    if decoded.startswith(("//", "/\\")):
        return ""
    parts = urlsplit(urljoin("http://dashboard.invalid/", target))
    if parts.scheme != "http" or parts.netloc != "dashboard.invalid":
        return ""
    return target
