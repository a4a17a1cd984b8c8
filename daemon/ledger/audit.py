"""Proving the ledger has not been edited: the hash chain and a replay of the log.

`verify_chain` says everything it finds, each once: every protective trigger that
was removed, the first event of any chain whose stored bytes no longer match, and a
tail that is shorter than the chain head kept outside the file says (its head record,
and HQ's acknowledgement: `daemon.ledger.head`). `verify_projection` replays the
whole log into a fresh in-memory projection and names the first unit whose current
state differs. `integrity_problems` is SQLite's own check of the file beneath them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import zip_longest

from sqlite_utils import Database

from daemon.ledger.events import EventBody, body_hash, genesis_hash
from daemon.ledger.projection import UNIT_FIELDS, Projection
from daemon.ledger.remote import replication_cursor
from daemon.ledger.schema import MIGRATIONS
from daemon.ledger.store import LedgerStore

REQUIRED_TRIGGERS = (
    "events_no_update",
    "events_no_delete",
    "products_tracking_stays_on",
    "lane_log_no_update",
    "lane_log_no_delete",
)


@dataclass(frozen=True)
class Finding:
    """The first thing found wrong; `event` names the event (uuid) when there is one."""

    message: str
    event: str | None = None
    seq: int | None = None
    terminal: str | None = None


@dataclass(frozen=True)
class ChainReport:
    """What `verify_chain` found: `findings` lists each problem (none: intact)."""

    events: int
    streams: int
    findings: tuple[Finding, ...] = ()

    @property
    def finding(self) -> Finding | None:
        """The first problem found, or None."""
        return self.findings[0] if self.findings else None

    @property
    def ok(self) -> bool:
        return not self.findings


def integrity_problems(conn: sqlite3.Connection, limit: int = 5) -> list[str]:
    """SQLite's own check of a ledger file (pages, indexes, constraints): the first
    `limit` problems it finds, [] when the file is sound."""
    problems = [str(row[0]) for row in conn.execute(f"PRAGMA integrity_check({int(limit)})")]
    return [] if problems == ["ok"] else problems


def last_own_event_at(store: LedgerStore) -> datetime | None:
    """When this ledger's own newest event was written; None when it has none yet, or
    the event does not say (`verify_chain` reports such an event)."""
    row = store.db.execute(
        "SELECT body FROM events WHERE terminal = ? AND epoch = ? ORDER BY seq DESC LIMIT 1",
        [store.terminal, store.epoch],
    ).fetchone()
    if row is None:
        return None
    try:
        return EventBody.parse(row[0]).at_datetime
    except (ValueError, KeyError, TypeError):
        return None


def verify_chain(store: LedgerStore) -> ChainReport:
    """Check the protective triggers, each (terminal, epoch) chain up to its first bad
    event, and this ledger's own tail against the head kept outside the file.

    This ledger's own stream (its terminal and epoch) must be complete. Other
    terminals' streams may have gaps, because a terminal is sent only some of their
    events: each of their events must still match its hash, and follow the event
    before it wherever the two are consecutive.
    """
    present = {
        row["name"] for row in store.db.query("SELECT name FROM sqlite_master WHERE type='trigger'")
    }
    findings = [
        Finding(f"protective trigger {name} was removed")
        for name in REQUIRED_TRIGGERS
        if name not in present
    ]
    # The head first: read before the chain, which can only grow meanwhile.
    tail = tail_finding(store)
    count, streams, broken = _walk_chains(store)
    findings += [f for f in (broken, tail) if f is not None]
    return ChainReport(count, streams, tuple(findings))


def tail_finding(store: LedgerStore) -> Finding | None:
    """Whether this ledger's own chain ends where its anchors outside the file say:
    the head record, and HQ's acknowledgement (kept in the file's replication cursor
    and in the head record with the hash of the acknowledged event)."""
    problem = store.head_problem()
    if problem is not None:
        return Finding(problem, terminal=store.terminal)
    last = store.chain_head().seq
    acked = replication_cursor(store)
    if acked > last:
        return Finding(
            f"the ledger ends at seq {last} but HQ acknowledged storing seq {acked}:"
            f" {acked - last} newest event(s) deleted or lost",
            terminal=store.terminal,
            seq=last + 1,
        )
    return None


def _walk_chains(store: LedgerStore) -> tuple[int, int, Finding | None]:
    """(events, chains, the first bad event) of every chain in the log."""
    db = store.db
    count = 0
    streams: set[tuple[str, str]] = set()
    stream: tuple[str, str] | None = None
    expected_prev = ""
    expected_seq = 0
    for row in db.conn.execute(
        "SELECT uuid, terminal, epoch, seq, kind, body, hash FROM events"
        " ORDER BY terminal, epoch, seq"
    ):
        event_uuid, terminal, epoch, seq, kind, body, digest = row
        count += 1
        if (terminal, epoch) != stream:
            stream = (terminal, epoch)
            streams.add(stream)
            expected_prev = genesis_hash(terminal, epoch)
            expected_seq = 1
        where = {"event": event_uuid, "seq": seq, "terminal": terminal}
        label = f"terminal {terminal} seq {seq}"
        problem = None
        own = stream == (store.terminal, store.epoch)
        linked = seq == expected_seq
        if not linked and own:
            problem = f"terminal {terminal}: event seq {expected_seq} is missing (found {seq} next)"
        elif body_hash(body) != digest:
            problem = f"{label}: stored event does not match its hash (edited after it was written)"
        else:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {}
            indexed = (event_uuid, terminal, epoch, seq, kind)
            if linked and parsed.get("prev") != expected_prev:
                problem = f"{label}: does not follow the event before it"
            elif (
                tuple(parsed.get(k) for k in ("uuid", "terminal", "epoch", "seq", "kind"))
                != indexed
            ):
                problem = f"{label}: index columns disagree with the event body"
        if problem:
            return count, len(streams), Finding(problem, **where)
        expected_prev = digest
        expected_seq = seq + 1
    return count, len(streams), None


def replay(store: LedgerStore) -> Database:
    """A fresh in-memory projection built from nothing but the event log."""
    fresh = Database(memory=True)
    MIGRATIONS.apply(fresh)
    projection = Projection(fresh, store.prefix_length)
    with fresh.atomic():
        for (body,) in store.db.conn.execute("SELECT body FROM events ORDER BY id"):
            projection.apply(EventBody.parse(body))
        projection.flush_counts()
    return fresh


_COMPARED = (
    "p.code",
    "u.serial_key",
    "u.serial",
    *(f"u.{name}" for name in UNIT_FIELDS),
    "u.last_event",
)


def _units(db: Database) -> Iterator[tuple[object, ...]]:
    yield from db.conn.execute(
        f"SELECT {', '.join(_COMPARED)} FROM units u JOIN products p ON p.id = u.product_id"
        " ORDER BY u.serial_key, p.code"
    )


def _counts(db: Database) -> list[tuple[object, ...]]:
    return list(
        db.conn.execute(
            "SELECT p.code, c.branch, c.state, c.prefix, c.n FROM unit_counts c"
            " JOIN products p ON p.id = c.product_id WHERE c.n != 0 ORDER BY 1, 2, 3, 4"
        )
    )


def _activity(db: Database) -> list[tuple[object, ...]]:
    return list(
        db.conn.execute(
            "SELECT p.code, a.* FROM activity a JOIN products p ON p.id = a.product_id"
            " ORDER BY 1, a.supplier, a.branch, a.day"
        )
    )


def verify_projection(store: LedgerStore) -> Finding | None:
    """Compare the stored projection with a replay of the log; None when they agree."""
    fresh = replay(store)
    names = [c.split(".")[1] for c in _COMPARED]
    for stored, replayed in zip_longest(_units(store.db), _units(fresh)):
        if stored is None or replayed is None:
            row = stored or replayed
            assert row is not None
            side = "projection" if stored else "log"
            return Finding(f"unit {row[0]} {row[2]!r} is only in the {side}")
        if stored != replayed:
            field = next(n for n, a, b in zip(names, stored, replayed, strict=True) if a != b)
            return Finding(
                f"unit {stored[0]} {stored[2]!r}: {field} is {stored[names.index(field)]!r}"
                f" but the log says {replayed[names.index(field)]!r}"
            )
    if _counts(store.db) != _counts(fresh):
        return Finding("the kept unit counts disagree with a recount from the log")
    if _activity(store.db) != _activity(fresh):
        return Finding("the kept activity figures disagree with a recount from the log")
    return None
