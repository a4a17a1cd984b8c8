"""The central ledger: what HQ does, as functions the CLI and the HQ process call.

    central = Central(open_backend(db="hq.db", pg=None))
    central.resolve("LAP", "SN-1", keep="<event uuid>", note="sold at T1 first")
    central.flag("LAP", "SN-2", Flag.STOLEN, reason="police report 4711")
    central.status()

Every change is an event in HQ's own chain, routed to the branches concerned,
so it reaches their terminals like any other event.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlite_utils import Database

from daemon.errors import HqError
from daemon.hq import feed, ingest
from daemon.hq.backend import Backend
from daemon.hq.ingest import Stop, Stream
from daemon.hq.session import Caches, IngestReport, Session, transact
from daemon.ledger.events import Change, EventBody, body_hash, genesis_hash
from daemon.ledger.kinds import Kind
from daemon.ledger.projection import UNIT_FIELDS, Projection
from daemon.ledger.remote import flag_change, unit_head
from daemon.ledger.schema import MIGRATIONS
from daemon.replication.protocol import Ack, EventBatch, Feed, Presence, Resend
from daemon.rules.serials import serial_key
from daemon.rules.units import Flag

log = logging.getLogger(__name__)
T = TypeVar("T")


def _merge(into: IngestReport, report: IngestReport) -> None:
    into.stored += report.stored
    into.duplicates += report.duplicates
    into.parked += report.parked
    into.advanced.update(report.advanced)
    into.conflicts += report.conflicts
    into.problems += report.problems
    into.branches |= report.branches
    into.deferred = into.deferred or report.deferred


class HqRefusal(HqError, ValueError):
    """An HQ command that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Verification:
    events: int
    finding: str | None

    @property
    def ok(self) -> bool:
        return self.finding is None


class Central:
    """HQ's ledger on a backend (SQLite or PostgreSQL)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.caches = Caches()
        # Streams held at an event the database refused: stored no further without
        # trying it again (which costs a failed transaction) until HQ restarts.
        self._holds: dict[Stream, Stop] = {}

    def close(self) -> None:
        self.backend.close()

    # -- what the HQ process does -----------------------------------------------

    def ingest(self, batches: Sequence[EventBatch], now: float | None = None) -> IngestReport:
        """Store terminals' events. An event the database refuses (one the protocol
        check let through) holds its own stream only: see `_ingest_stream`."""
        when = time.time() if now is None else now
        try:
            return self._transact(lambda s: ingest.ingest(s, batches, when, self._holds))[1]
        except Exception as exc:
            if self.backend.transient(exc):
                raise
            log.warning(
                "HQ: a batch was refused by the database (%s); storing stream by stream", exc
            )
        report = IngestReport()
        for stream, part in sorted(ingest.streams_of(batches).items()):
            _merge(report, self._ingest_stream(stream, part, when))
        return report

    def drain(self, now: float | None = None) -> IngestReport:
        """Store parked events that follow their watermark (left by another process)."""
        when = time.time() if now is None else now
        try:
            return self._transact(lambda s: ingest.drain(s, when, self._holds))[1]
        except Exception as exc:
            if self.backend.transient(exc):
                raise
        report = IngestReport()
        for stream in self._transact(ingest.waiting_streams)[0]:
            _merge(report, self._ingest_stream(stream, [], when))
        return report

    def forget_stored(self) -> None:
        """Housekeeping: drop parked copies of events stored meanwhile."""
        self._transact(ingest.forget_stored)

    def _ingest_stream(
        self, stream: Stream, batches: Sequence[EventBatch], now: float
    ) -> IngestReport:
        """Store one stream's events; if the database refuses one, find it, store the
        events before it and hold the stream there with a problem naming it."""

        def store(stops: dict[Stream, Stop], rehearse: bool = False) -> IngestReport:
            def work(session: Session) -> None:
                if batches:
                    ingest.ingest(session, batches, now, stops)
                else:
                    ingest.drain(session, now, stops)

            return self._transact(work, rehearse=rehearse)[1]

        held = self._holds.get(stream)
        try:
            return store({stream: held} if held else {})
        except Exception as exc:
            if self.backend.transient(exc):
                raise
            refusal = exc
        acked, top = self._transact(lambda s: ingest.watermark(s, *stream))[0]
        top = max([top, *(b.last for b in batches)])
        # Storing below `low` works, below `high` does not: halve the difference.
        low, high = acked + 1, top + 1
        while low + 1 < high:
            middle = (low + high) // 2
            try:
                store({stream: Stop(middle)}, rehearse=True)
                low = middle
            except Exception as exc:
                if self.backend.transient(exc):
                    raise
                high, refusal = middle, exc
        terminal, epoch = stream
        reason = (
            f"HQ could not store terminal {terminal} epoch {epoch} seq {low}: the database"
            f" refused it ({type(refusal).__name__}: {str(refusal).strip()[:300]}); the"
            " terminal's events wait there"
        )
        log.warning("HQ: %s", reason)
        self._holds[stream] = Stop(low, reason)
        try:
            return store({stream: Stop(low, reason)})
        except Exception as exc:
            if self.backend.transient(exc):
                raise
            # Not an event of the stream at all: refuse the messages, name the sender.
            del self._holds[stream]
            message = (
                f"HQ could not take terminal {terminal}'s events ({type(exc).__name__}: {exc})"
            )
            return self._problem(message, terminal, epoch, low)

    def presence(self, statuses: Sequence[Presence]) -> IngestReport:
        try:
            return self._transact(lambda s: [ingest.presence(s, p) for p in statuses])[1]
        except Exception as exc:
            if self.backend.transient(exc):
                raise
        report = IngestReport()
        for status in statuses:

            def one(session: Session, status: Presence = status) -> bool:
                return ingest.presence(session, status)

            try:
                _merge(report, self._transact(one)[1])
            except Exception as exc:
                if self.backend.transient(exc):
                    raise
                message = f"HQ could not record terminal {status.terminal}'s status: {exc}"
                _merge(report, self._problem(message, status.terminal, status.epoch))
        return report

    def note_problem(self, message: str, terminal: str | None = None) -> None:
        """Record a problem with a message, naming the terminal that sent it."""
        self._problem(message, terminal)

    def note_problems(self, seen: Mapping[tuple[str, str | None], int]) -> None:
        """Record problems (message, sending terminal) seen so many times, at once."""

        def work(session: Session) -> None:
            for (message, terminal), times in seen.items():
                ingest.problem(session, message, None, terminal, times=times)

        self._transact(work)

    def _problem(
        self, message: str, terminal: str | None, epoch: str | None = None, seq: int | None = None
    ) -> IngestReport:
        return self._transact(lambda s: ingest.problem(s, message, None, terminal, epoch, seq))[1]

    def dismiss(
        self, ids: Sequence[int] = (), *, terminal: str | None = None, actor: str = "hq"
    ) -> int:
        """Mark problems as dealt with: these ids, or every open one of `terminal`."""
        if not ids and terminal is None:
            raise HqRefusal("name the problems to dismiss (their ids) or a terminal")
        return self._transact(lambda s: ingest.dismiss(s, ids, terminal, actor), actor=actor)[0]

    def problems(self, limit: int = 100, *, open_only: bool = True) -> list[dict[str, Any]]:
        return self._transact(lambda s: ingest.problems(s, limit, open_only=open_only))[0]

    def _transact(
        self, work: Callable[[Session], T], *, actor: str = "hq", rehearse: bool = False
    ) -> tuple[T, IngestReport]:
        return transact(self.backend, self.caches, work, actor=actor, rehearse=rehearse)

    def claim_feed(self, limit: int = 5000, chunk: int = 200) -> list[Feed]:
        return transact(self.backend, self.caches, lambda s: feed.claim_feed(s, limit, chunk))[0]

    def answer_pull(
        self, terminal: str, after: int, limit: int = 5000, chunk: int = 200
    ) -> list[Feed]:
        return transact(
            self.backend, self.caches, lambda s: feed.answer_pull(s, terminal, after, limit, chunk)
        )[0]

    def claim_resends(self, after_s: float, now: float | None = None) -> list[Resend]:
        when = time.time() if now is None else now
        return transact(self.backend, self.caches, lambda s: feed.claim_resends(s, when, after_s))[
            0
        ]

    def acks(
        self, streams: Sequence[tuple[str, str]] = (), since: float | None = None
    ) -> list[Ack]:
        return transact(self.backend, self.caches, lambda s: feed.current_acks(s, streams, since))[
            0
        ]

    # -- what an operator does --------------------------------------------------

    def resolve(
        self, product: str, serial: str, *, note: str, keep: str | None = None, actor: str = "hq"
    ) -> dict[str, Any]:
        """Settle a unit's conflict: HQ states the unit's fields (those of event `keep`
        where it names one of the conflicting events) without the conflict flag."""
        return transact(
            self.backend,
            self.caches,
            lambda s: self._resolve(s, product, serial, note, keep),
            actor=actor,
        )[0]

    def _resolve(
        self, session: Session, product: str, serial: str, note: str, keep: str | None
    ) -> dict[str, Any]:
        tx = session.tx
        head = unit_head(tx, product, serial_key(serial), self.backend.lock_unit)
        if head is None:
            raise HqRefusal(f'HQ has no unit {product} serial "{serial}"; check product and serial')
        rows = tx.execute(
            "SELECT id, events FROM hq_conflicts WHERE unit_id = ? AND resolved_at IS NULL"
            " ORDER BY id",
            [head.id],
        ).fetchall()
        if not rows and "conflict" not in head.flags:
            raise HqRefusal(f'{product} serial "{serial}" has no open conflict; nothing to resolve')
        involved = list(dict.fromkeys(e for _, events in rows for e in json.loads(events)))
        names = ", ".join(UNIT_FIELDS)
        current = dict(
            zip(
                UNIT_FIELDS,
                tx.execute(f"SELECT {names} FROM units WHERE id = ?", [head.id]).fetchone(),
                strict=True,
            )
        )
        current["flags"] = list(head.flags)
        state = {**current, "flags": [f for f in head.flags if f != "conflict"]}
        if keep is not None:
            if keep not in involved:
                raise HqRefusal(
                    f"event {keep} is not one of the conflicting events; keep one of:"
                    f" {', '.join(involved) or '(none recorded)'}"
                )
            (text,) = tx.execute("SELECT body FROM events WHERE uuid = ?", [keep]).fetchone()
            kept = EventBody.parse(text).after
            state.update({k: v for k, v in kept.items() if k in UNIT_FIELDS and k != "flags"})
        ids = [int(row[0]) for row in rows]
        sealed = session.record(
            Change(
                Kind.RESOLVE,
                {
                    "flag": "conflict",
                    "conflicts": ids,
                    "events": involved,
                    "kept": keep,
                    "note": note,
                },
                product=product,
                serial=head.serial,
                doc=("conflict", f"CONFLICT-{ids[0] if ids else head.id}"),
                set=state,
                was=current,
                unit_prev=head.last_event,
            )
        )
        tx.execute(
            "UPDATE hq_conflicts SET resolved_at = ?, resolution = ?, note = ?"
            " WHERE unit_id = ? AND resolved_at IS NULL",
            [session.stamp.at, sealed.uuid, note, head.id],
        )
        return {
            "message": f'{product} serial "{head.serial}": conflict resolved',
            "event": sealed.uuid,
            "conflicts": ids,
            "state": state,
        }

    def flag(
        self,
        product: str,
        serial: str,
        flag: Flag,
        *,
        reason: str,
        on: bool = True,
        actor: str = "hq",
    ) -> dict[str, Any]:
        """Put a flag (stolen, recalled, on hold) on a unit, or take it off, everywhere."""
        if flag is Flag.CONFLICT:
            raise HqRefusal("conflicts come from forks; clear one with `posd hq resolve`")
        return transact(
            self.backend,
            self.caches,
            lambda s: self._flag(s, product, serial, flag, reason, on),
            actor=actor,
        )[0]

    def _flag(
        self, session: Session, product: str, serial: str, flag: Flag, reason: str, on: bool
    ) -> dict[str, Any]:
        head = unit_head(session.tx, product, serial_key(serial), self.backend.lock_unit)
        if head is None:
            raise HqRefusal(f'HQ has no unit {product} serial "{serial}"; check product and serial')
        after = sorted(set(head.flags) | {flag.value} if on else set(head.flags) - {flag.value})
        verb = "flagged" if on else "cleared"
        if after == sorted(head.flags):
            return {
                "message": f'{product} serial "{head.serial}" already {verb} {flag}',
                "event": None,
            }
        change = flag_change(
            product,
            head.serial,
            head.last_event,
            head.flags,
            after,
            {"flag": flag.value, "reason": reason},
        )
        sealed = session.record(change)
        return {"message": f'{product} serial "{head.serial}" {verb} {flag}', "event": sealed.uuid}

    def move_terminal(self, terminal: str, branch: str) -> dict[str, Any]:
        """Register a terminal at another branch (its feed follows from now on)."""

        def work(session: Session) -> dict[str, Any]:
            row = session.tx.execute(
                "SELECT branch FROM hq_terminals WHERE terminal = ?", [terminal]
            ).fetchone()
            if row is None:
                raise HqRefusal(f"HQ has never heard of terminal {terminal!r}")
            session.ensure_branch(branch)
            session.tx.execute(
                "UPDATE hq_terminals SET branch = ? WHERE terminal = ?", [branch, terminal]
            )
            return {"message": f"terminal {terminal} moved from branch {row[0]} to {branch}"}

        return transact(self.backend, self.caches, work)[0]

    # -- what an operator reads ---------------------------------------------------

    def status(self) -> dict[str, Any]:
        return transact(self.backend, self.caches, self._status)[0]

    def _status(self, session: Session) -> dict[str, Any]:
        tx = session.tx
        me = session.identity

        def table(
            sql: str, keys: tuple[str, ...], params: Sequence[Any] = ()
        ) -> list[dict[str, Any]]:
            return [dict(zip(keys, row, strict=True)) for row in tx.execute(sql, params).fetchall()]

        streams = table(
            "SELECT s.terminal, s.epoch, s.acked, s.gap_since, s.held_seq,"
            " (SELECT count(*) FROM hq_parked p WHERE p.terminal = s.terminal"
            " AND p.epoch = s.epoch AND p.seq > s.acked) FROM hq_streams s WHERE s.terminal != ?"
            " ORDER BY s.terminal, s.epoch",
            ("terminal", "epoch", "acked", "waiting_since", "held_at", "parked"),
            [me.terminal],
        )
        terminals = table(
            "SELECT terminal, branch, epoch, session, online, seen_at, backlog, waiting_since"
            " FROM hq_terminals ORDER BY terminal",
            (
                "terminal",
                "branch",
                "epoch",
                "session",
                "online",
                "seen_at",
                "backlog",
                "waiting_for_hq_since",
            ),
        )
        problems = ingest.open_problems_by_terminal(session)
        for terminal in terminals:
            name = terminal["terminal"]
            terminal["problems"] = problems.get(name, 0)
            terminal["held"] = [
                {"epoch": s["epoch"], "seq": s["held_at"]}
                for s in streams
                if s["terminal"] == name and s["held_at"] is not None
            ]
            # A terminal is ok when HQ has no open problem of its (an operator dismisses
            # one that was dealt with) and its current chain is not held.
            stuck = any(h["epoch"] == terminal["epoch"] for h in terminal["held"])
            terminal["ok"] = not terminal["problems"] and not stuck
        return {
            "ok": not problems and all(t["ok"] for t in terminals),
            "backend": self.backend.kind,
            "hq": {"terminal": me.terminal, "epoch": me.epoch},
            "events": int(tx.execute("SELECT count(*) FROM events").fetchone()[0]),
            "terminals": terminals,
            "streams": streams,
            "branches": table(
                "SELECT branch, head, published FROM hq_branches ORDER BY branch",
                ("branch", "head", "published"),
            ),
            "conflicts": self._conflicts(session, open_only=True),
            "problems": ingest.problems(session),
        }

    def conflicts(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        return transact(
            self.backend, self.caches, lambda s: self._conflicts(s, open_only=open_only)
        )[0]

    def _conflicts(self, session: Session, *, open_only: bool) -> list[dict[str, Any]]:
        where = " WHERE resolved_at IS NULL" if open_only else ""
        keys = (
            "id",
            "product",
            "serial",
            "events",
            "opened_at",
            "resolved_at",
            "resolution",
            "note",
        )
        found = []
        for row in session.tx.execute(
            f"SELECT {', '.join(keys)} FROM hq_conflicts{where} ORDER BY id"
        ).fetchall():
            item = dict(zip(keys, row, strict=True))
            item["events"] = json.loads(item["events"])
            found.append(item)
        return found

    def verify(self) -> Verification:
        """Every stream complete and chained, and the projection equal to a replay."""
        return transact(self.backend, self.caches, _verify)[0]


def _verify(session: Session) -> Verification:
    tx = session.tx
    count = 0
    stream: tuple[str, str] | None = None
    prev = ""
    expected = 0
    for terminal, epoch, seq, text, digest in tx.execute(
        "SELECT terminal, epoch, seq, body, hash FROM events ORDER BY terminal, epoch, seq"
    ).fetchall():
        count += 1
        if (terminal, epoch) != stream:
            stream, prev, expected = (terminal, epoch), genesis_hash(terminal, epoch), 1
        label = f"terminal {terminal} epoch {epoch} seq {seq}"
        if seq != expected:
            return Verification(count, f"terminal {terminal}: seq {expected} is missing")
        if body_hash(text) != digest:
            return Verification(count, f"{label}: does not match its hash")
        if EventBody.parse(text).prev != prev:
            return Verification(count, f"{label}: does not follow the event before it")
        prev, expected = digest, expected + 1
    fresh = Database(memory=True)
    MIGRATIONS.apply(fresh)
    projection = Projection(fresh, session.backend.prefix_length)
    with fresh.atomic():
        for (text,) in tx.execute("SELECT body FROM events ORDER BY id").fetchall():
            projection.apply(EventBody.parse(text))
        projection.flush_counts()
    columns = ", ".join(["p.code", "u.serial_key", "u.serial", *(f"u.{n}" for n in UNIT_FIELDS)])
    sql = f"SELECT {columns}, u.last_event FROM units u JOIN products p ON p.id = u.product_id"
    stored = sorted(tuple(r) for r in tx.execute(sql).fetchall())
    replayed = sorted(tuple(r) for r in fresh.execute(sql).fetchall())
    if stored != replayed:
        first = sorted(set(stored) ^ set(replayed))[0]
        return Verification(count, f"unit {first[0]} {first[2]!r} differs from a replay of the log")
    counts = (
        "SELECT p.code, c.branch, c.state, c.prefix, c.n FROM unit_counts c"
        " JOIN products p ON p.id = c.product_id WHERE c.n != 0"
    )
    activity = (
        "SELECT p.code, a.supplier, a.branch, a.day, a.received, a.sold, a.returned,"
        " a.repaired, a.replaced, a.revenue_cents, a.cost_of_sold_cents,"
        " a.warranty_covered_cents FROM activity a JOIN products p ON p.id = a.product_id"
    )
    for what, sql in (("unit counts", counts), ("activity figures", activity)):
        kept = sorted(tuple(r) for r in tx.execute(sql).fetchall())
        if kept != sorted(tuple(r) for r in fresh.execute(sql).fetchall()):
            return Verification(count, f"the kept {what} disagree with a recount from the log")
    return Verification(count, None)
