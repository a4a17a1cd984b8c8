"""What every handler shares: the settings, the database, the templates, the brakes.

One `Dashboard` per application (made by `create_app`), kept under the app key
`DASHBOARD`; nothing lives at module level.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

import jinja2
from aiohttp import web

from daemon.hq.exposure import plain_on_network
from daemon.hq.users import hash_password
from daemon.hq.web.db import HqDatabase
from daemon.hq.web.reads import open_conflict_count
from daemon.hq.web.sessions import LoginThrottle, SessionPolicy, WebSession


@dataclass(frozen=True)
class WebSettings:
    """How the dashboard behaves; the defaults suit a real HQ."""

    poll_s: float = 1.0  # how often HQ's database is checked for new events
    keepalive_s: float = 15.0  # a comment on a quiet live stream, so proxies keep it
    sessions: SessionPolicy = field(default_factory=SessionPolicy)
    # Failed sign-ins: this many per user name from one address, four times as many from
    # one address (any names) and for one name (all addresses), kept for the window.
    login_attempts: int = 5
    login_window_s: float = 900.0
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    zone: tzinfo | None = None  # the store's time zone for every time shown; None: the system's
    # Where it is served and which broker HQ uses, to warn when either is in the clear.
    listen: str | None = None
    https: bool = False
    broker: str | None = None


class Dashboard:
    def __init__(self, db: HqDatabase, settings: WebSettings, env: jinja2.Environment) -> None:
        self.db = db
        self.settings = settings
        self.env = env
        self.warnings = plain_on_network(
            listen=settings.listen, https=settings.https, broker=settings.broker
        )
        self.throttle = LoginThrottle(
            settings.login_attempts,
            4 * settings.login_attempts,
            settings.login_window_s,
            per_user=4 * settings.login_attempts,
        )
        self._decoy: str | None = None

    async def decoy_hash(self) -> str:
        """A hash to check unknown names against, so they take as long as known ones."""
        if self._decoy is None:
            loop = asyncio.get_running_loop()
            self._decoy = await loop.run_in_executor(None, hash_password, "posd-decoy-password")
        return self._decoy


DASHBOARD = web.AppKey("dashboard", Dashboard)


@dataclass(frozen=True)
class Flash:
    """A message on the next page: what a change did, or why it was refused."""

    ok: bool
    text: str

    def stored(self) -> str:
        return f"{'ok' if self.ok else 'refused'}:{self.text}"

    @classmethod
    def parse(cls, stored: str) -> Flash:
        kind, _, text = stored.partition(":")
        return cls(kind == "ok", text)


SESSION = web.RequestKey("session", WebSession)
FLASH = web.RequestKey("flash", Flash)


def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """A page from `template`, with the signed-in user and their CSRF token."""
    dash = request.app[DASHBOARD]
    session: WebSession | None = request.get(SESSION)
    html = dash.env.get_template(template).render(
        user=session.user if session else None,
        csrf=session.csrf if session else "",
        flash=request.get(FLASH),
        path=request.path,
        warnings=dash.warnings,
        **context,
    )
    return web.Response(text=html, content_type="text/html", status=status)


async def page(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """`render`, with the count of open conflicts the navigation shows."""
    dash = request.app[DASHBOARD]
    waiting = await dash.db.read(open_conflict_count)
    return render(request, template, status=status, open_conflicts=waiting, **context)
