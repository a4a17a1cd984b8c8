"""Events from elsewhere, and the ledger as an outbox.

A terminal's ledger holds its own events (its terminal id and current epoch,
gap-free) and foreign ones that HQ forwarded: other terminals' events for the
branch, inbound transfers, and HQ's own flags and conflict resolutions. A foreign
event keeps its own terminal, epoch, sequence number and hash; it is stored once
(by uuid and by terminal/epoch/seq) and applied to the projection like any other.

Forks. Every unit event names the last event its author had for the unit
(`unit_prev`). When a foreign event's `unit_prev` is not the last event this
ledger has for the unit, two places changed the unit without knowing of each
other (say, both sold it while offline): both events are kept and the unit is
flagged `conflict` until HQ resolves it. Flag events only change flags and never
count as one side of a fork; flags from elsewhere are merged, so a flag its author
did not know of is kept. A `resolve` event is HQ's word on a unit and is never a
fork.

The functions that take `db` work inside a caller's open transaction on anything
with sqlite3's `execute(sql, params)` (HQ passes its PostgreSQL adapter).
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from daemon.ledger.errors import LedgerError
from daemon.ledger.events import Change, EventBody, Sealed, body_hash
from daemon.ledger.kinds import FLAG_KINDS, Kind
from daemon.ledger.projection import Projection
from daemon.ledger.store import LedgerStore, iso
from daemon.rules.serials import serial_key

REPLICATION_ACTOR = "replication"
_REQUIRED = ("v", "uuid", "terminal", "epoch", "seq", "prev", "at", "actor", "branch", "kind")


class Sql(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...


class RemoteEventError(LedgerError, ValueError):
    """A foreign event that cannot be stored: changed on the way, malformed, or
    different from the event already stored under its id."""


@dataclass(frozen=True)
class ForeignEvent:
    """An event as it travels: the exact text that was hashed, its hash, and the
    parsed body."""

    text: str
    hash: str
    body: EventBody

    @property
    def uuid(self) -> str:
        return self.body.uuid

    @property
    def terminal(self) -> str:
        return self.body.terminal

    @property
    def epoch(self) -> str:
        return self.body.epoch

    @property
    def seq(self) -> int:
        return self.body.seq

    @property
    def unit(self) -> tuple[str, str] | None:
        return self.body.unit


@dataclass
class ForeignApplied:
    """What applying one foreign event did here."""

    event: ForeignEvent
    stored: bool  # False: this ledger already had it
    unit_id: int | None = None
    event_id: int | None = None  # local row id
    fork_with: str | None = None  # the local event it forked from
    new_unit: bool = False  # the unit was first heard of here with this event
    responses: list[Sealed] = field(default_factory=list)  # events written here in reply


def parse_foreign(text: str, digest: str) -> ForeignEvent:
    """Check a foreign event's text against its hash and parse it."""
    if body_hash(text) != digest:
        raise RemoteEventError(
            f"event with hash {digest[:16]}… does not match its text: it was changed on the"
            " way; ask the sender to send it again"
        )
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise RemoteEventError(f"event {digest[:16]}… is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise RemoteEventError(f"event {digest[:16]}… is not a JSON object")
    missing = [name for name in _REQUIRED if name not in body]
    if missing:
        raise RemoteEventError(f"event {digest[:16]}… lacks {', '.join(missing)}")
    if not isinstance(body["seq"], int) or body["seq"] < 1:
        raise RemoteEventError(f"event {body['uuid']} has seq {body['seq']!r}; must be 1 or more")
    wrong = _misshapen(body)
    if wrong:
        raise RemoteEventError(
            f"event {digest[:16]}… (seq {body['seq']}) is not shaped like a posd event: {wrong};"
            " the sender's software is broken or not posd"
        )
    return ForeignEvent(text, digest, EventBody(body))


_TEXT_FIELDS = ("uuid", "terminal", "epoch", "prev", "at", "actor", "branch", "kind")


def _misshapen(body: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a body (the JSON types of its fields), if anything:
    checked before anything reads it, so that a bad event is a refusal, not a crash."""
    for name in _TEXT_FIELDS:
        if not isinstance(body[name], str):
            return f"{name} is {body[name]!r}, not text"
    if not isinstance(body.get("data"), dict):
        return "its data is not an object"
    if "doc" in body:
        doc = body["doc"]
        if not (isinstance(doc, dict) and _texts(doc.get("type"), doc.get("no"))):
            return f"its document is {doc!r}, not a type and a number"
    if "product" not in body:
        if any(not isinstance(body.get(part, {}), dict) for part in ("set", "was")):
            return "its set or was is not an object"
        return None
    if not _texts(body["product"], body.get("serial")):
        return "a unit event needs its product and serial as text"
    if body.get("unit_prev") is not None and not isinstance(body["unit_prev"], str):
        return "unit_prev is not an event id"
    for part in ("set", "was"):
        fields = body.get(part)
        if not isinstance(fields, dict):
            return f"its {part} is not an object"
        flags = fields.get("flags", [])
        if not (isinstance(flags, list) and all(isinstance(f, str) for f in flags)):
            return f"its {part}.flags is not a list of flags"
        if any(isinstance(v, dict | list) for k, v in fields.items() if k != "flags"):
            return f"its {part} holds a field that is not a single value"
    return None


def _texts(*values: object) -> bool:
    return all(isinstance(value, str) for value in values)


# -- working inside an open transaction ----------------------------------------


@dataclass(frozen=True)
class UnitHead:
    id: int
    serial: str
    last_event: str
    flags: list[str]


def unit_head(db: Sql, product: str, serial_key: str, lock: str = "") -> UnitHead | None:
    """The unit's id, last event and flags; `lock` (e.g. " FOR UPDATE OF u") holds the row."""
    row = db.execute(
        "SELECT u.id, u.serial, u.last_event, u.flags FROM units u"
        " JOIN products p ON p.id = u.product_id WHERE u.serial_key = ? AND p.code = ?" + lock,
        [serial_key, product],
    ).fetchone()
    if row is None:
        return None
    return UnitHead(int(row[0]), row[1], row[2], [f for f in row[3].split(",") if f])


def stored_hash(db: Sql, event: ForeignEvent) -> str | None:
    """The hash already stored for this event (by uuid or terminal/epoch/seq), or None.

    Raises when the stored event is a different one: a terminal must never send
    two events under one number.
    """
    rows = db.execute(
        "SELECT uuid, terminal, epoch, seq, hash FROM events"
        " WHERE uuid = ? OR (terminal = ? AND epoch = ? AND seq = ?)",
        [event.uuid, event.terminal, event.epoch, event.seq],
    ).fetchall()
    for row in rows:
        if row[0] != event.uuid or row[4] != event.hash:
            raise RemoteEventError(
                f"terminal {event.terminal} epoch {event.epoch} seq {event.seq} (event"
                f" {event.uuid}) differs from the stored event {row[0]} (terminal {row[1]} seq"
                f" {row[3]}); the sender's ledger was rebuilt or edited: check it with"
                " `posd audit verify`"
            )
    return rows[0][4] if rows else None


def _kind_of(db: Sql, event_uuid: str) -> tuple[str, str | None] | None:
    row = db.execute("SELECT kind, body FROM events WHERE uuid = ?", [event_uuid]).fetchone()
    if row is None:
        return None
    return row[0], EventBody.parse(row[1]).unit_prev


def _last_change(db: Sql, unit_id: int) -> str | None:
    """The unit's latest event here that is not a flag event."""
    for event_uuid, kind in db.execute(
        "SELECT uuid, kind FROM events WHERE unit_id = ? ORDER BY id DESC", [unit_id]
    ).fetchall():
        if kind not in FLAG_KINDS:
            return str(event_uuid)
    return None


def _change_before(db: Sql, event_uuid: str | None) -> str | None:
    """Follow `unit_prev` back through flag events to the change they came after."""
    seen = 0
    while event_uuid is not None and seen < 10_000:
        found = _kind_of(db, event_uuid)
        if found is None or found[0] not in FLAG_KINDS:
            return event_uuid
        event_uuid = found[1]
        seen += 1
    return event_uuid


def find_fork(db: Sql, event: EventBody, head: UnitHead | None) -> str | None:
    """The local event a foreign unit event forks from, or None when it follows on.

    Flag events never fork (flags are merged), nor does HQ's `resolve`, which settles one.
    """
    if head is None or event.kind in FLAG_KINDS or event.kind == Kind.RESOLVE:
        return None
    prev = event.unit_prev
    if prev == head.last_event:
        return None
    last = _last_change(db, head.id)
    if prev is not None and _kind_of(db, prev) is None:
        return None  # its history is not here: only HQ, which has it all, can judge
    if _change_before(db, prev) == last:
        return None
    return last or head.last_event


def merged_flags(before: Sequence[str], event: EventBody) -> list[str] | None:
    """Flags to keep after a foreign event that sets them, or None when its own are right.

    The event's author added (set - was) and removed (was - set); flags it did not
    know of stay.
    """
    if "flags" not in event.after:
        return None
    after = set(event.after["flags"])
    was = set(event.before.get("flags", []))
    merged = (set(before) | (after - was)) - (was - after)
    return sorted(merged) if merged != after else None


def flag_change(
    product: str,
    serial: str,
    unit_prev: str,
    before: Sequence[str],
    after: Sequence[str],
    data: dict[str, Any],
) -> Change:
    """A flag event, shaped as `Ledger.set_flag` writes them."""
    kind = Kind.UNFLAG if set(after) < set(before) else Kind.FLAG
    return Change(
        kind,
        data,
        product=product,
        serial=serial,
        doc=("flag", f"FLAG-{uuidlib.uuid4().hex[:10]}"),
        set={"flags": sorted(after)},
        was={"flags": sorted(before)},
        unit_prev=unit_prev,
    )


Record = Callable[[Change], Sealed]


def apply_foreign(
    db: Sql,
    projection: Projection,
    record: Record,
    event: ForeignEvent,
    *,
    lock: str = "",
    known_new: bool = False,
) -> ForeignApplied:
    """Store one foreign event and apply it, inside the caller's transaction.

    `record` writes this ledger's own events (a conflict flag, a flag merge) in the
    same transaction. `lock` is appended to the query that reads the unit, so that
    on a shared database two writers cannot both miss a fork. `known_new`: the
    caller knows the event is not stored yet (HQ, above a terminal's watermark);
    the unique indexes still refuse a second copy.
    """
    if not known_new and stored_hash(db, event) is not None:
        return ForeignApplied(event, stored=False)
    unit = event.unit
    head = None
    if unit is not None:
        head = unit_head(db, unit[0], serial_key(unit[1]), lock)
    fork = find_fork(db, event.body, head)
    before = head.flags if head else []
    unit_id, doc_id = projection.apply(event.body)
    cursor = db.execute(
        "INSERT INTO events (uuid, terminal, epoch, seq, kind, unit_id, doc_id, body, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            event.uuid,
            event.terminal,
            event.epoch,
            event.seq,
            event.body.kind,
            unit_id,
            doc_id,
            event.text,
            event.hash,
        ],
    )
    applied = ForeignApplied(event, True, unit_id, int(cursor.lastrowid or 0), fork, head is None)
    if unit is None:
        return applied
    serial = head.serial if head else unit[1]
    flags = merged_flags(before, event.body)
    if flags is not None:
        change = flag_change(
            unit[0],
            serial,
            event.uuid,
            event.body.after["flags"],
            flags,
            {"merge_of": event.uuid, "reason": "kept flags the sender did not know of"},
        )
        applied.responses.append(record(change))
        before = flags
    elif "flags" in event.body.after:
        before = list(event.body.after["flags"])
    if fork is not None and "conflict" not in before:
        reason = f"{event.body.kind} {event.uuid} and {fork} both follow the same event"
        change = flag_change(
            unit[0],
            serial,
            applied.responses[-1].uuid if applied.responses else event.uuid,
            before,
            [*before, "conflict"],
            {"flag": "conflict", "reason": reason, "fork": [fork, event.uuid]},
        )
        applied.responses.append(record(change))
    return applied


# -- the terminal's side ---------------------------------------------------------


def apply_remote_many(
    ledger: LedgerStore,
    items: Iterable[tuple[str, str]],
    *,
    position: tuple[str, int] | None = None,
) -> list[ForeignApplied]:
    """Store and apply foreign events (text, hash) in one durable transaction.

    Every event is checked first; one bad event refuses the whole batch. Events
    already here are skipped. `position` (key, value) is saved in the same
    transaction, so a feed position never runs ahead of the events it covers.
    """
    events = [parse_foreign(text, digest) for text, digest in items]
    for event in events:
        if (event.terminal, event.epoch) == (ledger.terminal, ledger.epoch):
            raise RemoteEventError(
                f"event {event.uuid} is this ledger's own (seq {event.seq}); it cannot come"
                " from elsewhere"
            )
    results: list[ForeignApplied] = []
    with ledger.writing(ledger.stamp(REPLICATION_ACTOR)) as writer:
        for event in events:
            results.append(apply_foreign(ledger.db, writer.projection, writer.record, event))
        if position is not None:
            set_state(ledger, *position)
    return results


def apply_remote(ledger: LedgerStore, body_text: str, digest: str) -> ForeignApplied:
    """Store and apply one foreign event; nothing happens if it is already here."""
    return apply_remote_many(ledger, [(body_text, digest)])[0]


def outbox(ledger: LedgerStore, after_seq: int, limit: int) -> list[tuple[int, str, str]]:
    """This ledger's own events after `after_seq`, in order: (seq, body text, hash)."""
    rows = ledger.db.execute(
        "SELECT seq, body, hash FROM events WHERE terminal = ? AND epoch = ? AND seq > ?"
        " ORDER BY seq LIMIT ?",
        [ledger.terminal, ledger.epoch, after_seq, limit],
    ).fetchall()
    return [(int(seq), body, digest) for seq, body, digest in rows]


def head_seq(ledger: LedgerStore) -> int:
    """The sequence number of this ledger's newest own event (0 when none)."""
    row = ledger.db.execute(
        "SELECT max(seq) FROM events WHERE terminal = ? AND epoch = ?",
        [ledger.terminal, ledger.epoch],
    ).fetchone()
    return int(row[0] or 0)


def replication_cursor(ledger: LedgerStore) -> int:
    """The highest own seq HQ has confirmed storing (0 when none)."""
    row = ledger.db.execute(
        "SELECT acked_seq FROM replication_cursor WHERE terminal = ? AND epoch = ?",
        [ledger.terminal, ledger.epoch],
    ).fetchone()
    return int(row[0]) if row else 0


def set_replication_cursor(ledger: LedgerStore, seq: int) -> int:
    """Move the cursor forward to `seq` (never back, never past the last event); durable.

    Returns the cursor after the call.
    """
    head = head_seq(ledger)
    if seq > head:
        raise RemoteEventError(
            f"HQ acknowledged seq {seq} but this ledger's last event is seq {head}: HQ holds"
            f" events of another ledger with epoch {ledger.epoch}; check the terminal id"
        )
    # A write outside a transaction commits at once (sqlite-utils), and the ledger
    # runs with synchronous=FULL.
    ledger.db.execute(
        "INSERT INTO replication_cursor (terminal, epoch, acked_seq, updated_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (terminal, epoch) DO UPDATE SET"
        " acked_seq = max(acked_seq, excluded.acked_seq), updated_at = excluded.updated_at",
        [ledger.terminal, ledger.epoch, seq, iso(ledger.clock())],
    )
    ledger.anchor_ack(seq)
    return replication_cursor(ledger)


def state(ledger: LedgerStore, key: str, default: int = 0) -> int:
    row = ledger.db.execute("SELECT value FROM replication_state WHERE key = ?", [key]).fetchone()
    return int(row[0]) if row else default


def set_state(ledger: LedgerStore, key: str, value: int) -> None:
    """Save a replication value (inside the caller's transaction, if one is open)."""
    ledger.db.execute(
        "INSERT INTO replication_state (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, str(value)],
    )
