"""One transaction of HQ work: storing events, HQ's own events, conflicts, the feed.

`Session` is made by `Central.transact` for each transaction. Foreign events go
through the ledger's `apply_foreign` (the same code a terminal runs); HQ's own
events (conflict flags, resolutions, stolen/recalled flags) are sealed in HQ's own
chain. At the end every stored event is routed, in log order, into the feed of
each branch that should hear of it:

- the branch it happened at, and the branches it moves the unit from or to
  (so a transfer reaches its destination: an inbound transfer);
- for HQ's own events about a unit, every branch that has had the unit;
- product definitions, every branch.

A branch that has not heard of a unit before first gets the unit's history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from daemon.hq.backend import RETRIES, Backend, Tx
from daemon.ledger.events import ChainHead, Change, EventBody, Sealed, Stamp, genesis_hash, seal
from daemon.ledger.kinds import Kind
from daemon.ledger.remote import ForeignApplied, ForeignEvent, apply_foreign, flag_change, unit_head
from daemon.ledger.store import iso, utc_now
from daemon.rules.serials import serial_key
from daemon.rules.units import Flag

T = TypeVar("T")


@dataclass
class IngestReport:
    """What a transaction did, for acks, the feed and the operator."""

    stored: int = 0
    duplicates: int = 0
    parked: int = 0
    advanced: dict[tuple[str, str], int] = field(default_factory=dict)  # stream → watermark
    conflicts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    branches: set[str] = field(default_factory=set)  # feeds that grew
    deferred: bool = False  # events were left parked for another process


@dataclass
class Caches:
    """What HQ knows for good (branches exist, a branch has a unit): never undone."""

    branches: set[str] = field(default_factory=set)
    holders: set[tuple[str, int]] = field(default_factory=set)


class Session:
    def __init__(self, backend: Backend, tx: Tx, caches: Caches, actor: str) -> None:
        self.backend = backend
        self.tx = tx
        self.caches = caches
        self.identity = backend.identity
        self.projection = backend.projection(tx)
        self.stamp = Stamp(at=iso(utc_now()), actor=actor, branch=self.identity.branch)
        self.report = IngestReport()
        self._head: ChainHead | None = None
        self._stored: list[tuple[int, EventBody, int | None]] = []
        self._new_branches: set[str] = set()
        self._new_holders: set[tuple[str, int]] = set()
        self._pending: dict[str, list[tuple[int, int | None]]] = {}
        self._routed: set[tuple[str, int]] = set()
        self._new_units: set[int] = set()  # no branch can have heard of these yet

    # -- events ---------------------------------------------------------------

    def record(self, change: Change) -> Sealed:
        """Write one of HQ's own events."""
        head = self._own_head()
        sealed = seal(change, self.stamp, head)
        unit_id, doc_id = self.projection.apply(sealed.body)
        cursor = self.tx.execute(
            "INSERT INTO events (uuid, terminal, epoch, seq, kind, unit_id, doc_id, body, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                *(sealed.uuid, head.terminal, head.epoch, sealed.seq, sealed.kind),
                *(unit_id, doc_id, sealed.text, sealed.hash),
            ],
        )
        self._stored.append((int(cursor.lastrowid), sealed.body, unit_id))
        return sealed

    def apply(self, event: ForeignEvent, *, known_new: bool = False) -> ForeignApplied:
        """Store a terminal's event (once) and apply it; open a conflict on a fork.

        Raises LookupError, before anything is written, for an event about a product
        HQ does not know, or one that brings a unit HQ does not know without saying
        its state and branch."""
        self._check_known(event.body)
        applied = apply_foreign(
            self.tx,
            self.projection,
            self.record,
            event,
            lock=self.backend.lock_unit,
            known_new=known_new,
        )
        if applied.new_unit and applied.unit_id is not None:
            self._new_units.add(applied.unit_id)
        if not applied.stored:
            self.report.duplicates += 1
            return applied
        self.report.stored += 1
        self._stored.append((applied.event_id or 0, event.body, applied.unit_id))
        body = event.body
        if applied.unit_id is None:
            return applied
        if applied.fork_with is not None:
            self.open_conflict(applied.unit_id, body, [applied.fork_with, event.uuid])
        elif body.kind == Kind.FLAG and body.data.get("flag") == Flag.CONFLICT:
            self._terminal_saw_conflict(applied.unit_id, body)
        return applied

    def _check_known(self, body: EventBody) -> None:
        unit = body.unit
        if unit is None:
            return
        label = f"terminal {body.terminal} seq {body.seq} ({body.kind})"
        if self.projection.product_id(unit[0]) is None:
            raise LookupError(f"{label} names product {unit[0]!r}, which HQ has not been sent")
        after = body.after
        if "state" in after and "branch" in after:
            return
        if unit_head(self.tx, unit[0], serial_key(unit[1]), self.backend.lock_unit) is None:
            raise LookupError(
                f"{label} names {unit[0]} serial {unit[1]!r}, which HQ has no record of, and"
                " does not say its state and branch"
            )

    def _own_head(self) -> ChainHead:
        if self._head is None:
            me = self.identity
            self.tx.execute(
                "INSERT INTO hq_streams (terminal, epoch, acked, head_hash, updated_at)"
                " VALUES (?, ?, 0, ?, 0) ON CONFLICT DO NOTHING",
                [me.terminal, me.epoch, genesis_hash(me.terminal, me.epoch)],
            )
            seq, digest = self.tx.execute(
                "SELECT acked, head_hash FROM hq_streams WHERE terminal = ? AND epoch = ?"
                + self.backend.lock,
                [me.terminal, me.epoch],
            ).fetchone()
            self._head = ChainHead(me.terminal, me.epoch, int(seq), digest, self.backend.ids)
        return self._head

    # -- conflicts --------------------------------------------------------------

    def open_conflict(self, unit_id: int, body: EventBody, events: list[str]) -> None:
        """Open a conflict for the unit, or add events to the one already open."""
        row = self.tx.execute(
            "SELECT id, events FROM hq_conflicts WHERE unit_id = ? AND resolved_at IS NULL"
            + self.backend.lock,
            [unit_id],
        ).fetchone()
        if row is None:
            self.tx.execute(
                "INSERT INTO hq_conflicts (unit_id, product, serial, events, opened_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [unit_id, body.product, body.serial, json.dumps(events), self.stamp.at],
            )
        else:
            merged = list(dict.fromkeys([*json.loads(row[1]), *events]))
            self.tx.execute(
                "UPDATE hq_conflicts SET events = ? WHERE id = ?", [json.dumps(merged), row[0]]
            )
        self.report.conflicts.append(f"{body.product} {body.serial}")

    def _terminal_saw_conflict(self, unit_id: int, body: EventBody) -> None:
        """A terminal flagged a fork. If HQ already resolved that fork, clear the flag
        again; otherwise make sure HQ has the conflict open too."""
        fork = [str(e) for e in body.data.get("fork") or [body.uuid]]
        unit = body.unit
        assert unit is not None  # a flag event is about a unit
        product, serial = unit
        open_row = self.tx.execute(
            "SELECT id FROM hq_conflicts WHERE unit_id = ? AND resolved_at IS NULL", [unit_id]
        ).fetchone()
        if open_row is not None:
            self.open_conflict(unit_id, body, fork)
            return
        for events, resolution in self.tx.execute(
            "SELECT events, resolution FROM hq_conflicts WHERE unit_id = ?"
            " AND resolved_at IS NOT NULL ORDER BY id DESC",
            [unit_id],
        ).fetchall():
            if set(fork) <= set(json.loads(events)):
                head = unit_head(self.tx, product, serial_key(serial))
                if head is not None and "conflict" in head.flags:
                    after = [f for f in head.flags if f != "conflict"]
                    reason = f"fork already resolved by {resolution}"
                    data = {"flag": "conflict", "reason": reason, "resolved_by": resolution}
                    self.record(
                        flag_change(product, head.serial, head.last_event, head.flags, after, data)
                    )
                return
        self.open_conflict(unit_id, body, fork)

    # -- the feed ---------------------------------------------------------------

    def ensure_branch(self, branch: str, before_event: int | None = None) -> None:
        """Make sure the branch has a feed; a new one starts with every product
        definition so far (before `before_event`, when given)."""
        if branch in self.caches.branches or branch in self._new_branches:
            return
        created = self.tx.execute(
            "INSERT INTO hq_branches (branch, head, published) VALUES (?, 0, 0)"
            " ON CONFLICT DO NOTHING RETURNING branch",
            [branch],
        ).fetchone()
        self._new_branches.add(branch)
        if created is not None:
            for (earlier,) in self.tx.execute(
                "SELECT id FROM events WHERE kind = ? AND id < ? ORDER BY id",
                [Kind.PRODUCT, before_event if before_event is not None else 2**62],
            ).fetchall():
                self._add_route(branch, int(earlier), None)

    def _add_route(self, branch: str, event_id: int, unit_id: int | None) -> None:
        if (branch, event_id) not in self._routed:
            self._routed.add((branch, event_id))
            self._pending.setdefault(branch, []).append((event_id, unit_id))
            if unit_id is not None:
                self._new_holders.add((branch, unit_id))

    def finish(self) -> None:
        """Flush counts, close HQ's chain and route every stored event; before commit."""
        self.projection.flush_counts()
        if self._head is not None:
            self.tx.execute(
                "UPDATE hq_streams SET acked = ?, head_hash = ?, updated_at = 0"
                " WHERE terminal = ? AND epoch = ?",
                [self._head.seq, self._head.hash, self._head.terminal, self._head.epoch],
            )
        stored = sorted(self._stored, key=lambda item: item[0])
        self._load_holders({u for _, _, u in stored if u is not None} - self._new_units)
        # A unit first heard of in this transaction has no history before it.
        this_time: dict[int, list[int]] = {}
        for event_id, body, unit_id in stored:
            for branch in sorted(self._targets(body, unit_id)):
                self.ensure_branch(branch, before_event=event_id)
                if unit_id is not None and not self._holds(branch, unit_id):
                    if unit_id in self._new_units:
                        earlier = this_time.get(unit_id, [])
                    else:
                        earlier = [
                            int(e)
                            for (e,) in self.tx.execute(
                                "SELECT id FROM events WHERE unit_id = ? AND id < ? ORDER BY id",
                                [unit_id, event_id],
                            ).fetchall()
                        ]
                    for earlier_id in earlier:
                        self._add_route(branch, earlier_id, unit_id)
                self._add_route(branch, event_id, unit_id)
            if unit_id is not None:
                this_time.setdefault(unit_id, []).append(event_id)
        for branch in sorted(self._pending):
            rows = self._pending[branch]
            (head,) = self.tx.execute(
                "UPDATE hq_branches SET head = head + ? WHERE branch = ? RETURNING head",
                [len(rows), branch],
            ).fetchone()
            first = int(head) - len(rows) + 1
            self.tx.executemany(
                "INSERT INTO hq_routes (branch, pos, event_id, unit_id) VALUES (?, ?, ?, ?)",
                [(branch, first + i, event_id, unit) for i, (event_id, unit) in enumerate(rows)],
            )
            self.report.branches.add(branch)

    def _targets(self, body: EventBody, unit_id: int | None) -> set[str]:
        if body.kind == Kind.PRODUCT:
            found = {b for (b,) in self.tx.execute("SELECT branch FROM hq_branches").fetchall()}
            found |= self._new_branches
        else:
            found = {body.branch}
            for fields in (body.after, body.before):
                for name in ("branch", "dest_branch"):
                    value = fields.get(name)
                    if value:
                        found.add(value)
            if body.terminal == self.identity.terminal and unit_id is not None:
                found |= {
                    b
                    for (b,) in self.tx.execute(
                        "SELECT DISTINCT branch FROM hq_routes WHERE unit_id = ?", [unit_id]
                    ).fetchall()
                }
                found |= {b for b, u in self._new_holders if u == unit_id}
        found.discard(self.identity.branch)
        return found

    def _load_holders(self, unit_ids: set[int]) -> None:
        """Which branches have heard of these units: a few queries for the whole batch."""
        wanted = sorted(unit_ids)
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            for unit_id, branch in self.tx.execute(
                "SELECT DISTINCT unit_id, branch FROM hq_routes WHERE unit_id IN"
                f" ({', '.join('?' for _ in part)})",
                part,
            ).fetchall():
                self._new_holders.add((branch, int(unit_id)))

    def _holds(self, branch: str, unit_id: int) -> bool:
        key = (branch, unit_id)
        return key in self.caches.holders or key in self._new_holders

    def remember(self) -> None:
        """After commit: keep what this transaction learnt for good."""
        self.caches.branches |= self._new_branches
        self.caches.holders |= self._new_holders
        if len(self.caches.holders) > 2_000_000:
            self.caches.holders.clear()


class _Rehearsed(Exception):
    """Ends a rehearsal: everything worked, and is rolled back."""


def transact(
    backend: Backend,
    caches: Caches,
    work: Callable[[Session], T],
    *,
    actor: str = "hq",
    rehearse: bool = False,
) -> tuple[T, IngestReport]:
    """Run `work` in one transaction with a fresh Session; returns its result and report.

    `rehearse`: do everything a commit would (every write reaches the database, so
    any value it refuses raises), then roll back."""
    sessions: list[Session] = []
    results: list[T] = []

    def attempt(tx: Tx) -> T:
        session = Session(backend, tx, caches, actor)
        sessions[:] = [session]
        result = work(session)
        session.finish()
        if rehearse:
            backend.flush(tx)
            results[:] = [result]
            raise _Rehearsed
        return result

    try:
        result = backend.run(attempt, retries=2 if rehearse else RETRIES)
    except _Rehearsed:
        return results[0], sessions[0].report
    sessions[0].remember()
    return result, sessions[0].report
