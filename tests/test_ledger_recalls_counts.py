"""Recalls (flag, refuse to sell, outreach list) and stock counts (missing,
unexpected, doubly scanned; resolution events; accuracy over time)."""

from __future__ import annotations

import csv
import io

import pytest

from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.queries import passport
from daemon.ledger.recalls import RecallSelector, as_csv, outreach, recall, select_units
from daemon.ledger.stocktake import (
    accuracy_by_branch,
    close_count,
    count_report,
    count_scan,
    open_count,
    resolve,
)
from daemon.rules.units import Flag, Op, State
from tests.ledger_fixtures import FixedClock, make_ledger


@pytest.fixture
def ledger() -> Ledger:
    ledger = make_ledger(clock=FixedClock())
    ledger.receive(
        "PO-1", "Acme", "LAP", [f"LX-{i:02d}" for i in range(10)], actor="a", lot="LOT-A"
    )
    ledger.receive("PO-2", "Acme", "LAP", [f"LY-{i:02d}" for i in range(5)], actor="a", lot="LOT-B")
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-01", 1000)], actor="a")
    ledger.sell(
        "INV-2",
        "Eve",
        [SaleLine("LAP", "LX-02", 1000), SaleLine("LAP", "LY-01", 900)],
        actor="a",
        branch="B1",
    )
    return ledger


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (RecallSelector(lot="LOT-B"), 5),
        (RecallSelector(prefix="lx-0"), 10),
        (RecallSelector(first="LX-03", last="LX-05"), 3),
        (RecallSelector(product="LAP", serials=("LX-01", "ly-04")), 2),
        (RecallSelector(product="LAP", lot="LOT-A", first="LX-08"), 2),
    ],
)
def test_recall_selectors(ledger: Ledger, selector: RecallSelector, expected: int) -> None:
    assert len(select_units(ledger, selector)) == expected


def test_recall_flags_units_blocks_sale_and_lists_customers(ledger: Ledger) -> None:
    outcome = recall(
        ledger,
        "RC-2026-7",
        RecallSelector(first="LX-00", last="LX-04"),
        actor="hq",
        reason="battery swelling",
    )
    assert outcome.details["matched"] == 5
    unit = ledger.unit("LAP", "LX-03")
    assert unit is not None and Flag.RECALLED in unit.flags
    with pytest.raises(Refusal) as refused:
        ledger.sell("INV-9", "Zoe", [SaleLine("LAP", "LX-03")], actor="a", manager="M")
    assert refused.value.code == "flag_recalled"
    table = outreach(ledger, "RC-2026-7")
    assert [(r["serial"], r["customer"], r["invoice"]) for r in table.as_dicts()] == [
        ("LX-01", "Dana", "INV-1"),
        ("LX-02", "Eve", "INV-2"),
    ]
    rows = list(csv.reader(io.StringIO(as_csv(table))))
    assert rows[0] == ["product", "serial", "customer", "invoice", "branch", "sold_on", "state"]
    assert rows[1][:4] == ["LAP", "LX-01", "Dana", "INV-1"]
    # A second notice over the same units changes nothing: flags are idempotent.
    assert (
        recall(ledger, "RC-2026-8", RecallSelector(lot="LOT-A"), actor="hq", reason="same").details[
            "matched"
        ]
        == 10
    )
    assert verify_projection(ledger) is None


def test_empty_recall_is_refused(ledger: Ledger) -> None:
    with pytest.raises(Refusal, match="needs a product, lot"):
        recall(ledger, "RC-1", RecallSelector(), actor="hq", reason="x")
    with pytest.raises(Refusal, match="no unit matches"):
        recall(ledger, "RC-1", RecallSelector(prefix="ZZ"), actor="hq", reason="x")


def test_stock_count_finds_missing_unexpected_and_double_scans(ledger: Ledger) -> None:
    ledger.transfer_out("TR-1", "B2", [UnitRef("LAP", "LY-02")], actor="a")
    ledger.move(Op.MARK_LOST, [UnitRef("LAP", "LY-03")], actor="a", reason="gone")
    open_count(ledger, "CNT-1", actor="ann", branch="B1")
    on_shelf = [f"LX-{i:02d}" for i in range(3, 10)] + ["LY-00"]
    for serial in on_shelf:
        assert (
            count_scan(ledger, "CNT-1", "LAP", serial, actor="ann").details["verdict"] == "expected"
        )
    twice = count_scan(ledger, "CNT-1", "LAP", "lx-05", actor="ann")
    assert twice.details["verdict"] == "scanned twice"
    sold = count_scan(ledger, "CNT-1", "LAP", "LX-01", actor="ann")
    assert (
        sold.details["verdict"]
        == "unexpected: the ledger has it sold at branch B1 on invoice INV-1"
    )
    lost = count_scan(ledger, "CNT-1", "LAP", "LY-03", actor="ann")
    assert lost.details["verdict"].startswith("unexpected: the ledger has it marked lost")
    assert count_scan(ledger, "CNT-1", "LAP", "ZZ-9", actor="ann").details["verdict"] == (
        "not in the ledger"
    )

    report = count_report(ledger, "CNT-1")
    assert report.expected == 10 and report.found == 8
    assert [u.serial for u in report.missing] == ["LX-00", "LY-04"]
    assert [u.serial for u in report.unexpected] == ["LX-01", "LY-03"]
    assert [u.serial for u in report.duplicates] == ["LX-05"]
    assert [u.serial for u in report.unknown] == ["ZZ-9"]
    # The scans are in the units' passports.
    assert passport(ledger, ledger.find("LX-04")[0]).events[-1].kind == "count_scan"

    # Closing freezes the figures of the count as it was scanned.
    closed = close_count(ledger, "CNT-1", actor="ann")
    assert "8 of 10 found (accuracy 80.0%), 2 missing, 2 unexpected, 1 scanned twice" in (
        closed.message
    )
    with pytest.raises(Refusal, match="is closed"):
        count_scan(ledger, "CNT-1", "LAP", "LX-04", actor="ann")
    rows = accuracy_by_branch(ledger).as_dicts()
    assert rows == [
        {
            "branch": "B1",
            "day": "2026-11-23",
            "count": "CNT-1",
            "expected": 10,
            "found": 8,
            "missing": 2,
            "unexpected": 2,
            "accuracy": 0.8,
        }
    ]

    # Then the differences are settled, each an event on the count: a missing unit is
    # lost, the unit the ledger had as lost is found.
    resolve(ledger, "CNT-1", "LAP", "LX-00", actor="ann")
    resolve(ledger, "CNT-1", "LAP", "LY-03", actor="ann")
    assert ledger.unit("LAP", "LX-00").state is State.LOST  # type: ignore[union-attr]
    found = ledger.unit("LAP", "LY-03")
    assert found is not None and found.state is State.IN_STOCK and found.branch == "B1"
    assert passport(ledger, found).events[-1].document == "count CNT-1"
    assert verify_chain(ledger).ok and verify_projection(ledger) is None


def test_unit_found_at_the_wrong_branch_is_relocated(ledger: Ledger) -> None:
    ledger.transfer_out("TR-2", "B2", [UnitRef("LAP", "LY-04")], actor="a")
    open_count(ledger, "CNT-2", actor="sam", branch="B2", product="LAP")
    count_scan(ledger, "CNT-2", "LAP", "LY-04", actor="sam")
    count_scan(ledger, "CNT-2", "LAP", "LY-00", actor="sam")  # the ledger has it at B1
    resolve(ledger, "CNT-2", "LAP", "LY-00", actor="sam")
    moved = ledger.unit("LAP", "LY-00")
    assert moved is not None and moved.branch == "B2" and moved.state is State.IN_STOCK
    arrived = ledger.unit("LAP", "LY-04")  # in transit to B2, counted there
    resolve(ledger, "CNT-2", "LAP", "LY-04", actor="sam")
    arrived = ledger.unit("LAP", "LY-04")
    assert arrived is not None and arrived.state is State.IN_STOCK and arrived.branch == "B2"
    report = count_report(ledger, "CNT-2")
    assert report.missing == [] and report.found == 2
