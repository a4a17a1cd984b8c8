"""The event log in order, a slice at a time: for exports that must not hold the
whole log in memory (one query per `chunk` events, keyed on the log's row id).

    for event in history(ledger, Selection(product="LAP-X1", since="2026-11-01T00:00:00.000Z")):
        ...

Runs on any `ReadStore`: a terminal's ledger, HQ's SQLite file or PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from daemon.ledger.events import EventBody
from daemon.ledger.reader import ReadStore
from daemon.rules.serials import serial_key


@dataclass(frozen=True)
class Selection:
    """Which events: of a unit or product, a branch, a terminal's sequence range, a
    time range (`since` inclusive, `until` exclusive, ISO 8601 UTC like the events')."""

    product: str | None = None
    serial: str | None = None
    branch: str | None = None
    terminal: str | None = None
    from_seq: int | None = None
    to_seq: int | None = None
    since: str | None = None
    until: str | None = None


def history(store: ReadStore, selection: Selection, chunk: int = 1000) -> Iterator[EventBody]:
    """The selected events, oldest first."""
    where: list[str] = []
    params: list[Any] = []
    if selection.product is not None or selection.serial is not None:
        units = "SELECT u.id FROM units u JOIN products p ON p.id = u.product_id WHERE 1 = 1"
        if selection.product is not None:
            units += " AND p.code = ?"
            params.append(selection.product)
        if selection.serial is not None:
            units += " AND u.serial_key = ?"
            params.append(serial_key(selection.serial))
        where.append(f"e.unit_id IN ({units})")
    if selection.terminal is not None:
        where.append("e.terminal = ?")
        params.append(selection.terminal)
    if selection.from_seq is not None:
        where.append("e.seq >= ?")
        params.append(selection.from_seq)
    if selection.to_seq is not None:
        where.append("e.seq <= ?")
        params.append(selection.to_seq)
    sql = (
        "SELECT e.id, e.body FROM events e WHERE e.id > ?"
        + "".join(f" AND {condition}" for condition in where)
        + f" ORDER BY e.id LIMIT {int(chunk)}"
    )
    last = 0
    while True:
        rows = store.db.execute(sql, [last, *params]).fetchall()
        for _, body in rows:
            event = EventBody.parse(body)
            if _wanted(event, selection):
                yield event
        if len(rows) < chunk:
            return
        last = rows[-1][0]


def _wanted(event: EventBody, selection: Selection) -> bool:
    if selection.branch is not None and event.branch != selection.branch:
        return False
    if selection.since is not None and event.at < selection.since:
        return False
    return selection.until is None or event.at < selection.until


def product_gtins(store: ReadStore) -> dict[str, str | None]:
    """Every product's GTIN (None: it has none), by product code."""
    return {code: gtin for code, gtin in store.db.execute("SELECT code, gtin FROM products")}
