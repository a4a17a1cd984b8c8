"""Bulk import: all rows or none, every bad row named with its line and reason."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.events import BodyTemplate, ChainHead, Change, Stamp, canonical_json
from daemon.ledger.importer import import_csv
from daemon.rules.units import Op
from tests.ledger_fixtures import make_ledger

HEADER = "serial,product,po,supplier,branch,cost"


def csv_text(*rows: str, header: str = HEADER) -> io.StringIO:
    return io.StringIO("\n".join([header, *rows]) + "\n")


@pytest.fixture
def ledger() -> Ledger:
    ledger = make_ledger()
    ledger.receive("PO-0", "Acme", "LAP", ["OLD-1"], actor="ann")
    return ledger


def event_count(ledger: Ledger) -> int:
    return int(ledger.db.execute("SELECT count(*) FROM events").fetchone()[0])


def test_good_file_imports_every_row_as_a_chained_event(ledger: Ledger) -> None:
    rows = [f"LX-{i:04d},LAP,PO-7,Acme,B1,812.40" for i in range(250)]
    rows += ["356938035643809,PHN,PO-8,Phones Ltd,B2,199"]
    report = import_csv(ledger, csv_text(*rows), actor="ann")
    assert (report.units, sorted(report.documents)) == (251, ["PO-7", "PO-8"])
    unit = ledger.unit("LAP", "LX-0042")
    assert unit is not None and unit.row["cost_cents"] == 81240 and unit.row["po"] == "PO-7"
    assert ledger.unit("PHN", "356938035643809").branch == "B2"  # type: ignore[union-attr]
    assert verify_chain(ledger).ok
    assert verify_projection(ledger) is None


def test_bad_rows_are_all_reported_and_nothing_is_imported(ledger: Ledger) -> None:
    before = event_count(ledger)
    rows = [
        "LX-1,LAP,PO-7,Acme,B1,10",  # line 2: fine
        "LX-1,LAP,PO-7,Acme,B1,10",  # line 3: duplicate in file
        "OLD-1,LAP,PO-7,Acme,B1,10",  # line 4: duplicate of an active unit
        "LX 2,LAP,PO-7,Acme,B1,10",  # line 5: bad format
        "LX-3,NOPE,PO-7,Acme,B1,10",  # line 6: unknown product
        "12345,PHN,PO-7,Acme,B1,10",  # line 7: product's serial rule
        "LX-4,LAP,PO-7,Acme,B1,ten",  # line 8: bad cost
        "LX-5,LAP,PO-7,Acme",  # line 9: too few fields
        "LX-6\x07,LAP,PO-7,Acme,B1,10",  # line 10: control character
        "LX-7,CABLE,PO-7,Acme,B1,1",  # line 11: not tracked by serial
    ]
    with pytest.raises(Refusal) as refused:
        import_csv(ledger, csv_text(*rows), actor="ann")
    found = [(p.line, p.code) for p in refused.value.problems]
    assert found == [
        (3, "duplicate_in_file"),
        (4, "already_active"),
        (5, "bad_serial"),
        (6, "unknown_product"),
        (7, "bad_serial"),
        (8, "bad_cost"),
        (9, "malformed_row"),
        (10, "bad_serial"),
        (11, "not_serialized"),
    ]
    messages = {p.line: str(p) for p in refused.value.problems}
    assert messages[3] == 'line 3: serial "LX-1" of LAP is already on line 2'
    assert "in stock at branch B1" in messages[4]
    assert "control character (U+0007)" in messages[10]
    assert event_count(ledger) == before
    assert ledger.find("LX-1") == []


def test_header_problems_name_the_columns(ledger: Ledger) -> None:
    with pytest.raises(Refusal) as refused:
        import_csv(
            ledger, csv_text("x", header="serial,product,po,branch,cost,colour"), actor="ann"
        )
    assert [str(p) for p in refused.value.problems] == [
        "line 1: missing column 'supplier'",
        "line 1: unknown column 'colour'; columns are serial, product, po, supplier, branch,"
        " cost, received_on, lot, expiry",
    ]


def test_unit_back_from_the_supplier_can_be_imported_again(ledger: Ledger) -> None:
    ledger.move(Op.RETURN_TO_SUPPLIER, [UnitRef("LAP", "OLD-1")], actor="ann", reason="RMA")
    import_csv(
        ledger, csv_text("OLD-1,LAP,PO-9,Acme,B1,5", "NEW-1,LAP,PO-9,Acme,B1,5"), actor="ann"
    )
    unit = ledger.unit("LAP", "OLD-1")
    assert unit is not None and unit.state.value == "in_stock" and unit.row["po"] == "PO-9"
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "OLD-1")], actor="bob")
    assert verify_projection(ledger) is None


def test_lot_expiry_and_received_on(ledger: Ledger) -> None:
    text = csv_text(
        "MD-1,LAP,PO-3,Med,B1,1,2026-10-01,L42,2028-01-31",
        "MD-2,LAP,PO-3,Med,B1,1,,,",
        header=HEADER + ",received_on,lot,expiry",
    )
    import_csv(ledger, text, actor="ann")
    first = ledger.unit("LAP", "MD-1")
    assert first is not None
    assert (first.row["lot"], first.row["expiry"]) == ("L42", "2028-01-31")
    assert verify_chain(ledger).ok and verify_projection(ledger) is None


@settings(max_examples=60, deadline=None)
@given(
    serial=st.text(min_size=1, max_size=20),
    po=st.text(max_size=10),
    cost=st.integers(0, 10**9),
    party=st.text(max_size=10),
    branch=st.text(min_size=1, max_size=6),
)
def test_template_bodies_are_exactly_canonical_json(
    serial: str, po: str, cost: int, party: str, branch: str
) -> None:
    head = ChainHead("T1", "e1", 41, "ab" * 32)
    stamp = Stamp("2026-11-23T09:00:00.000Z", "ann", "B0")
    example = Change(
        "receive",
        {"party": "x"},
        "LAP",
        "SN",
        ("po", "P"),
        {"state": "in_stock", "branch": "B0", "po": "P", "cost_cents": 1},
        {},
        None,
    )
    template = BodyTemplate(
        example,
        stamp,
        head,
        ["serial", "doc.no", "set.po", "set.cost_cents", "data.party", "branch", "set.branch"],
    )
    prev = head.hash
    event_uuid, seq, text, _ = template.seal(head, [serial, po, po, cost, party, branch, branch])
    expected = {
        "v": 1,
        "uuid": event_uuid,
        "terminal": "T1",
        "epoch": "e1",
        "seq": 42,
        "prev": prev,
        "at": stamp.at,
        "actor": "ann",
        "branch": branch,
        "kind": "receive",
        "data": {"party": party},
        "product": "LAP",
        "serial": serial,
        "unit_prev": None,
        "set": {"state": "in_stock", "branch": branch, "po": po, "cost_cents": cost},
        "was": {},
        "doc": {"type": "po", "no": po},
    }
    assert seq == 42
    assert text == canonical_json(expected)
    assert json.loads(text) == expected
