"""Recalls: flag every matching unit, and list the customers who hold one.

A recall selects units by product, lot, serial range, prefix or an explicit list
(any combination narrows it). Every selected unit is flagged `recalled` with the
recall notice as its document, so a recalled unit in stock cannot be sold and one
brought to a return or repair desk says so. The outreach list is every sold unit
the notice flagged, with its customer, invoice, branch and date of sale.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any

from daemon.ledger.analytics import Table
from daemon.ledger.core import Outcome, UnitRef
from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.kinds import Kind, not_receipt
from daemon.ledger.ledger import Ledger
from daemon.ledger.reader import ReadStore, chunks, placeholders
from daemon.ledger.store import UNIT_SELECT, unit_from_row
from daemon.rules.serials import serial_key
from daemon.rules.units import Flag

_KEY_CEILING = "\U0010ffff"


@dataclass(frozen=True)
class RecallSelector:
    """Which units a recall covers; at least one criterion is needed."""

    product: str | None = None
    lot: str | None = None
    first: str | None = None
    last: str | None = None
    prefix: str | None = None
    serials: tuple[str, ...] = field(default=())

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, ())}


def select_units(store: ReadStore, selector: RecallSelector) -> list[UnitRef]:
    """The units a selector covers, found through indexes (one query, or one per few
    hundred serials of a list)."""
    where: list[str] = []
    params: list[Any] = []
    if selector.product:
        where.append("p.code = ?")
        params.append(selector.product)
    if selector.lot:
        where.append("u.lot = ?")
        params.append(selector.lot)
    if selector.first:
        where.append("u.serial_key >= ?")
        params.append(serial_key(selector.first))
    if selector.last:
        where.append("u.serial_key <= ?")
        params.append(serial_key(selector.last))
    if selector.prefix:
        key = serial_key(selector.prefix)
        where.append("u.serial_key >= ? AND u.serial_key < ?")
        params += [key, key + _KEY_CEILING]
    if not where and not selector.serials:
        raise Refusal(
            [
                Problem(
                    "empty_recall",
                    "a recall needs a product, lot, range, prefix or list of serials",
                )
            ]
        )
    if not selector.serials:
        sql = f"{UNIT_SELECT} WHERE {' AND '.join(where)} ORDER BY u.serial_key"
        rows = list(store.db.query(sql, params))
    else:
        rows = []
        keys = list(dict.fromkeys(serial_key(s) for s in selector.serials))
        for part in chunks(keys):
            listed = [*where, f"u.serial_key IN ({placeholders(len(part))})"]
            sql = f"{UNIT_SELECT} WHERE {' AND '.join(listed)}"
            rows += store.db.query(sql, [*params, *part])
        rows.sort(key=lambda row: (row["serial_key"], row["product_id"]))
    return [UnitRef(unit.product.code, unit.serial) for unit in map(unit_from_row, rows)]


def recall(
    ledger: Ledger, notice: str, selector: RecallSelector, *, actor: str, reason: str
) -> Outcome:
    """Flag every unit the selector covers as recalled, on recall notice `notice`."""
    refs = select_units(ledger, selector)
    if not refs:
        raise Refusal(
            [Problem("no_units", f"recall {notice}: no unit matches {selector.describe()}")]
        )
    outcome = ledger.set_flag(
        refs, Flag.RECALLED, actor=actor, reason=reason, document=notice, doc_type="recall"
    )
    outcome.details["matched"] = len(refs)
    outcome.message = f"recall {notice}: {len(refs)} unit(s) match, {outcome.message}"
    return outcome


def outreach(store: ReadStore, notice: str) -> Table:
    """Every sold unit recall `notice` flagged: who has it, on which invoice, since when."""
    rows = store.db.execute(
        "SELECT DISTINCT p.code, u.serial, u.customer, u.invoice, u.branch, u.sold_on, u.state"
        " FROM events e JOIN documents d ON d.id = e.doc_id"
        " JOIN units u ON u.id = e.unit_id JOIN products p ON p.id = u.product_id"
        f" WHERE d.type = 'recall' AND d.number = ? AND e.kind = ? AND {not_receipt('e.kind')}"
        " AND u.customer IS NOT NULL AND u.flags LIKE '%recalled%'"
        " ORDER BY u.branch, u.sold_on, u.serial",
        [notice, Kind.FLAG],
    ).fetchall()
    return Table(
        f"Recall {notice}: customers to contact",
        ("product", "serial", "customer", "invoice", "branch", "sold_on", "state"),
        [tuple(r) for r in rows],
    )


def as_csv(table: Table) -> str:
    """The table as CSV, every cell safe to open in a spreadsheet (`safe_cell`): the one
    way posd writes CSV, for the dashboard's downloads and the command line's reports."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([safe_cell(c) for c in table.columns])
    writer.writerows([safe_cell(c) for c in row] for row in table.rows)
    return out.getvalue()


# What a spreadsheet takes for the start of a formula (OWASP, CSV injection), the
# full-width forms some of them read the same way too; and the characters that hide one
# (a cell beginning with a tab, CR or LF, or with blanks before the `=`).
_FORMULA_START = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_HIDING_START = frozenset("\t\r\n")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def safe_cell(value: Any) -> Any:
    """`value` for a CSV cell: text that a spreadsheet would run as a formula
    (`=HYPERLINK(…)`, `+1+cmd|…`, `@SUM(…)`, `\\t=…`, `  -2+3`) gets a leading `'`, so it
    is shown as the text it is; numbers, and text that is just a number (`-12.50`),
    are left alone."""
    if not isinstance(value, str) or not value or _PLAIN_NUMBER.fullmatch(value):
        return value
    if value[0] in _HIDING_START or value.lstrip()[:1] in _FORMULA_START:
        return "'" + value
    return value
