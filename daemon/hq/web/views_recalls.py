"""Recalls: the list, a new recall (managers), and each recall's outreach list."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web
from multidict import MultiDictProxy

from daemon.hq.central import HqRefusal
from daemon.hq.web import actions
from daemon.hq.web.auth import redirect_with, require_manager
from daemon.hq.web.live import LIVE
from daemon.hq.web.reads import choices, recall_notice, recalls
from daemon.hq.web.state import DASHBOARD, Flash, page
from daemon.ledger.analytics import Table
from daemon.ledger.reader import ReadStore
from daemon.ledger.recalls import RecallSelector, as_csv, outreach

FIELDS = ("notice", "reason", "product", "lot", "first", "last", "prefix", "serials")
PREVIEW_UNITS = 20


async def recalls_page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    notices, options = await dash.db.read(lambda store: (recalls(store), choices(store)))
    return await page(
        request,
        "recalls.html",
        notices=notices,
        options=options,
        form=dict.fromkeys(FIELDS, ""),
        problem=None,
    )


def selector_of(form: dict[str, str]) -> RecallSelector:
    serials = tuple(s for s in re.split(r"[\s,;]+", form["serials"]) if s)
    return RecallSelector(
        product=form["product"] or None,
        lot=form["lot"] or None,
        first=form["first"] or None,
        last=form["last"] or None,
        prefix=form["prefix"] or None,
        serials=serials,
    )


def _form(posted: MultiDictProxy[Any]) -> dict[str, str]:
    return {name: str(posted.get(name) or "").strip() for name in FIELDS}


async def create(request: web.Request) -> web.Response:
    """POST /recalls: `action=preview` lists what would be flagged; `action=flag` flags it."""
    user = require_manager(request, "creating a recall")
    dash = request.app[DASHBOARD]
    posted = await request.post()
    form = _form(posted)
    selector = selector_of(form)
    if posted.get("action") == "preview":
        try:
            found = await dash.db.read(lambda store: actions.matching_units(store, selector))
            problem = None if found else f"no unit at HQ matches {selector.describe()}"
        except HqRefusal as exc:
            found, problem = [], str(exc)
        notices, options = await dash.db.read(lambda store: (recalls(store), choices(store)))
        return await page(
            request,
            "recalls.html",
            status=400 if problem else 200,
            notices=notices,
            options=options,
            form=form,
            preview=found[:PREVIEW_UNITS],
            matched=len(found),
            problem=problem,
        )
    notice = form["notice"]
    try:
        done = await dash.db.write(
            lambda central: actions.recall(
                central,
                dash.db.reader,
                notice,
                selector,
                reason=form["reason"],
                actor=user.name,
            )
        )
    except HqRefusal as exc:
        notices, options = await dash.db.read(lambda store: (recalls(store), choices(store)))
        return await page(
            request,
            "recalls.html",
            status=400,
            notices=notices,
            options=options,
            form=form,
            problem=str(exc),
        )
    request.app[LIVE].nudge()
    await redirect_with(
        request, Flash(True, done["message"]), "/recall?" + urlencode({"notice": notice})
    )


async def recall_page(request: web.Request) -> web.Response:
    """GET /recall?notice=...: what the recall flagged, and the customers to contact."""
    dash = request.app[DASHBOARD]
    notice = request.query.get("notice", "")

    def read(store: ReadStore) -> tuple[Any, Table]:
        return recall_notice(store, notice), outreach(store, notice)

    found, table = await dash.db.read(read)
    if found is None:
        return await page(
            request,
            "message.html",
            status=404,
            title="No such recall",
            message=f"there is no recall {notice!r} at HQ; the recalls page lists them all",
        )
    query = urlencode({"notice": notice})
    return await page(
        request,
        "recall.html",
        notice=found,
        table=table,
        csv_url=f"/recall/outreach.csv?{query}",
        json_url=f"/recall/outreach.json?{query}",
    )


async def outreach_export(request: web.Request) -> web.Response:
    """GET /recall/outreach.csv|json?notice=...: the outreach list to download."""
    dash = request.app[DASHBOARD]
    notice = request.query.get("notice", "")
    kind = request.match_info["kind"]
    found, table = await dash.db.read(
        lambda store: (recall_notice(store, notice), outreach(store, notice))
    )
    if found is None:
        raise web.HTTPNotFound(
            text=f"there is no recall {notice!r} at HQ", content_type="text/plain"
        )
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", notice) or "recall"
    full = quote(f"outreach-{notice}.{kind}")
    disposition = f"attachment; filename=\"outreach-{name}.{kind}\"; filename*=UTF-8''{full}"
    if kind == "csv":
        return web.Response(
            text=as_csv(table),
            content_type="text/csv",
            headers={"Content-Disposition": disposition},
        )
    body = {"notice": notice, "title": table.title, "rows": table.as_dicts()}
    return web.Response(
        text=json.dumps(body, indent=2, default=str),
        content_type="application/json",
        headers={"Content-Disposition": disposition},
    )
