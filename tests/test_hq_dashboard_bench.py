"""The dashboard benchmark's HQ database is the one a real ingest makes, and the counts
view reads the kept counts (or an index range), never a scan of the units."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.bench.hq_dashboard import as_hq, fill, run
from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.hq.web.db import HqSource, open_reader
from daemon.hq.web.reads import CountFilter, dashboard_counts
from tests.test_hq_ingest import batches

TABLES = {
    "units": "SELECT p.code, u.serial, u.state, u.branch, u.flags, u.supplier, u.cost_cents,"
    " u.last_event FROM units u JOIN products p ON p.id = u.product_id",
    "unit_counts": "SELECT p.code, c.branch, c.state, c.prefix, c.n FROM unit_counts c"
    " JOIN products p ON p.id = c.product_id",
    "activity": "SELECT p.code, a.supplier, a.branch, a.day, a.received, a.sold"
    " FROM activity a JOIN products p ON p.id = a.product_id",
    "events": "SELECT uuid, terminal, epoch, seq, hash FROM events",
    "streams": "SELECT terminal, epoch, acked, head_hash FROM hq_streams",
    "terminals": "SELECT terminal, branch, epoch FROM hq_terminals",
}


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(sql).fetchall())


def test_the_bench_database_equals_what_hq_stores_from_the_terminal(tmp_path: Path) -> None:
    terminal = fill(tmp_path / "hq.db", 600, days=3)
    ingested = Central(SqliteBackend(tmp_path / "ingested.db"))
    ingested.ingest(batches(terminal, size=1000))
    ingested.close()
    terminal.close()
    as_hq(tmp_path / "hq.db")
    for name, sql in TABLES.items():
        assert rows(tmp_path / "hq.db", sql) == rows(tmp_path / "ingested.db", sql), name
    central = Central(SqliteBackend(tmp_path / "hq.db"))
    try:
        assert central.verify().ok
        assert central.backend.identity.terminal == "HQ"
    finally:
        central.close()


def test_the_counts_view_never_scans_the_units(tmp_path: Path) -> None:
    terminal = fill(tmp_path / "hq.db", 3000, days=2)
    terminal.close()
    as_hq(tmp_path / "hq.db")
    reader = open_reader(HqSource(db=tmp_path / "hq.db"))
    conn = reader.db.conn  # type: ignore[attr-defined]
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        whole = dashboard_counts(reader, CountFilter())
        narrow = dashboard_counts(reader, CountFilter(prefix="LX00-00000"))
    finally:
        conn.set_trace_callback(None)
    assert whole.total == 3000 and 0 < narrow.total < 3000
    plans = [
        " ".join(str(r[3]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
        for sql in statements
        if sql.lstrip().upper().startswith("SELECT")
    ]
    reader.close()
    assert plans and not [p for p in plans if "SCAN u" in p or "SCAN units" in p]
    assert any("units_key" in p for p in plans)  # the long prefix: an index range


def test_the_benchmark_reports_its_figures(tmp_path: Path) -> None:
    figures = run(units=2000, workdir=tmp_path)
    assert figures["units"] == 2000
    for name in (
        "dashboard_counts_ms",
        "dashboard_counts_http_ms",
        "analytics_supplier_failure_ms",
    ):
        assert figures[name] > 0, name
