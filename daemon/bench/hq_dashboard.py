"""HQ dashboard figures: the counts view and the supplier failure table on HQ's SQLite
at `units` units (one receive event each), received over `DAYS` days at `BRANCHES`
branches from five suppliers, so the kept counts and activity have the rows a
chain's would (not one row per product).

Filling HQ by ingesting a million events would measure ingest, not the dashboard.
Instead a terminal ledger is filled through the CSV import (a day's deliveries per
import, the serial ranges of `daemon.bench.ledger`) and turned into the database
HQ has after storing all of that terminal's events:
HQ stores a terminal's events as they are and runs the same projection on them, so
its events, units, counts and activity tables are the terminal's; what HQ adds
(its own identity, the terminal's stream with its watermark and head hash, the
terminal and its branch) is written as ingest writes it. The branch feed (which
events went back to the terminal) is left empty: no dashboard view reads it.
`tests/test_hq_dashboard_bench.py` checks the result against a real ingest.

    dashboard_counts_ms            units per state by product, branch and prefix:
                                   what /counts and its live stream read (median of 7)
    dashboard_counts_http_ms       GET /counts for a signed-in user, page rendered
    analytics_supplier_failure_ms  the supplier failure table (median of 3)
"""

from __future__ import annotations

import asyncio
import io
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from daemon.bench.ledger import PRODUCTS, serial_for
from daemon.hq.backend import HQ_BRANCH, HQ_TERMINAL, SqliteBackend
from daemon.hq.schema import HQ_MIGRATIONS
from daemon.hq.users import Role, add_user, ensure_tables
from daemon.hq.web.db import HqSource, open_reader
from daemon.hq.web.reads import CountFilter, dashboard_counts
from daemon.ledger import Ledger
from daemon.ledger.analytics import supplier_failure
from daemon.ledger.head import head_path
from daemon.ledger.importer import import_csv
from daemon.ledger.store import HEAD_KEPT, iso, utc_now

BRANCHES = 20
DAYS = 120
SUPPLIERS = 5
BENCH_USER = "bench"


class _Days:
    """The bench ledger's clock: one day per import."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def fill(path: Path, units: int, days: int = DAYS) -> Ledger:
    """A terminal ledger with `units` units received over `days` days (one import each)."""
    clock = _Days()
    ledger = Ledger.create(path, terminal="BENCH", branch="B1", clock=clock)
    for code, name, _ in PRODUCTS:
        ledger.define_product(code, name, actor="bench", warranty_months=24)
    days = max(1, min(days, units))
    for day in range(days):
        first, last = units * day // days, units * (day + 1) // days
        rows = ["serial,product,po,supplier,branch,cost"]
        for i in range(first, last):
            code, serial = serial_for(i)
            supplier = f"Supplier {i // len(PRODUCTS) % SUPPLIERS}"
            branch = f"B{i % BRANCHES + 1}"
            rows.append(f"{serial},{code},PO-{i // 5000},{supplier},{branch},{100 + i % 900}.00")
        import_csv(ledger, io.StringIO("\n".join(rows) + "\n"), actor="bench")
        clock.now += timedelta(days=1)
    return ledger


BENCH_PASSWORD = "bench-password-not-secret"


def as_hq(path: Path) -> None:
    """Make the terminal ledger at `path` the HQ database that stored all its events."""
    db = Database(path)
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    terminal, epoch, branch = meta["terminal"], meta["epoch"], meta["branch"]
    seq, head = db.execute(
        "SELECT seq, hash FROM events WHERE terminal = ? AND epoch = ? ORDER BY seq DESC LIMIT 1",
        [terminal, epoch],
    ).fetchone()
    HQ_MIGRATIONS.apply(db)
    now = time.time()
    with db.conn:
        for key, value in (
            ("terminal", HQ_TERMINAL),
            ("branch", HQ_BRANCH),
            ("epoch", uuid.uuid4().hex[:16]),
        ):
            db.execute("UPDATE meta SET value = ? WHERE key = ?", [value, key])
        # HQ is another identity: the terminal's head record is not its own.
        db.execute("DELETE FROM meta WHERE key = ?", [HEAD_KEPT])
        db.execute(
            "INSERT INTO hq_streams (terminal, epoch, acked, head_hash, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            [terminal, epoch, seq, head, now],
        )
        db.execute(
            "INSERT INTO hq_terminals (terminal, branch, epoch, session, online, seen_at)"
            " VALUES (?, ?, ?, 1, 1, ?)",
            [terminal, branch, epoch, iso(utc_now())],
        )
        db.execute("INSERT INTO hq_branches (branch, head, published) VALUES (?, 0, 0)", [branch])
    db.close()
    head_path(path).unlink(missing_ok=True)


def median_ms(work: Callable[[], object], runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 3)


def run(units: int = 1_000_000, workdir: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "hq.db"
        fill(path, units).close()
        as_hq(path)
        backend = SqliteBackend(path)
        try:
            ensure_tables(backend)
            add_user(backend, BENCH_USER, Role.VIEWER, BENCH_PASSWORD, at=iso(utc_now()))
        finally:
            backend.close()
        reader = open_reader(HqSource(db=path))
        try:
            supplier_ms = median_ms(lambda: supplier_failure(reader), runs=3)
            counts_ms = median_ms(lambda: dashboard_counts(reader, CountFilter()))
            prefix_ms = median_ms(lambda: dashboard_counts(reader, CountFilter(prefix="LX0")))
        finally:
            reader.close()
        http_ms = asyncio.run(_http_counts_ms(path))
    return {
        "units": units,
        "dashboard_counts_ms": counts_ms,
        "dashboard_counts_prefix_ms": prefix_ms,
        "dashboard_counts_http_ms": http_ms,
        "analytics_supplier_failure_ms": supplier_ms,
    }


async def _http_counts_ms(path: Path, runs: int = 7) -> float:
    """Median time of GET /counts on the real application, signed in."""
    from aiohttp import ClientSession, CookieJar
    from aiohttp.test_utils import TestServer

    from daemon.hq.web import create_app

    server = TestServer(create_app(HqSource(db=path)), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as client:
            form = await (await client.get(server.make_url("/login"))).text()
            found = re.search(r'name="csrf" value="([^"]+)"', form)
            assert found, "the sign-in form has no CSRF token"
            signed = await client.post(
                server.make_url("/login"),
                data={"csrf": found.group(1), "name": BENCH_USER, "password": BENCH_PASSWORD},
                allow_redirects=False,
            )
            assert signed.status == 303, f"bench user could not sign in ({signed.status})"
            samples = []
            for _ in range(runs):
                started = time.perf_counter()
                page = await client.get(server.make_url("/counts"))
                await page.read()
                assert page.status == 200, f"GET /counts answered {page.status}"
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        await server.close()
    return round(statistics.median(samples), 3)
