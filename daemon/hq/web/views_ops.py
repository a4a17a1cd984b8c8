"""The conflict queue (with its resolution) and the terminals."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.hq.central import HqRefusal
from daemon.hq.web import actions
from daemon.hq.web.auth import redirect_with, require_manager
from daemon.hq.web.live import LIVE
from daemon.hq.web.reads import conflicts, open_problems, terminals
from daemon.hq.web.state import DASHBOARD, Flash, page
from daemon.ledger.analytics import time_to_locate
from daemon.ledger.reader import ReadStore

# A light sample on a page; `posd report time-to-locate` takes the full one.
LOCATE_SAMPLES = 50


async def conflicts_page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]

    def read(store: ReadStore) -> tuple[Any, Any]:
        return conflicts(store), conflicts(store, resolved=True, limit=20)

    waiting, resolved = await dash.db.read(read)
    return await page(request, "conflicts.html", waiting=waiting, resolved=resolved)


async def resolve(request: web.Request) -> web.Response:
    """POST /conflicts/resolve: product, serial, keep (the event whose outcome stands), note."""
    user = require_manager(request, "resolving a conflict")
    dash = request.app[DASHBOARD]
    form = await request.post()
    product = str(form.get("product") or "")
    serial = str(form.get("serial") or "")
    keep = str(form.get("keep") or "")
    note = str(form.get("note") or "")
    if not keep:
        # The form offers the conflicting events' outcomes; nothing is chosen for the manager.
        await redirect_with(
            request,
            Flash(False, f'{product} serial "{serial}": choose which outcome stands'),
            "/conflicts",
        )
    try:
        done = await dash.db.write(
            lambda central: actions.resolve(
                central, product, serial, keep=keep, note=note, actor=user.name
            )
        )
    except HqRefusal as exc:
        await redirect_with(request, Flash(False, str(exc)), "/conflicts")
    request.app[LIVE].nudge()
    await redirect_with(
        request, Flash(True, f"{done['message']} (event {done['event']})"), "/conflicts"
    )


async def terminals_page(request: web.Request) -> web.Response:
    """The engineers' page: replication health, and how fast HQ finds a history."""
    dash = request.app[DASHBOARD]

    def read(store: ReadStore) -> tuple[Any, Any, Any]:
        return (
            terminals(store),
            open_problems(store),
            time_to_locate(store, samples=LOCATE_SAMPLES),
        )

    rows, problems, locate = await dash.db.read(read)
    return await page(request, "terminals.html", terminals=rows, problems=problems, locate=locate)
