"""UDI device records: for every unit of a product with a GTIN (the device identifier),
its production identifiers (serial, lot, expiry, as the GS1 barcode gave them at
receipt), where it came from, and each customer it went to: the record a recall needs.

    table = udi_records(ledger)      # `posd report udi --csv`

One row per sale of a unit (a unit sold, returned and sold again has two), in the
order they happened; a sale undone by a correction is left out; a unit never sold has
one row with no customer. Runs on any `ReadStore` (a terminal, HQ).
"""

from __future__ import annotations

from typing import Any

from daemon.ledger.analytics import Table
from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind
from daemon.ledger.reader import ReadStore

COLUMNS = (
    "device_identifier",
    "product",
    "serial",
    "lot",
    "expiry",
    "received_on",
    "po",
    "supplier",
    "state",
    "branch",
    "customer",
    "invoice",
    "sold_on",
)


def udi_records(store: ReadStore) -> Table:
    units = list(
        store.db.query(
            "SELECT u.id, p.gtin, p.code, u.serial, u.lot, u.expiry, u.po, u.supplier,"
            " u.state, u.branch FROM units u JOIN products p ON p.id = u.product_id"
            " WHERE p.gtin IS NOT NULL ORDER BY p.code, u.serial_key"
        )
    )
    received: dict[int, str] = {}
    sales: dict[int, list[tuple[str, Any, Any, Any]]] = {}
    undone: set[str] = set()
    rows = store.db.execute(
        "SELECT e.unit_id, e.body FROM events e JOIN units u ON u.id = e.unit_id"
        " JOIN products p ON p.id = u.product_id"
        " WHERE p.gtin IS NOT NULL AND e.kind IN (?, ?, ?, ?) ORDER BY e.id",
        [Kind.RECEIVE, Kind.SELL, Kind.REPLACE_NEW, Kind.CORRECTION],
    ).fetchall()
    for unit_id, body in rows:
        event = EventBody.parse(body)
        if event.kind == Kind.RECEIVE:
            received.setdefault(unit_id, str(event.data.get("received_on") or event.day))
        elif event.kind == Kind.CORRECTION:
            undone.add(str(event.data.get("corrects")))
        else:
            invoice = event.data.get("invoice") or (event.doc.number if event.doc else None)
            sale = (event.uuid, event.data.get("party"), invoice, event.after.get("sold_on"))
            sales.setdefault(unit_id, []).append(sale)
    table: list[tuple[Any, ...]] = []
    for unit in units:
        gtin = str(unit["gtin"]).rjust(14, "0")
        fixed: tuple[Any, ...] = (gtin, unit["code"], unit["serial"], unit["lot"], unit["expiry"])
        fixed += (received.get(unit["id"]), unit["po"], unit["supplier"])
        fixed += (unit["state"], unit["branch"])
        kept = [s for s in sales.get(unit["id"], []) if s[0] not in undone]
        for _, customer, invoice, sold_on in kept or [("", None, None, None)]:
            table.append((*fixed, customer, invoice, sold_on))
    return Table("UDI device records", COLUMNS, table)
