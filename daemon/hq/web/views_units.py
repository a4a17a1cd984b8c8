"""The counts page, and finding a unit's passport (exact serial, prefix or range)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from aiohttp import web

from daemon.hq.web.live import count_filter
from daemon.hq.web.reads import choices, dashboard_counts
from daemon.hq.web.state import DASHBOARD, page
from daemon.ledger.queries import Passport, passport, search
from daemon.ledger.reader import ReadStore
from daemon.ledger.store import Unit
from daemon.rules.serials import serial_key

SEARCH_LIMIT = 100
MODES = ("serial", "prefix", "range")


async def counts_page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    filters = count_filter(request)
    view, options = await dash.db.read(
        lambda store: (dashboard_counts(store, filters), choices(store))
    )
    query = urlencode(filters.query())
    return await page(
        request,
        "counts.html",
        view=view,
        options=options,
        stream_url="/counts/stream" + (f"?{query}" if query else ""),
    )


def unit_link(unit: Unit) -> str:
    return "/unit?" + urlencode({"product": unit.product.code, "serial": unit.serial})


async def units_page(request: web.Request) -> web.Response:
    """GET /units?mode=serial|prefix|range&q=...&to=...&product=..."""
    dash = request.app[DASHBOARD]
    mode = request.query.get("mode", "serial")
    first = request.query.get("q", "").strip()
    last = request.query.get("to", "").strip()
    product = request.query.get("product", "").strip() or None
    form = {"mode": mode, "q": first, "to": last, "product": product or ""}
    options = await dash.db.read(choices)
    problem = _check_search(mode, first, last)
    if problem or not first:
        status = 400 if problem else 200
        return await page(
            request, "search.html", status=status, form=form, options=options, problem=problem
        )

    def find(store: ReadStore) -> list[Unit]:
        if mode == "serial":
            return search(store, serial=first, product=product, limit=SEARCH_LIMIT)
        if mode == "prefix":
            return search(store, prefix=first, product=product, limit=SEARCH_LIMIT)
        return search(store, first=first, last=last, product=product, limit=SEARCH_LIMIT)

    units = await dash.db.read(find)
    if mode == "serial" and len(units) == 1:
        raise web.HTTPSeeOther(unit_link(units[0]))
    return await page(
        request,
        "search.html",
        form=form,
        options=options,
        problem=None,
        units=units,
        links={u.id: unit_link(u) for u in units},
        limit=SEARCH_LIMIT,
    )


def _check_search(mode: str, first: str, last: str) -> str | None:
    if mode not in MODES:
        return f"search by {mode!r} is not offered; choose serial, prefix or range"
    if len(first) > 200 or len(last) > 200:
        return "a serial has at most 200 characters"
    if mode == "range" and first and not last:
        return f'the range from "{first}" needs a last serial too'
    if mode == "range" and first and serial_key(last) < serial_key(first):
        return (
            f'the range "{first}" to "{last}" is backwards: the first serial sorts after the last'
        )
    return None


async def unit_page(request: web.Request) -> web.Response:
    """GET /unit?product=...&serial=...: the unit's passport, its whole history."""
    dash = request.app[DASHBOARD]
    product = request.query.get("product", "").strip()
    serial = request.query.get("serial", "").strip()

    def find(store: ReadStore) -> Passport | None:
        units = search(store, serial=serial, product=product, limit=1) if serial else []
        return passport(store, units[0]) if units else None

    found = await dash.db.read(find) if product else None
    if found is None:
        return await page(
            request,
            "message.html",
            status=404,
            title="No such unit",
            message=f'HQ has no unit {product or "(no product)"} serial "{serial}";'
            " check the product and the serial, or search by prefix",
        )
    return await page(request, "unit.html", passport=in_time_order(found), unit=found.unit)


def in_time_order(found: Passport) -> Passport:
    """The history as it happened, across terminals: HQ stores each terminal's events
    as they arrive (one offline for a day sends its day late), so its order is not
    the order things happened in. Events at one moment keep HQ's order."""
    return Passport(found.unit, sorted(found.events, key=lambda e: event_time(e.at)))


def event_time(at: str) -> datetime:
    """When an event happened; a time HQ cannot read sorts first, as stored."""
    try:
        moment = datetime.fromisoformat(at)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
