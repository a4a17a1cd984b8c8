"""The lane's ledger operations against a real ledger: what a sale with manager
approvals records, what it refuses, and what the lane reads after a restart; and the
ledger's reads that provisioning and the doctor rely on."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.lane.ops import perform
from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.audit import integrity_problems, last_own_event_at
from daemon.ledger.errors import LedgerError
from daemon.ledger.kinds import Kind
from daemon.ledger.lookup import ScanLookup
from daemon.ledger.queries import events_of
from daemon.ledger.store import connect_read_only, read_identity
from daemon.rules.lane.types import (
    Basket,
    BasketLine,
    OpenCount,
    ProductFacts,
    SellBasket,
    Tender,
    VoidSold,
)
from tests.ledger_fixtures import make_ledger

LAPTOP = ProductFacts("LAP", "Laptop X1", 129900)


@pytest.fixture
def ledger() -> Ledger:
    """LX-1 here at B1, LX-2 at branch B2, LX-3 on its way from B1 to B2."""
    led = make_ledger()
    led.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-3"], actor="ann")
    led.receive("PO-2", "Acme", "LAP", ["LX-2"], actor="ann", branch="B2")
    led.transfer_out("TR-1", "B2", [UnitRef("LAP", "LX-3")], actor="ann")
    return led


def _sale(*lines: tuple[str, str | None]) -> SellBasket:
    basket = Basket(
        "INV-7",
        "walk-in",
        tuple(
            BasketLine(LAPTOP, 129900, serial, serial, approved_by=manager)
            for serial, manager in lines
        ),
    )
    return SellBasket(1, basket, Tender("CARD"))


def _overrides(ledger: Ledger) -> dict[str, str]:
    return {str(e.serial): str(e.data["manager"]) for e in events_of(ledger, Kind.OVERRIDE)}


def test_each_override_of_a_lane_sale_names_the_manager_who_approved_that_unit(
    ledger: Ledger,
) -> None:
    perform(ledger, "till", _sale(("LX-1", None), ("LX-2", "Max"), ("LX-3", "Ada")))
    assert _overrides(ledger) == {"LX-2": "Max", "LX-3": "Ada"}
    sold = [ledger.unit("LAP", s) for s in ("LX-1", "LX-2", "LX-3")]
    assert [(u.state.value, u.invoice) for u in sold if u] == [("sold", "INV-7")] * 3


def test_a_unit_nobody_approved_that_needs_an_override_refuses_the_whole_sale(
    ledger: Ledger,
) -> None:
    before = ledger.db.execute("SELECT count(*) FROM events").fetchone()[0]
    with pytest.raises(Refusal) as refused:
        perform(ledger, "till", _sale(("LX-2", "Max"), ("LX-3", None), ("LX-1", None)))
    assert [p.code for p in refused.value.problems] == ["in_transit"]
    assert "LX-3" in str(refused.value)
    assert ledger.db.execute("SELECT count(*) FROM events").fetchone()[0] == before
    unit = ledger.unit("LAP", "LX-2")
    assert unit is not None and unit.state.value == "in_stock"


def test_a_sale_a_manager_approves_as_a_whole_still_overrides_every_unit(ledger: Ledger) -> None:
    lines = [SaleLine("LAP", "LX-2"), SaleLine("LAP", "LX-3")]
    ledger.sell("INV-8", "walk-in", lines, actor="ann", manager="Max")
    assert _overrides(ledger) == {"LX-2": "Max", "LX-3": "Max"}


def test_a_voided_sale_line_is_a_correction_and_only_the_latest_event_can_be_voided(
    ledger: Ledger,
) -> None:
    perform(ledger, "till", _sale(("LX-1", None)))
    void = VoidSold(2, "INV-7", "LAP", "LX-1", "Laptop X1", 129900, "Max")
    perform(ledger, "till", void)
    unit = ledger.unit("LAP", "LX-1")
    assert unit is not None and (unit.state.value, unit.invoice) == ("in_stock", None)
    with pytest.raises(Refusal) as refused:
        perform(ledger, "till", void)
    assert refused.value.code == "not_on_invoice"
    assert "it is in stock at branch B1" in str(refused.value)


def test_a_lane_count_is_numbered_per_terminal_and_resumed_by_its_number(ledger: Ledger) -> None:
    first = perform(ledger, "till", OpenCount(1, "LAP")).details
    assert first == {"count": "C-T1-0001", "product": "LAP", "scanned": 0, "resumed": False}
    again = perform(ledger, "till", OpenCount(2, "C-T1-0001")).details
    assert again == {"count": "C-T1-0001", "product": "LAP", "scanned": 0, "resumed": True}
    assert perform(ledger, "till", OpenCount(3, "")).details["count"] == "C-T1-0002"


def test_after_a_restart_the_lane_reads_when_an_invoice_was_sold(ledger: Ledger) -> None:
    lookup = ScanLookup(ledger.db.conn)
    assert lookup.sold_at("INV-7") is None
    perform(ledger, "till", _sale(("LX-1", None)))
    assert lookup.sold_at("INV-7") == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("name", ["ledger.db", "odd #name?.db", "with space.db"])
def test_whose_ledger_a_file_is_is_read_without_changing_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert read_identity(path) is None
    make_ledger(path, terminal="T-9", branch="B-4").close()
    before = path.read_bytes()
    assert read_identity(path) == ("T-9", "B-4")
    assert path.read_bytes() == before


def test_a_file_that_is_no_ledger_is_said_to_be_none(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("shopping list\n")
    with pytest.raises(LedgerError):
        read_identity(path)


def test_every_damaged_page_of_a_ledger_file_is_found(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = make_ledger(path)
    ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(300)], actor="ann")
    ledger.close()
    sound = path.read_bytes()
    assert integrity_problems(connect_read_only(path)) == []
    page = 16384
    for start in range(0, len(sound), page):
        path.write_bytes(sound[:start] + bytes(page) + sound[start + page :])
        conn = connect_read_only(path)
        try:
            assert integrity_problems(conn), f"page at {start} zeroed, yet the file looks sound"
        except sqlite3.DatabaseError:
            pass  # SQLite cannot even read it: the doctor says so
        finally:
            conn.close()


def test_when_the_ledgers_own_last_event_was_written(tmp_path: Path) -> None:
    empty = Ledger.create(tmp_path / "empty.db", terminal="T1", branch="B1")
    assert last_own_event_at(empty) is None
    ledger = make_ledger()
    assert last_own_event_at(ledger) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
