"""Finding units: the passport, searches and the counts a dashboard shows.

Nothing here scans the units table: look-ups and prefix/range searches use the
(serial_key, product) index, and counts come from `unit_counts`, which every write
keeps current in its own transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind, not_receipt
from daemon.ledger.reader import ReadStore
from daemon.ledger.store import UNIT_SELECT, Unit, unit_from_row
from daemon.rules.serials import serial_key

# Sorts after every character a serial key may contain.
_KEY_CEILING = "\U0010ffff"


@dataclass(frozen=True)
class PassportEvent:
    uuid: str
    seq: int
    terminal: str
    at: str
    kind: str
    actor: str
    branch: str
    document: str | None
    state_from: str | None
    state_to: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Passport:
    unit: Unit
    events: list[PassportEvent]

    def as_dict(self) -> dict[str, Any]:
        u = self.unit
        return {
            "product": u.product.code,
            "product_name": u.product.name,
            "serial": u.serial,
            "state": u.state.value,
            "branch": u.branch,
            "flags": sorted(f.value for f in u.flags),
            "dest_branch": u.dest_branch,
            "invoice": u.invoice,
            "customer": u.customer,
            "sold_on": u.sold_on,
            "warranty_until": u.warranty_until,
            "repair_ticket": u.repair_ticket,
            "events": [e.__dict__ for e in self.events],
        }


SHORT_ID_LENGTH = 8


def short_event_id(event_uuid: str) -> str:
    """The last 8 hex digits of an event id (the random end of a UUIDv7: events of
    the same millisecond differ there), which `Ledger.expand_event_id` takes back."""
    return event_uuid.replace("-", "")[-SHORT_ID_LENGTH:]


def passport(store: ReadStore, unit: Unit) -> Passport:
    """A unit's whole history, in order, each event with its document."""
    events = []
    for (body,) in store.db.execute(
        "SELECT body FROM events WHERE unit_id = ? ORDER BY id", [unit.id]
    ):
        event = EventBody.parse(body)
        doc = event.doc
        events.append(
            PassportEvent(
                uuid=event.uuid,
                seq=event.seq,
                terminal=event.terminal,
                at=event.at,
                kind=event.kind,
                actor=event.actor,
                branch=event.branch,
                document=doc.label if doc else None,
                state_from=event.before.get("state"),
                state_to=event.after.get("state"),
                data=event.data,
            )
        )
    return Passport(unit, events)


def events_of(store: ReadStore, kind: Kind) -> Iterator[EventBody]:
    """Every event of one kind, in log order, found through the `events_kind` index.

    Not for receipts, which are most of the log: ask for a unit's or a document's."""
    if kind == Kind.RECEIVE:
        raise ValueError("receipts are most of the log; read them by unit or by document")
    for (body,) in store.db.execute(
        f"SELECT body FROM events WHERE kind = ? AND {not_receipt()} ORDER BY id", [kind]
    ):
        yield EventBody.parse(body)


def search(
    store: ReadStore,
    *,
    serial: str | None = None,
    prefix: str | None = None,
    first: str | None = None,
    last: str | None = None,
    state: str | None = None,
    product: str | None = None,
    branch: str | None = None,
    limit: int = 100,
) -> list[Unit]:
    """Units by exact serial, prefix or range of serials, narrowed by state, product
    and branch. At most `limit` units, in serial order."""
    where: list[str] = []
    params: list[Any] = []
    if serial is not None:
        where.append("u.serial_key = ?")
        params.append(serial_key(serial))
    if prefix is not None:
        key = serial_key(prefix)
        where.append("u.serial_key >= ? AND u.serial_key < ?")
        params += [key, key + _KEY_CEILING]
    if first is not None:
        where.append("u.serial_key >= ?")
        params.append(serial_key(first))
    if last is not None:
        where.append("u.serial_key <= ?")
        params.append(serial_key(last))
    for column, value in (("u.state", state), ("p.code", product), ("u.branch", branch)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = UNIT_SELECT
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY u.serial_key, u.product_id LIMIT ?"
    return [unit_from_row(row) for row in store.db.query(sql, [*params, limit])]


_GROUPS = {"product": "p.code", "branch": "c.branch", "state": "c.state", "prefix": "c.prefix"}


def counts(
    store: ReadStore,
    *,
    by: tuple[str, ...] = ("prefix", "state"),
    prefix: str | None = None,
    product: str | None = None,
    branch: str | None = None,
) -> list[dict[str, Any]]:
    """Units per group (any of prefix, product, branch, state), from the kept counts.

    A `prefix` up to the counted prefix length reads only the counts table; a longer
    one counts the matching index range instead.
    """
    unknown = [name for name in by if name not in _GROUPS]
    if unknown:
        raise ValueError(f"cannot group by {unknown[0]!r}; choose from {', '.join(_GROUPS)}")
    if prefix is not None and len(serial_key(prefix)) > store.prefix_length:
        return _counts_from_index(store, by, serial_key(prefix), product, branch)
    where: list[str] = []
    params: list[Any] = []
    if prefix is not None:
        key = serial_key(prefix)
        where.append("c.prefix >= ? AND c.prefix < ?")
        params += [key, key + _KEY_CEILING]
    if product is not None:
        where.append("p.code = ?")
        params.append(product)
    if branch is not None:
        where.append("c.branch = ?")
        params.append(branch)
    columns = [f"{_GROUPS[name]} AS {name}" for name in by]
    sql = f"SELECT {', '.join([*columns, 'sum(c.n) AS units'])}"
    sql += " FROM unit_counts c JOIN products p ON p.id = c.product_id"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if by:
        sql += f" GROUP BY {', '.join(by)} ORDER BY {', '.join(by)}"
    return [row for row in store.db.query(sql, params) if row["units"]]


def _counts_from_index(
    store: ReadStore, by: tuple[str, ...], key: str, product: str | None, branch: str | None
) -> list[dict[str, Any]]:
    groups = {"product": "p.code", "branch": "u.branch", "state": "u.state", "prefix": "?"}
    columns = [f"{groups[name]} AS {name}" for name in by]
    params: list[Any] = [key] if "prefix" in by else []
    sql = f"SELECT {', '.join([*columns, 'count(*) AS units'])}"
    sql += " FROM units u JOIN products p ON p.id = u.product_id"
    sql += " WHERE u.serial_key >= ? AND u.serial_key < ?"
    params += [key, key + _KEY_CEILING]
    if product is not None:
        sql += " AND p.code = ?"
        params.append(product)
    if branch is not None:
        sql += " AND u.branch = ?"
        params.append(branch)
    if by:
        sql += f" GROUP BY {', '.join(by)} ORDER BY {', '.join(by)}"
    return list(store.db.query(sql, params))
