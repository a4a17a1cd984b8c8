"""The scan path's questions to the ledger, answered with one indexed query each.

    lookup = ScanLookup(db)
    facts = lookup.facts(LookupPlan(gtin="04006381333931", serial="LX-0001"))

Read-only and small on purpose: a scan is decided in well under a millisecond, so
this reads only the columns a lane decision needs (`daemon.rules.lane.types.Facts`),
through the `units_key` index and the products' unique `code` and `gtin` indexes.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind
from daemon.rules.lane.types import (
    Facts,
    InvoiceFacts,
    InvoiceLine,
    LookupPlan,
    ProductFacts,
    UnitFacts,
)
from daemon.rules.serials import SerialError, check_serial
from daemon.rules.units import Flag, State, UnitView

_PRODUCT_COLUMNS = "code, name, price_cents, serial_tracked, gtin, mask_serial, warranty_months"
_UNITS = (
    "SELECT u.serial, u.serial_key, u.state, u.branch, u.flags, u.invoice, u.dest_branch,"
    " u.pre_repair_state, p.code, p.name, p.price_cents, p.serial_tracked, p.gtin,"
    " p.mask_serial, p.warranty_months"
    " FROM units u JOIN products p ON p.id = u.product_id WHERE u.serial_key = ?"
)
_BY_CODE = f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE code = ?"
_BY_GTIN = f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE gtin IN (?, ?, ?, ?)"
_INVOICE = (
    "SELECT e.kind, e.body FROM events e JOIN documents d ON d.id = e.doc_id"
    " WHERE d.type = 'invoice' AND d.number = ? AND e.kind IN (?, ?) ORDER BY e.id"
)


_SOLD_AT = (
    "SELECT json_extract(e.body, '$.at') FROM events e JOIN documents d ON d.id = e.doc_id"
    " WHERE d.type = 'invoice' AND d.number = ? ORDER BY e.id LIMIT 1"
)


class ScanLookup:
    """Reads what a lane decision needs (and, after a restart, when an invoice was
    sold). The caller owns `conn` and its thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def facts(self, plan: LookupPlan) -> Facts:
        if plan.empty:
            return Facts()
        units = self.units(plan.serial) if plan.serial else ()
        product = self.product_by_gtin(plan.gtin) if plan.gtin else None
        if product is None and plan.product_code and not units:
            # A label that is a serial needs no product look-up by code: one query less
            # on the most common scan.
            product = self.product(plan.product_code)
        invoice = self.invoice(plan.invoice) if plan.invoice else None
        return Facts(product=product, units=units, invoice=invoice)

    def product(self, code: str) -> ProductFacts | None:
        row = self._conn.execute(_BY_CODE, (code,)).fetchone()
        return _product(row) if row else None

    def product_by_gtin(self, gtin: str) -> ProductFacts | None:
        """A product under any spelling of its GTIN: scanners give GTIN-14, products are
        often defined with the 13 (EAN), 12 (UPC-A) or 8 digits printed on the pack."""
        digits = gtin.lstrip("0").rjust(8, "0")
        forms = [gtin.rjust(14, "0"), digits.rjust(13, "0"), digits.rjust(12, "0"), digits]
        row = self._conn.execute(_BY_GTIN, forms).fetchone()
        return _product(row) if row else None

    def units(self, serial: str) -> tuple[UnitFacts, ...]:
        """Every unit with this serial, whatever its product."""
        try:
            key = check_serial(serial)
        except SerialError:
            return ()
        return tuple(_unit(row) for row in self._conn.execute(_UNITS, (key,)))

    def invoice(self, number: str) -> InvoiceFacts:
        """What invoice `number` sold, line by line (empty and `exists=False` if none)."""
        lines: list[InvoiceLine] = []
        products: dict[str, ProductFacts | None] = {}
        found = False
        for kind, text in self._conn.execute(_INVOICE, (number, Kind.SELL, Kind.SELL_ITEM)):
            found = True
            event = EventBody.parse(text)
            data = event.data
            unit = event.unit if kind == Kind.SELL else None
            code, serial = unit if unit is not None else (str(data["item"]), None)
            if code not in products:
                products[code] = self.product(code)
            product = products[code] or ProductFacts(code, code, 0)
            lines.append(
                InvoiceLine(
                    product,
                    serial,
                    check_serial(serial) if serial else None,
                    int(data.get("price_cents") or 0),
                    int(data.get("quantity") or 1),
                )
            )
        if not found:
            found = (
                self._conn.execute(
                    "SELECT 1 FROM documents WHERE type = 'invoice' AND number = ?", (number,)
                ).fetchone()
                is not None
            )
        return InvoiceFacts(number, found, tuple(lines))

    def sold_at(self, invoice: str) -> datetime | None:
        """When invoice `invoice` was written (its first event); None when there is none."""
        row = self._conn.execute(_SOLD_AT, (invoice,)).fetchone()
        if row is None or not row[0]:
            return None
        return datetime.fromisoformat(str(row[0]).replace("Z", "+00:00"))

    def floor(self, key: str) -> int:
        """The bare indexed look-up of one serial key, for the benchmark's floor."""
        row = self._conn.execute(
            "SELECT id FROM units WHERE serial_key = ? LIMIT 1", (key,)
        ).fetchone()
        return int(row[0]) if row else 0


def _product(row: tuple[Any, ...]) -> ProductFacts:
    code, name, price, tracked, gtin, mask, months = row
    return ProductFacts(code, name, int(price), bool(tracked), gtin, bool(mask), int(months))


def _unit(row: tuple[Any, ...]) -> UnitFacts:
    serial, key, state, branch, flags, invoice, dest, pre_repair = row[:8]
    product = _product(row[8:])
    view = UnitView(
        label=f'{product.name} serial "{serial}"',
        state=State(state),
        branch=branch,
        flags=frozenset(Flag(f) for f in flags.split(",") if f),
        invoice=invoice,
        dest_branch=dest,
        pre_repair_state=State(pre_repair) if pre_repair else None,
    )
    return UnitFacts(product, serial, key, view)
