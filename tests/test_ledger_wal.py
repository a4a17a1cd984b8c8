"""The WAL after a large transaction: later sales don't pay a checkpoint each, and the
file comes back under its bound."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from daemon.ledger import Ledger, SaleLine
from daemon.ledger.importer import import_csv
from tests.ledger_fixtures import make_ledger

# Small enough for a quick import to pass it, large next to a sale's few pages.
LIMIT = 4 * 1024 * 1024


def _big_import(ledger: Ledger, units: int) -> list[str]:
    """One large transaction (a delivery received at once; a CSV import writes in short
    transactions and keeps the WAL bounded as it goes)."""
    serials = [f"LX-{n:07d}" for n in range(units)]
    ledger.receive("PO-1", "Acme", "LAP", serials, actor="ann")
    return serials


@pytest.mark.usefixtures("small_limit")
def test_a_large_import_keeps_the_wal_bounded_as_it_writes(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "l.db")
    text = "serial,product,po,supplier,branch,cost\n" + "".join(
        f"LX-{n:07d},LAP,PO-1,Acme,B1,100.00\n" for n in range(16_000)
    )
    import_csv(ledger, io.StringIO(text), actor="ann")
    assert (tmp_path / "l.db-wal").stat().st_size <= 2 * LIMIT


def _checkpoints(ledger: Ledger) -> list[str]:
    seen: list[str] = []
    ledger.db.conn.set_trace_callback(
        lambda sql: seen.append(sql) if "wal_checkpoint" in sql else None
    )
    return seen


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from daemon.ledger import store

    monkeypatch.setattr(store, "WAL_LIMIT_BYTES", LIMIT)


@pytest.mark.usefixtures("small_limit")
def test_sales_after_a_large_import_do_not_checkpoint_each(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "l.db")
    wal = tmp_path / "l.db-wal"
    serials = _big_import(ledger, 16_000)
    assert wal.stat().st_size > 3 * LIMIT  # the import left a WAL well past the bound
    checkpoints = _checkpoints(ledger)
    for n, serial in enumerate(serials[:8]):
        ledger.sell(f"INV-{n}", "Dana", [SaleLine("LAP", serial)], actor="bob")
    # The first sale after the import copies it into the ledger file; none after it has to.
    assert len(checkpoints) <= 1
    assert wal.stat().st_size <= LIMIT
    ledger.close()
    assert Ledger.open(tmp_path / "l.db").unit("LAP", serials[7]).invoice == "INV-7"  # type: ignore[union-attr]


@pytest.mark.usefixtures("small_limit")
def test_an_idle_checkpoint_empties_the_wal(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "l.db")
    wal = tmp_path / "l.db-wal"
    serials = _big_import(ledger, 12_000)
    ledger.checkpoint()  # as the lane does between customers
    assert wal.stat().st_size == 0
    checkpoints = _checkpoints(ledger)
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", serials[0])], actor="bob")
    assert checkpoints == []
    assert wal.stat().st_size <= LIMIT


@pytest.mark.usefixtures("small_limit")
def test_a_reader_in_the_way_never_holds_up_a_sale_or_loses_one(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "l.db")
    serials = _big_import(ledger, 12_000)
    reader = Ledger.open(tmp_path / "l.db")
    reader.db.conn.execute("BEGIN")
    reader.db.conn.execute("SELECT count(*) FROM events").fetchone()  # holds its snapshot
    ledger.set_busy_timeout(60_000)  # a checkpoint that waited for the reader would hang
    ledger.checkpoint()
    for n, serial in enumerate(serials[:5]):
        ledger.sell(f"INV-{n}", "Dana", [SaleLine("LAP", serial)], actor="bob")
    reader.db.conn.execute("COMMIT")
    reader.close()
    ledger.checkpoint()  # the reader gone, the next idle moment empties the WAL
    assert (tmp_path / "l.db-wal").stat().st_size == 0
    ledger.close()
    assert Ledger.open(tmp_path / "l.db").unit("LAP", serials[4]).invoice == "INV-4"  # type: ignore[union-attr]


def test_a_sale_after_journal_entries_commits_with_an_fsync(tmp_path: Path) -> None:
    from daemon.ledger.lane_log import Entry, LaneLog

    ledger = make_ledger(tmp_path / "l.db")
    ledger.receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
    journal = LaneLog(ledger)
    statements: list[str] = []
    ledger.db.conn.set_trace_callback(statements.append)
    for n in range(3):
        journal.append(
            Entry(
                at=f"2026-11-23T09:00:0{n}Z", kind="scan", source="s", input="LX-1", mode="basket"
            )
        )
    # Scans switch the connection to NORMAL once, not back and forth.
    assert sum("synchronous" in sql for sql in statements) == 1
    sale_starts = len(statements)
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")
    sale = statements[sale_starts:]
    begin = next(i for i, sql in enumerate(sale) if sql.startswith("BEGIN"))
    assert "PRAGMA synchronous = FULL" in sale[:begin]
    assert ledger.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
