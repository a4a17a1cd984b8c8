"""The workflows retailers use to test a serial system, end to end through the ledger."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.queries import counts, passport, search
from daemon.rules.units import Flag, Op, State
from daemon.rules.warranty import Cause, ClaimLine, LineKind, SupplierTerms
from tests.ledger_fixtures import FixedClock, make_ledger


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: FixedClock) -> Ledger:
    ledger = make_ledger(tmp_path / "ledger.db", clock=clock)
    ledger.receive(
        "PO-1",
        "Acme",
        "LAP",
        ["LX-1", "LX-2", "LX-3", "LX-4"],
        actor="ann",
        quantity=4,
        cost_cents=91000,
    )
    return ledger


def kinds(ledger: Ledger, serial: str) -> list[str]:
    return [e.kind for e in passport(ledger, ledger.find(serial)[0]).events]


def assert_consistent(ledger: Ledger) -> None:
    assert verify_chain(ledger).ok
    assert verify_projection(ledger) is None


# 1. A duplicate serial -----------------------------------------------------------


def test_duplicate_serial_is_refused_naming_where_the_unit_is(ledger: Ledger) -> None:
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-2", 129900)], actor="bob")
    with pytest.raises(Refusal) as refused:
        ledger.receive("PO-2", "Acme", "LAP", ["LX-5", "lx-2 "], actor="ann", quantity=2)
    problem = refused.value.problems[0]
    assert problem.code == "already_active"
    assert (
        'serial "LX-2"' in problem.message
        and "sold at branch B1 on invoice INV-1" in problem.message
    )
    # Nothing of the refused receipt was written: LX-5 is not in the ledger.
    assert ledger.find("LX-5") == []
    assert_consistent(ledger)


def test_same_serial_under_two_products_is_two_units(ledger: Ledger) -> None:
    ledger.define_product("TAB", "Tablet T2", actor="setup")
    ledger.receive("PO-2", "Other Supplier", "TAB", ["LX-1"], actor="ann", quantity=1)
    found = ledger.find("LX-1")
    assert [u.product.code for u in found] == ["LAP", "TAB"]


def test_quantity_must_equal_distinct_serials_and_all_problems_are_reported(ledger: Ledger) -> None:
    with pytest.raises(Refusal) as refused:
        ledger.receive("PO-3", "Acme", "LAP", ["LX-9", "LX-9", "LX 10"], actor="ann", quantity=3)
    codes = [p.code for p in refused.value.problems]
    assert codes == ["quantity_mismatch", "duplicate_in_document", "bad_serial"]
    assert "has a space" in str(refused.value)


def test_serial_format_rule_per_product(ledger: Ledger) -> None:
    with pytest.raises(Refusal) as refused:
        ledger.receive("PO-4", "Phones", "PHN", ["35693803564380"], actor="ann")
    assert "does not match the format of PHN" in str(refused.value)
    ledger.receive("PO-4", "Phones", "PHN", ["356938035643809"], actor="ann")


def test_sold_unit_cannot_be_sold_again_until_returned(ledger: Ledger) -> None:
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 129900)], actor="bob")
    with pytest.raises(Refusal) as refused:
        ledger.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1")], actor="bob")
    assert refused.value.code == "already_sold"
    ledger.return_unit(
        "INV-1", "LAP", "LX-1", actor="bob", condition="boxed", disposition=State.IN_STOCK
    )
    ledger.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1")], actor="bob")
    assert ledger.unit("LAP", "LX-1").customer == "Eve"  # type: ignore[union-attr]


# 2. A unit transferred between branches ------------------------------------------


def test_transfer_between_branches(ledger: Ledger) -> None:
    ledger.transfer_out("TR-1", "B2", [UnitRef("LAP", "LX-3")], actor="ann")
    moving = ledger.unit("LAP", "LX-3")
    assert moving is not None and moving.state is State.IN_TRANSIT and moving.dest_branch == "B2"
    # Neither branch may sell it while it travels, unless a manager overrides.
    with pytest.raises(Refusal) as refused:
        ledger.sell("INV-9", "Dana", [SaleLine("LAP", "LX-3")], actor="bob", branch="B2")
    assert refused.value.code == "in_transit" and refused.value.overridable
    # Only the destination can receive it.
    with pytest.raises(Refusal) as wrong:
        ledger.transfer_in("TR-1", [UnitRef("LAP", "LX-3")], actor="sam", branch="B3")
    assert wrong.value.code == "wrong_destination"
    ledger.transfer_in("TR-1", [UnitRef("LAP", "LX-3")], actor="sam", branch="B2")
    arrived = ledger.unit("LAP", "LX-3")
    assert arrived is not None and arrived.state is State.IN_STOCK and arrived.branch == "B2"
    # Now B1 cannot sell it without a manager; B2 can.
    with pytest.raises(Refusal) as elsewhere:
        ledger.sell("INV-10", "Dana", [SaleLine("LAP", "LX-3")], actor="bob", branch="B1")
    assert elsewhere.value.code == "wrong_branch"
    assert {"branch": "B2", "state": "in_stock", "units": 1} in counts(
        ledger, by=("branch", "state")
    )
    assert kinds(ledger, "LX-3") == ["receive", "transfer_out", "transfer_in"]
    assert_consistent(ledger)


def test_transfer_in_names_the_transfer_that_sent_the_unit(ledger: Ledger) -> None:
    ledger.transfer_out("TR-1", "B2", [UnitRef("LAP", "LX-3")], actor="ann")
    ledger.transfer_out("TR-2", "B2", [UnitRef("LAP", "LX-4")], actor="ann")
    # Another transfer's number, one never written, or one that is not a number at all:
    # each refused, naming the transfer to receive the unit against.
    for number in ("TR-2", "TR-404", "TR 1\n"):
        with pytest.raises(Refusal) as wrong:
            ledger.transfer_in(number, [UnitRef("LAP", "LX-3")], actor="sam", branch="B2")
        assert wrong.value.code in ("wrong_transfer", "bad_value")
        if wrong.value.code == "wrong_transfer":
            assert "sent by transfer TR-1" in str(wrong.value)
    moving = ledger.unit("LAP", "LX-3")
    assert moving is not None and moving.state is State.IN_TRANSIT
    # A document mixing units of two transfers is refused whole.
    with pytest.raises(Refusal):
        ledger.transfer_in(
            "TR-1", [UnitRef("LAP", "LX-3"), UnitRef("LAP", "LX-4")], actor="sam", branch="B2"
        )
    ledger.transfer_in("TR-1", [UnitRef("LAP", "LX-3")], actor="sam", branch="B2")
    ledger.transfer_in("TR-2", [UnitRef("LAP", "LX-4")], actor="sam", branch="B2")
    assert kinds(ledger, "LX-4") == ["receive", "transfer_out", "transfer_in"]
    assert_consistent(ledger)


def test_manager_override_is_its_own_event(ledger: Ledger) -> None:
    ledger.transfer_out("TR-2", "B2", [UnitRef("LAP", "LX-4")], actor="ann")
    ledger.sell("INV-3", "Dana", [SaleLine("LAP", "LX-4")], actor="bob", manager="Mia")
    events = passport(ledger, ledger.find("LX-4")[0]).events
    assert [e.kind for e in events] == ["receive", "transfer_out", "override", "sell"]
    assert events[2].data == {"manager": "Mia", "overrode": ["in_transit"], "for": "sell"}


# 3. A partial warranty claim ---------------------------------------------------


def test_partial_warranty_claim(ledger: Ledger, clock: FixedClock) -> None:
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 129900)], actor="bob")
    clock.advance(days=400)
    ledger.repair_open(
        "RP-1",
        UnitRef("LAP", "LX-1"),
        actor="bob",
        technician="tess",
        intake_condition="cracked lid",
        fault="no power",
        accessories=["charger"],
    )
    outcome = ledger.warranty_claim(
        "WC-1",
        UnitRef("LAP", "LX-1"),
        [
            ClaimLine("mainboard", 24000, LineKind.PART, Cause.DEFECT),
            ClaimLine("labour", 5000, LineKind.LABOUR, Cause.DEFECT),
            ClaimLine("cracked lid", 6000, LineKind.PART, Cause.DAMAGE),
            ClaimLine("charger", 3500, LineKind.ACCESSORY),
        ],
        actor="tess",
        damage_notes="lid cracked at intake",
    )
    decision = outcome.details["decision"]
    assert decision["doc_status"] == "partial"
    assert (decision["covered_cents"], decision["charged_cents"]) == (29000, 9500)
    assert [line["covered"] for line in decision["lines"]] == [True, True, False, False]
    assert "damage" in decision["lines"][2]["reason"]


def test_claim_after_warranty_covers_parts_only_under_supplier_terms(
    ledger: Ledger, clock: FixedClock
) -> None:
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")
    clock.advance(days=800)  # past the 24-month warranty
    outcome = ledger.warranty_claim(
        "WC-2",
        UnitRef("LAP", "LX-1"),
        [
            ClaimLine("battery", 9000, LineKind.PART),
            ClaimLine("labour", 4000, LineKind.LABOUR),
        ],
        actor="tess",
        terms=SupplierTerms(parts_extra_months=12),
    )
    lines = outcome.details["decision"]["lines"]
    assert [line["covered"] for line in lines] == [True, False]
    assert "the warranty ended on 2028-11-23" in lines[1]["reason"]


def test_repair_chain_of_custody(ledger: Ledger) -> None:
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")
    ref = UnitRef("LAP", "LX-1")
    ledger.repair_open(
        "RP-2",
        ref,
        actor="bob",
        technician="tess",
        intake_condition="ok",
        fault="fan noise",
        accessories=["charger", "bag"],
    )
    ledger.repair_step("RP-2", "diagnosed", actor="tess", diagnosis="worn fan", parts=["FAN-1"])
    with pytest.raises(Refusal) as no_qc:
        ledger.repair_close("RP-2", actor="tess", outcome="repaired")
    assert no_qc.value.code == "qc_required"
    ledger.repair_step("RP-2", "qc_passed", actor="quinn")
    ledger.repair_close("RP-2", actor="tess", outcome="repaired", collected_by="Dana")
    back = ledger.unit("LAP", "LX-1")
    assert back is not None and back.state is State.SOLD and back.customer == "Dana"
    events = passport(ledger, back).events[2:]
    assert [(e.kind, e.data.get("doc_status")) for e in events] == [
        ("repair_open", "open"),
        ("repair_step", "diagnosed"),
        ("repair_step", "qc_passed"),
        ("repair_close", "closed"),
    ]
    assert events[0].data["accessories"] == ["charger", "bag"]
    assert events[1].data["parts"] == ["FAN-1"]
    assert events[3].data["collected_by"] == "Dana"


# 4. A replacement device ------------------------------------------------------


def test_replacement_links_both_serials_and_the_old_history_continues(ledger: Ledger) -> None:
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 129900)], actor="bob")
    ledger.replace(
        "RPL-1",
        UnitRef("LAP", "LX-1"),
        UnitRef("LAP", "LX-2"),
        actor="mia",
        old_disposition=State.IN_REPAIR,
        reason="dead on arrival",
    )
    old, new = ledger.unit("LAP", "LX-1"), ledger.unit("LAP", "LX-2")
    assert old is not None and new is not None
    assert new.state is State.SOLD and new.customer == "Dana" and new.invoice == "INV-1"
    assert new.warranty_until == "2028-11-23"
    assert old.state is State.IN_REPAIR and old.customer is None
    old_events = passport(ledger, old).events
    new_events = passport(ledger, new).events
    assert old_events[-1].data["replaced_by"] == ["LAP", "LX-2"]
    assert new_events[-1].data["replaces"] == ["LAP", "LX-1"]
    # The old unit's history continues after the replacement.
    ledger.move(Op.RETURN_TO_SUPPLIER, [UnitRef("LAP", "LX-1")], actor="ann", reason="RMA 55")
    assert kinds(ledger, "LX-1") == ["receive", "sell", "replace_old", "return_to_supplier"]
    # The replacement can be returned on the original invoice; the old unit cannot.
    with pytest.raises(Refusal):
        ledger.return_unit(
            "INV-1", "LAP", "LX-1", actor="bob", condition="-", disposition=State.IN_STOCK
        )
    ledger.return_unit(
        "INV-1", "LAP", "LX-2", actor="bob", condition="boxed", disposition=State.IN_STOCK
    )
    assert_consistent(ledger)


# 5. A return of the wrong physical unit -------------------------------------------


def test_return_of_the_wrong_unit_is_refused_and_recorded(ledger: Ledger) -> None:
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 129900)], actor="bob")
    ledger.sell("INV-2", "Eve", [SaleLine("LAP", "LX-2", 129900)], actor="bob")
    for serial in ("LX-3", "LX-2", "LX-99"):  # in stock, sold to someone else, unknown
        with pytest.raises(Refusal) as refused:
            ledger.return_unit(
                "INV-1", "LAP", serial, actor="bob", condition="boxed", disposition=State.IN_STOCK
            )
        assert refused.value.code == "wrong_unit"
        assert "invoice INV-1 sold LAP LX-1" in str(refused.value)
        assert refused.value.recorded is not None
    # Each attempt is an event on the invoice; for a known unit also in its passport.
    assert kinds(ledger, "LX-3") == ["receive", "return_refused"]
    attempts = ledger.db.execute(
        "SELECT count(*) FROM events WHERE kind = 'return_refused'"
    ).fetchone()[0]
    assert attempts == 3
    # The right unit goes back.
    ledger.return_unit(
        "INV-1", "LAP", "LX-1", actor="bob", condition="boxed", disposition=State.QUARANTINED
    )
    assert ledger.unit("LAP", "LX-1").state is State.QUARANTINED  # type: ignore[union-attr]
    assert_consistent(ledger)


def test_return_on_an_unknown_invoice(ledger: Ledger) -> None:
    with pytest.raises(Refusal) as refused:
        ledger.return_unit(
            "INV-404", "LAP", "LX-1", actor="bob", condition="-", disposition=State.IN_STOCK
        )
    assert refused.value.code == "unknown_invoice"


# Flags, corrections, moves --------------------------------------------------------


def test_stolen_flag_blocks_sale_and_clears(ledger: Ledger) -> None:
    ledger.set_flag([UnitRef("LAP", "LX-1")], Flag.STOLEN, actor="hq", reason="police report")
    with pytest.raises(Refusal) as refused:
        ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob", manager="Mia")
    assert refused.value.code == "flag_stolen"
    again = ledger.set_flag([UnitRef("LAP", "LX-1")], Flag.STOLEN, actor="hq", reason="dup")
    assert again.events == []  # idempotent
    ledger.set_flag([UnitRef("LAP", "LX-1")], Flag.STOLEN, actor="hq", reason="found", on=False)
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")


def test_correction_names_the_event_and_restores_the_unit(ledger: Ledger) -> None:
    sold = ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")
    ledger.correct(sold.events[0], actor="bob", manager="Mia", reason="wrong unit scanned")
    unit = ledger.unit("LAP", "LX-1")
    assert unit is not None and unit.state is State.IN_STOCK and unit.invoice is None
    last = passport(ledger, unit).events[-1]
    assert last.kind == "correction" and last.data["corrects"] == sold.events[0]
    # The corrected event is still there, unchanged.
    assert kinds(ledger, "LX-1") == ["receive", "sell", "correction"]
    assert_consistent(ledger)


def test_only_the_latest_event_of_a_unit_can_be_corrected(ledger: Ledger) -> None:
    sold = ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")
    ledger.repair_open(
        "RP-1",
        UnitRef("LAP", "LX-1"),
        actor="bob",
        technician="t",
        intake_condition="ok",
        fault="x",
    )
    with pytest.raises(Refusal) as refused:
        ledger.correct(sold.events[0], actor="bob", manager="Mia", reason="oops")
    assert refused.value.code == "not_latest"


def test_write_off_needs_a_manager(ledger: Ledger) -> None:
    with pytest.raises(Refusal) as refused:
        ledger.move(Op.WRITE_OFF, [UnitRef("LAP", "LX-1")], actor="bob", reason="dropped")
    assert refused.value.code == "needs_manager"
    ledger.move(
        Op.WRITE_OFF, [UnitRef("LAP", "LX-1")], actor="bob", reason="dropped", manager="Mia"
    )
    assert ledger.unit("LAP", "LX-1").state is State.WRITTEN_OFF  # type: ignore[union-attr]


def test_lost_and_found(ledger: Ledger) -> None:
    ledger.move(Op.MARK_LOST, [UnitRef("LAP", "LX-1")], actor="ann", reason="count")
    ledger.move(Op.MARK_FOUND, [UnitRef("LAP", "LX-1")], actor="ann", reason="behind shelf")
    assert ledger.unit("LAP", "LX-1").state is State.IN_STOCK  # type: ignore[union-attr]


def test_plain_items_sell_on_the_same_invoice(ledger: Ledger) -> None:
    ledger.sell(
        "INV-1",
        "Dana",
        [SaleLine("LAP", "LX-1", 129900), SaleLine("CABLE", None, 1500, quantity=2)],
        actor="bob",
    )
    rows = ledger.db.execute(
        "SELECT kind FROM events WHERE doc_id = (SELECT id FROM documents WHERE number = 'INV-1')"
    ).fetchall()
    assert [r[0] for r in rows] == ["sell", "sell_item"]


def test_serial_tracking_cannot_be_switched_off(ledger: Ledger) -> None:
    with pytest.raises(Refusal) as refused:
        ledger.define_product("LAP", "Laptop X1", actor="x", serial_tracked=False)
    assert refused.value.code == "tracking_locked"
    with pytest.raises(sqlite3.IntegrityError, match="cannot be switched off"):
        ledger.db.execute("UPDATE products SET serial_tracked = 0 WHERE code = 'LAP'")


def test_search_by_prefix_range_state_and_counts(ledger: Ledger) -> None:
    ledger.receive("PO-2", "Acme", "LAP", [f"AB-{i:02d}" for i in range(20)], actor="ann")
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "AB-05")], actor="bob")
    assert len(search(ledger, prefix="ab-0")) == 10
    assert [u.serial for u in search(ledger, first="AB-03", last="AB-06")] == [
        "AB-03",
        "AB-04",
        "AB-05",
        "AB-06",
    ]
    assert [u.serial for u in search(ledger, prefix="AB", state="sold")] == ["AB-05"]
    by_state = {(r["prefix"], r["state"]): r["units"] for r in counts(ledger, prefix="AB")}
    assert by_state == {("AB-0", "in_stock"): 9, ("AB-0", "sold"): 1, ("AB-1", "in_stock"): 10}
    # A prefix longer than the kept one is counted from the index instead.
    assert counts(ledger, by=("state",), prefix="AB-05") == [{"state": "sold", "units": 1}]


def test_a_committed_sale_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = make_ledger(path)
    ledger.receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")
    mode = ledger.db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = ledger.db.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 2)  # 2 = FULL
    # No close(): as after a crash, the WAL holds the commit.
    reopened = Ledger.open(path)
    assert reopened.unit("LAP", "LX-1").state is State.SOLD  # type: ignore[union-attr]


def test_wal_stays_bounded_without_automatic_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daemon.ledger import store

    monkeypatch.setattr(store, "WAL_LIMIT_BYTES", 256 * 1024)
    ledger = make_ledger(tmp_path / "l.db")
    wal = tmp_path / "l.db-wal"
    sizes = []
    for batch in range(40):
        ledger.receive(
            f"PO-{batch}", "Acme", "LAP", [f"W{batch}-{i}" for i in range(20)], actor="ann"
        )
        sizes.append(wal.stat().st_size)
    # Without the bound, 40 commits of 20 units grow the WAL well past a megabyte.
    assert max(sizes) < 1024 * 1024
    ledger.close()
    reopened = Ledger.open(tmp_path / "l.db")
    assert len(reopened.find("W39-19")) == 1
