"""The HQ dashboard as an aiohttp application.

    app = create_app(HqSource(db=Path("hq.db")))
    web.run_app(app, host="127.0.0.1", port=8080)

Pages (GET; every one needs a signed-in user):

    /                      → /counts
    /counts                units per state by product, branch and serial prefix, live
    /counts/stream         the same as server-sent events, pushed as HQ stores events
    /units                 find units: exact serial, prefix or range
    /unit                  one unit's passport: its state and whole history
    /conflicts             forks waiting for a decision, and the latest decisions
    /terminals             online or not, last seen, what HQ has stored, backlog
    /recalls, /recall      recalls, and each one's customers to contact
    /recall/outreach.csv|json, /analytics/{name}.csv|json   downloads
    /analytics             the analytics tables with charts
    /login                 the sign-in form (open to anyone)

Every time is shown in the store's zone (`WebSettings.zone`, from `posd hq web
--timezone`; the system's by default) in one format, "23 Nov 2026 10:00", through the
`when` filter; money, rates and counts through `present.Presenter`. Served without TLS
on a non-loopback address, or with HQ's broker plain `mqtt://` on the network, every
page and the log say so.

Changes (POST, a manager's, with the session's CSRF token):

    /conflicts/resolve     settle a conflict: an HQ event naming the manager
    /recalls               flag every unit a selection covers recalled
    /logout
"""

from __future__ import annotations

import logging
from pathlib import Path

import jinja2
from aiohttp import web

from daemon.hq.web import auth, views_analytics, views_ops, views_recalls, views_units
from daemon.hq.web.db import HqDatabase, HqSource
from daemon.hq.web.live import LIVE, LiveCounts, end_streams, stream
from daemon.hq.web.present import Presenter, label, number, percent, words
from daemon.hq.web.state import DASHBOARD, Dashboard, WebSettings

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)


def templates(say: Presenter | None = None) -> jinja2.Environment:
    """The pages' templates, saying times in `say`'s zone (the system's by default)."""
    say = say or Presenter()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["state_label"] = words
    env.filters["when"] = say.when
    env.filters["number"] = number
    env.filters["percent"] = percent
    env.filters["label"] = label
    env.globals["say"] = say
    return env


def create_app(source: HqSource, settings: WebSettings | None = None) -> web.Application:
    """The dashboard over HQ's database at `source`; it opens the database when the
    application starts and closes it when it stops."""
    settings = settings or WebSettings()
    db = HqDatabase(source)
    dash = Dashboard(db, settings, templates(Presenter(settings.zone)))
    for warning in dash.warnings:
        log.warning("HQ dashboard: %s", warning)
    live = LiveCounts(dash)
    app = web.Application(middlewares=[auth.security_headers, auth.sessions])
    app[DASHBOARD] = dash
    app[LIVE] = live

    async def start(app: web.Application) -> None:
        await db.open()
        live.start()

    async def stop(app: web.Application) -> None:
        await db.close()

    app.on_startup.append(start)
    app.on_shutdown.append(end_streams)
    app.on_cleanup.append(stop)
    _routes(app)
    return app


def _routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", _home)
    r.add_get("/healthz", _health)
    r.add_get("/login", auth.login_form)
    r.add_post("/login", auth.login)
    r.add_post("/logout", auth.logout)
    r.add_get("/counts", views_units.counts_page)
    r.add_get("/counts/stream", stream)
    r.add_get("/units", views_units.units_page)
    r.add_get("/unit", views_units.unit_page)
    r.add_get("/conflicts", views_ops.conflicts_page)
    r.add_post("/conflicts/resolve", views_ops.resolve)
    r.add_get("/terminals", views_ops.terminals_page)
    r.add_get("/recalls", views_recalls.recalls_page)
    r.add_post("/recalls", views_recalls.create)
    r.add_get("/recall", views_recalls.recall_page)
    r.add_get(r"/recall/outreach.{kind:csv|json}", views_recalls.outreach_export)
    r.add_get("/analytics", views_analytics.analytics_page)
    r.add_get(r"/analytics/{name:[a-z-]+}.{kind:csv|json}", views_analytics.analytics_export)
    r.add_static("/static", HERE / "static")


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/counts")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
