"""The projection: current state of units, products and documents, from events.

The same `Projection.apply` runs when an event is written and when the log is
replayed, so the projection cannot drift from the log. Each event carries the
unit's fields after it (`set`); applying it is a plain write of those fields.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlite_utils import Database

from daemon.ledger.events import DocRef, EventBody
from daemon.ledger.kinds import SALE_KINDS, Kind
from daemon.rules.serials import serial_key, serial_prefix

# Unit fields an event may set; everything else about a unit is fixed at creation.
UNIT_FIELDS = (
    "state",
    "branch",
    "flags",
    "dest_branch",
    "invoice",
    "customer",
    "sold_on",
    "warranty_until",
    "pre_repair_state",
    "repair_ticket",
    "po",
    "supplier",
    "cost_cents",
    "lot",
    "expiry",
)
PRODUCT_FIELDS = (
    "name",
    "gtin",
    "serial_tracked",
    "serial_rule",
    "warranty_months",
    "mask_serial",
    "price_cents",
)

CountKey = tuple[int, str, str, str]  # product_id, branch, state, prefix
ActivityKey = tuple[int, str, str, str]  # product_id, supplier, branch, day
ACTIVITY_COLUMNS = (
    "received",
    "sold",
    "returned",
    "repaired",
    "replaced",
    "revenue_cents",
    "cost_of_sold_cents",
    "warranty_covered_cents",
)
# Which activity column each kind of event counts in.
_COUNTED: dict[str, str] = {
    Kind.RECEIVE: "received",
    Kind.SELL: "sold",
    Kind.REPLACE_NEW: "sold",
    Kind.RETURN: "returned",
    Kind.REPAIR_OPEN: "repaired",
    Kind.REPLACE_OLD: "replaced",
}


def activity_of(kind: str, data: Mapping[str, Any], cost_cents: int | None) -> dict[str, int]:
    """What one event adds to the activity table (a correction takes it back)."""
    sign = 1
    if kind == Kind.CORRECTION:
        kind, sign = data.get("corrected_kind", ""), -1
        data = {"price_cents": data.get("corrected_price_cents", 0)}
    delta: dict[str, int] = {}
    column = _COUNTED.get(kind)
    if column:
        delta[column] = sign
    if kind in SALE_KINDS:
        delta["revenue_cents"] = sign * int(data.get("price_cents") or 0)
        delta["cost_of_sold_cents"] = sign * int(cost_cents or 0)
    if kind == Kind.WARRANTY_CLAIM:
        delta["warranty_covered_cents"] = sign * int(data.get("covered_cents") or 0)
    return delta


def flags_text(flags: list[str] | tuple[str, ...]) -> str:
    return ",".join(sorted(flags))


def _column_value(name: str, value: Any) -> Any:
    if name == "flags":
        return flags_text(value)
    return value


class Projection:
    """Applies events to the projection tables inside the caller's transaction."""

    def __init__(self, db: Database, prefix_length: int) -> None:
        self.db = db
        self.prefix_length = prefix_length
        self._product_ids: dict[str, int] = {}
        self.count_deltas: Counter[CountKey] = Counter()
        self.activity: dict[ActivityKey, Counter[str]] = {}

    def product_id(self, code: str) -> int | None:
        pid = self._product_ids.get(code)
        if pid is None:
            row = self.db.execute("SELECT id FROM products WHERE code = ?", [code]).fetchone()
            if row is None:
                return None
            pid = self._product_ids[code] = int(row[0])
        return pid

    def apply(self, event: EventBody) -> tuple[int | None, int | None]:
        """Apply one event; return the (unit id, document id) it touched."""
        if event.kind == Kind.PRODUCT:
            self._apply_product(event.data)
        doc = event.doc
        doc_id = self._apply_document(event, doc) if doc is not None else None
        unit_id = self._apply_unit(event) if event.about_unit else None
        return unit_id, doc_id

    def _apply_product(self, data: Mapping[str, Any]) -> None:
        code = data["code"]
        values = {name: data[name] for name in PRODUCT_FIELDS if name in data}
        if self.product_id(code) is None:
            columns = ["code", *values]
            self.db.execute(
                f"INSERT INTO products ({', '.join(columns)}) VALUES "
                f"({', '.join('?' for _ in columns)})",
                [code, *values.values()],
            )
        elif values:
            assignments = ", ".join(f"{name} = ?" for name in values)
            self.db.execute(
                f"UPDATE products SET {assignments} WHERE code = ?", [*values.values(), code]
            )

    def _apply_document(self, event: EventBody, doc: DocRef) -> int:
        data = event.data
        at = event.at
        row = self.db.execute(
            "SELECT id FROM documents WHERE type = ? AND number = ?", [doc.type, doc.number]
        ).fetchone()
        if row is None:
            cursor = self.db.execute(
                "INSERT INTO documents (type, number, branch, party, status, opened_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    doc.type,
                    doc.number,
                    event.branch,
                    data.get("party"),
                    data.get("doc_status"),
                    at,
                    at,
                ],
            )
            return int(cursor.lastrowid or 0)
        doc_id = int(row[0])
        if "doc_status" in data:
            self.db.execute(
                "UPDATE documents SET status = ?, updated_at = ? WHERE id = ?",
                [data["doc_status"], at, doc_id],
            )
        return doc_id

    def _apply_unit(self, event: EventBody) -> int:
        code = event.product
        product_id = self.product_id(code) if code is not None else None
        if product_id is None:
            raise LookupError(f"event {event.uuid} names unknown product {code!r}")
        serial = event.serial
        if serial is None:
            raise LookupError(f"event {event.uuid} names product {code!r} but no serial")
        key = serial_key(serial)
        after = event.after
        at = event.at
        changes = {name: after[name] for name in UNIT_FIELDS if name in after}
        row = self.db.execute(
            "SELECT id, state, branch, supplier, cost_cents FROM units"
            " WHERE serial_key = ? AND product_id = ?",
            [key, product_id],
        ).fetchone()
        prefix = serial_prefix(key, self.prefix_length)
        if row is None:
            self.add_activity(
                (product_id, changes.get("supplier") or "", event.branch, at[:10]),
                activity_of(event.kind, event.data, changes.get("cost_cents")),
            )
            columns = ["product_id", "serial", "serial_key", *changes, "last_event", "updated_at"]
            values = [
                product_id,
                serial,
                key,
                *(_column_value(n, v) for n, v in changes.items()),
                event.uuid,
                at,
            ]
            cursor = self.db.execute(
                f"INSERT INTO units ({', '.join(columns)}) VALUES "
                f"({', '.join('?' for _ in columns)})",
                values,
            )
            self.count_deltas[(product_id, changes["branch"], changes["state"], prefix)] += 1
            return int(cursor.lastrowid or 0)
        unit_id, old_state, old_branch = int(row[0]), row[1], row[2]
        supplier = changes.get("supplier", row[3]) or ""
        self.add_activity(
            (product_id, supplier, event.branch, at[:10]),
            activity_of(event.kind, event.data, changes.get("cost_cents", row[4])),
        )
        assignments = [f"{name} = ?" for name in changes]
        self.db.execute(
            f"UPDATE units SET {', '.join([*assignments, 'last_event = ?', 'updated_at = ?'])}"
            " WHERE id = ?",
            [
                *(_column_value(n, v) for n, v in changes.items()),
                event.uuid,
                at,
                unit_id,
            ],
        )
        new_state = changes.get("state", old_state)
        new_branch = changes.get("branch", old_branch)
        if (new_state, new_branch) != (old_state, old_branch):
            self.count_deltas[(product_id, old_branch, old_state, prefix)] -= 1
            self.count_deltas[(product_id, new_branch, new_state, prefix)] += 1
        return unit_id

    def add_activity(self, key: ActivityKey, delta: dict[str, int]) -> None:
        if delta:
            self.activity.setdefault(key, Counter()).update(delta)

    def flush_counts(self) -> None:
        """Write the accumulated count and activity changes; call once before commit."""
        self._flush_activity()
        deltas = [(*key, n) for key, n in self.count_deltas.items() if n]
        self.count_deltas.clear()
        if not deltas:
            return
        self.db.conn.executemany(
            "INSERT INTO unit_counts (product_id, branch, state, prefix, n) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (prefix, product_id, branch, state) DO UPDATE SET n = n + excluded.n",
            deltas,
        )
        self.db.conn.executemany(
            "DELETE FROM unit_counts WHERE product_id = ? AND branch = ? AND state = ?"
            " AND prefix = ? AND n = 0",
            [row[:4] for row in deltas if row[4] < 0],
        )

    def _flush_activity(self) -> None:
        rows = [
            (*key, *(delta[column] for column in ACTIVITY_COLUMNS))
            for key, delta in self.activity.items()
        ]
        self.activity.clear()
        if not rows:
            return
        columns = ", ".join(ACTIVITY_COLUMNS)
        updates = ", ".join(f"{c} = {c} + excluded.{c}" for c in ACTIVITY_COLUMNS)
        self.db.conn.executemany(
            f"INSERT INTO activity (product_id, supplier, branch, day, {columns})"
            f" VALUES (?, ?, ?, ?, {', '.join('?' for _ in ACTIVITY_COLUMNS)})"
            f" ON CONFLICT (product_id, supplier, branch, day) DO UPDATE SET {updates}",
            rows,
        )
