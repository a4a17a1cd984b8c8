"""The analytics tables (the ledger's own reports, run on HQ's database), with charts
where a picture says it faster, and each table as CSV or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from markupsafe import Markup

from daemon.hq.web.charts import Bar, bar_chart, column_chart, money, percent
from daemon.hq.web.state import DASHBOARD, page
from daemon.ledger.analytics import REPORTS, Table, time_to_locate
from daemon.ledger.reader import ReadStore
from daemon.ledger.recalls import as_csv
from daemon.ledger.stocktake import accuracy_by_branch

TOP_BARS = 20
DAYS_SHOWN = 60


# Engineering figures (milliseconds to find a history) are not a manager's: the
# terminals page shows them, and the download is still offered.
ENGINEERING = frozenset({"time-to-locate"})


def _reports() -> dict[str, Callable[[ReadStore], Table]]:
    found = dict(REPORTS)
    # A light sample; `posd report time-to-locate` takes the full one.
    found["time-to-locate"] = lambda store: time_to_locate(store, samples=50)
    found["count-accuracy"] = accuracy_by_branch
    return found


@dataclass(frozen=True)
class AnalyticsReport:
    name: str
    table: Table
    chart: Markup


def chart_for(name: str, table: Table) -> Markup:
    rows = table.as_dicts()
    if name == "registered-per-day":
        rows = rows[-DAYS_SHOWN:]
        return column_chart(
            f"Units received and sold per day (last {len(rows)} days)",
            [r["day"] for r in rows],
            [("received", [r["received"] for r in rows]), ("sold", [r["sold"] for r in rows])],
        )
    if name == "branch-returns" and rows:
        return bar_chart(
            "Return rate per branch, against the chain's",
            [Bar(r["branch"], r["return_rate"], r["flag"] == "unusual") for r in rows[:TOP_BARS]],
            percent,
            marker=("chain", rows[0]["chain_rate"]),
        )
    bars: dict[str, tuple[str, Callable[[dict[str, Any]], Bar], Callable[[float], str]]] = {
        "supplier-failure": (
            "Returns and repairs per unit received",
            lambda r: Bar(f"{r['supplier']} · {r['product']}", float(r["failure_rate"])),
            percent,
        ),
        "repeated-defects": (
            "Units repaired again and again, per unit sold",
            lambda r: Bar(str(r["product"]), float(r["repeat_rate"])),
            percent,
        ),
        "technician-repeats": (
            "Repairs that came back, per technician",
            lambda r: Bar(str(r["technician"] or "(none named)"), float(r["repeat_rate"])),
            percent,
        ),
        "warranty-vs-margin": (
            "Warranty cost beyond the margin",
            lambda r: Bar(str(r["product"]), float(r["excess_cents"]), True),
            money,
        ),
        "count-accuracy": (
            "Inventory accuracy by serial, count by count",
            lambda r: Bar(f"{r['branch']} {r['day']} {r['count']}", float(r["accuracy"])),
            percent,
        ),
    }
    if name not in bars or not rows:
        return Markup("")
    title, make, fmt = bars[name]
    return bar_chart(title, [make(r) for r in rows[:TOP_BARS]], fmt)


async def analytics_page(request: web.Request) -> web.Response:
    dash = request.app[DASHBOARD]
    reports = {k: v for k, v in _reports().items() if k not in ENGINEERING}

    def read(store: ReadStore) -> list[tuple[str, Table]]:
        return [(name, make(store)) for name, make in reports.items()]

    tables = await dash.db.read(read)
    found = [AnalyticsReport(name, table, chart_for(name, table)) for name, table in tables]
    return await page(request, "analytics.html", reports=found)


async def analytics_export(request: web.Request) -> web.Response:
    """GET /analytics/{name}.csv|json"""
    dash = request.app[DASHBOARD]
    name, kind = request.match_info["name"], request.match_info["kind"]
    make = _reports().get(name)
    if make is None:
        raise web.HTTPNotFound(
            text=f"there is no report {name!r}; choose one of {', '.join(_reports())}",
            content_type="text/plain",
        )
    table = await dash.db.read(make)
    disposition = {"Content-Disposition": f'attachment; filename="{name}.{kind}"'}
    if kind == "csv":
        return web.Response(text=as_csv(table), content_type="text/csv", headers=disposition)
    body = {"title": table.title, "rows": table.as_dicts()}
    return web.Response(
        text=json.dumps(body, indent=2, default=str),
        content_type="application/json",
        headers=disposition,
    )
