"""posd report udi: per unit of a product with a GTIN, its production identifiers and
every customer it went to (the record a recall needs), as CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.udi import udi_records
from daemon.rules.units import State
from tests.epcis_fixtures import GTIN
from tests.ledger_fixtures import make_ledger


def stocked(path: Path | None = None) -> Ledger:
    ledger = make_ledger(path)
    ledger.define_product("DRL", "Drill", actor="setup", gtin=GTIN, warranty_months=12)
    ledger.receive("PO-1", "Acme", "DRL", ["A", "B", "C", "D"], actor="ann", lot="L42",
                   expiry=date(2028, 1, 31))  # fmt: skip
    ledger.receive("PO-2", "Acme", "LAP", ["X"], actor="ann")  # no GTIN: no UDI record
    return ledger


def test_each_customer_a_device_went_to_is_a_row() -> None:
    ledger = stocked()
    ledger.sell("INV-1", "Dana", [SaleLine("DRL", "A", 100)], actor="bob")
    ledger.return_unit("INV-1", "DRL", "A", actor="bob", condition="ok", disposition=State.IN_STOCK)
    ledger.sell("INV-2", "Eve", [SaleLine("DRL", "A", 100)], actor="bob")
    ledger.sell("INV-3", "Finn", [SaleLine("DRL", "B", 100)], actor="bob")
    ledger.void_sale("INV-3", "DRL", "B", actor="bob", manager="Mia", reason="wrong unit")
    ledger.sell("INV-4", "Gus", [SaleLine("DRL", "C", 100)], actor="bob")
    ledger.replace("RPL-1", UnitRef("DRL", "C"), UnitRef("DRL", "D"), actor="bob",
                   old_disposition=State.RETURNED_TO_SUPPLIER)  # fmt: skip
    table = udi_records(ledger)
    rows = [(r["serial"], r["customer"], r["invoice"], r["state"]) for r in table.as_dicts()]
    assert rows == [
        ("A", "Dana", "INV-1", "sold"),
        ("A", "Eve", "INV-2", "sold"),
        ("B", None, None, "in_stock"),  # the sale was undone
        ("C", "Gus", "INV-4", "returned_to_supplier"),
        ("D", "Gus", "INV-4", "sold"),  # the replacement went to the same customer
    ]
    first = table.as_dicts()[0]
    assert (first["device_identifier"], first["lot"], first["expiry"], first["po"]) == (
        "0" + GTIN, "L42", "2028-01-31", "PO-1"
    )  # fmt: skip
    assert first["received_on"] == "2026-11-23" and first["sold_on"] == "2026-11-23"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["sell", "return", "void"]), st.sampled_from("AB")),
                max_size=12))  # fmt: skip
def test_rows_match_a_brute_force_listing_of_a_generated_history(
    steps: list[tuple[str, str]],
) -> None:
    ledger = stocked()
    sold: dict[str, list[tuple[str, str]]] = {"A": [], "B": [], "C": [], "D": []}
    current: dict[str, str | None] = dict.fromkeys(sold)
    for number, (step, serial) in enumerate(steps):
        invoice = f"INV-{number}"
        if step == "sell" and current[serial] is None:
            ledger.sell(invoice, f"C{number}", [SaleLine("DRL", serial, 1)], actor="bob")
            sold[serial].append((f"C{number}", invoice))
            current[serial] = invoice
        elif step == "return" and current[serial] is not None:
            ledger.return_unit(str(current[serial]), "DRL", serial, actor="bob", condition="ok",
                               disposition=State.IN_STOCK)  # fmt: skip
            current[serial] = None
        elif step == "void" and current[serial] is not None:
            unit = ledger.unit("DRL", serial)
            assert unit is not None
            last = ledger.event(unit.last_event)
            if last is not None and last.kind == "sell":
                ledger.void_sale(str(current[serial]), "DRL", serial, actor="bob", manager="Mia",
                                 reason="oops")  # fmt: skip
                sold[serial].pop()
                current[serial] = None
    expected = [
        (serial, customer, invoice)
        for serial in "ABCD"
        for customer, invoice in (sold[serial] or [(None, None)])
    ]
    got = [(r["serial"], r["customer"], r["invoice"]) for r in udi_records(ledger).as_dicts()]
    assert got == expected


def test_command_line_csv_and_json(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = stocked(db)
    ledger.sell("INV-1", "Dana", [SaleLine("DRL", "A", 100)], actor="bob")
    ledger.close()
    runner = CliRunner()
    as_csv = runner.invoke(build(), ["--db", str(db), "report", "udi", "--csv"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["serial"], r["customer"]) for r in rows] == [
        ("A", "Dana"), ("B", ""), ("C", ""), ("D", "")
    ]  # fmt: skip
    as_json = runner.invoke(build(), ["--db", str(db), "report", "udi", "--json"])
    assert json.loads(as_json.output)["rows"][0]["device_identifier"] == "0" + GTIN
