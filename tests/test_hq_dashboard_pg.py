"""The dashboard on HQ's PostgreSQL: the same pages, figures, resolution and recall as
on SQLite (the ledger's read functions run there unchanged).

Skipped loudly without a server (POSD_REQUIRE_PG=1 makes that a failure).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hq_fixtures_web import (
    MANAGER,
    VIEWER,
    Chain,
    Client,
    DashboardServer,
    build_chain,
    cell,
)
from tests.mqtt_broker import fresh_pg_database


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    yield from fresh_pg_database()


@pytest.fixture
def chain(tmp_path: Path, pg_dsn: str) -> Iterator[Chain]:
    found = build_chain(tmp_path, pg=pg_dsn)
    yield found
    found.close()


@pytest.fixture
def server(chain: Chain) -> Iterator[DashboardServer]:
    started = DashboardServer(chain.source)
    yield started
    started.stop()


def test_the_dashboard_on_postgresql(server: DashboardServer, chain: Chain) -> None:
    viewer = Client(server.url)
    assert viewer.login(VIEWER).status == 303
    counts = viewer.get("/counts").text
    assert cell(counts, "product", "LAP", "in_stock") == 13
    assert cell(counts, "branch", "B2", "in_stock") == 5
    assert cell(counts, "prefix", "LX-2", "sold") == 1
    assert cell(counts, "branch", "B1", "flagged") == 1  # LX-1, in conflict
    assert '<span class="n" data-flag="conflict">1</span>' in counts
    assert viewer.get("/units?mode=prefix&q=LY").text.count('href="/unit?') == 5
    assert viewer.get("/units?mode=range&q=LX-3&to=LX-5").text.count('href="/unit?') == 3
    passport = viewer.get("/unit?product=LAP&serial=LX-1").text
    assert passport.count('data-kind="sell"') == 2 and "flag-conflict" in passport
    analytics = viewer.get("/analytics")
    assert analytics.status == 200 and "Supplier failure rates" in analytics.text
    terminals = viewer.get("/terminals").text
    assert ">online<" in terminals and ">offline<" in terminals

    manager = Client(server.url)
    assert manager.login(MANAGER).status == 303
    token = manager.get("/conflicts").field("csrf")
    [conflict] = chain.central.conflicts()
    done = manager.post(
        "/conflicts/resolve",
        {
            "csrf": token,
            "product": "LAP",
            "serial": "LX-1",
            "keep": conflict["events"][1],
            "note": "Eve has it",
        },
    )
    assert "conflict resolved" in html.unescape(manager.get(done.headers["Location"]).text)
    assert chain.central.conflicts() == []
    recall = manager.post(
        "/recalls",
        {"csrf": token, "action": "flag", "notice": "RC-1", "reason": "r", "serials": "LX-1 LX-2"},
    )
    assert recall.headers["Location"] == "/recall?notice=RC-1"
    rows = list(csv.reader(io.StringIO(manager.get("/recall/outreach.csv?notice=RC-1").text)))
    assert [(r[1], r[2]) for r in rows[1:]] == [("LX-1", "Eve"), ("LX-2", "Frank")]
    assert chain.central.verify().ok
