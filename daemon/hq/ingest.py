"""Terminals' events into the central ledger: once each, in order, chained.

For each terminal epoch HQ keeps a watermark `acked`: every event up to it is
stored and follows the one before it. A batch is taken under a lock on that
stream's row, so when several HQ processes share a shared subscription, and the
broker hands one terminal's consecutive messages to different processes, they
take turns: events right after the watermark are stored, events after a gap are
parked in the database (where any process finds them once the gap is filled),
and events at or below the watermark are duplicates, checked against what is
stored and dropped.

An event that protocol v1 does not allow (`daemon.replication.bodies`), that does not
follow its chain, reuses another event's id, or that the database refuses, is a
problem naming its terminal, epoch and seq, and that stream is *held* there
(`hq_streams.held_seq`): nothing after it can be stored, because each event chains
from the one before, and HQ does not ask for it again. Every other stream goes on.
The terminal keeps the event in its outbox and sends it again when its watermark
stalls, so once HQ can take it (a newer HQ, say) the stream moves on by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from daemon.hq.session import Session
from daemon.ledger.events import genesis_hash
from daemon.ledger.remote import ForeignEvent, RemoteEventError
from daemon.replication.bodies import check_event
from daemon.replication.protocol import EventBatch, Presence, WireEvent

Stream: TypeAlias = tuple[str, str]  # terminal, epoch


@dataclass(frozen=True)
class Stop:
    """Store a stream's events only below `seq`; `reason`: hold the stream at `seq`
    with this problem (HQ's database refused the event), None: just stop there."""

    seq: int
    reason: str | None = None


def streams_of(batches: Iterable[EventBatch]) -> dict[Stream, list[EventBatch]]:
    found: dict[Stream, list[EventBatch]] = {}
    for batch in batches:
        found.setdefault((batch.terminal, batch.epoch), []).append(batch)
    return found


def ingest(
    session: Session,
    batches: Sequence[EventBatch],
    now: float,
    stops: Mapping[Stream, Stop] | None = None,
) -> None:
    """Store what can be stored of `batches`; `now` is wall-clock seconds.

    `stops` limits how far a stream is stored in this transaction (see `Central`,
    which looks for an event the database refuses that way)."""
    streams: dict[Stream, dict[int, WireEvent]] = {}
    branches: dict[str, str] = {}
    for batch in batches:
        if batch.terminal == session.identity.terminal:
            problem(session, f"a terminal used HQ's own id {batch.terminal!r}; refused", batch)
            continue
        bucket = streams.setdefault((batch.terminal, batch.epoch), {})
        for offset, event in enumerate(batch.events):
            bucket.setdefault(batch.first + offset, event)
        branches[batch.terminal] = batch.branch
    # Streams in one order in every process: two processes never wait on each other
    # in a circle.
    for terminal, epoch in sorted(streams):
        register(session, terminal, branches[terminal], epoch)
        stop = (stops or {}).get((terminal, epoch))
        _stream(session, terminal, epoch, streams[(terminal, epoch)], now, stop)


def _stream(
    session: Session,
    terminal: str,
    epoch: str,
    events: dict[int, WireEvent],
    now: float,
    stop: Stop | None = None,
) -> None:
    tx = session.tx
    tx.execute(
        "INSERT INTO hq_streams (terminal, epoch, acked, head_hash, updated_at)"
        " VALUES (?, ?, 0, ?, ?) ON CONFLICT DO NOTHING",
        [terminal, epoch, genesis_hash(terminal, epoch), now],
    )
    row = tx.execute(
        "SELECT acked, head_hash, gap_since, held_seq FROM hq_streams"
        " WHERE terminal = ? AND epoch = ?" + session.backend.skip_locked,
        [terminal, epoch],
    ).fetchone()
    if row is None:
        # Another HQ process is storing this terminal's events right now: leave
        # these parked for it (or for `drain`) instead of waiting for it.
        tx.executemany(
            "INSERT INTO hq_parked (terminal, epoch, seq, hash, body, parked_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(terminal, epoch, s, w.hash, w.body, now) for s, w in sorted(events.items())],
        )
        session.report.parked += len(events)
        session.report.deferred = True
        return
    acked, head_hash, gap_since, held = row
    start = acked = int(acked)
    available = dict(events)
    parked: set[int] = set()
    if gap_since is not None or any(seq > acked + 1 for seq in events):
        for seq, digest, body in tx.execute(
            "SELECT seq, hash, body FROM hq_parked WHERE terminal = ? AND epoch = ? AND seq > ?",
            [terminal, epoch, acked],
        ).fetchall():
            parked.add(int(seq))
            available.setdefault(int(seq), WireEvent(hash=digest, body=body))
    limit = stop.seq if stop is not None else None
    ready: dict[int, ForeignEvent] = {}
    refused: tuple[int, str] | None = None
    seq = acked + 1
    while (wire := available.get(seq)) is not None and (limit is None or seq < limit):
        try:
            ready[seq] = check_event(wire.body, wire.hash, f"terminal {terminal} seq {seq}")
        except RemoteEventError as exc:
            refused = (seq, str(exc))
            break
        seq += 1
    reused = _reused_ids(session, ready)
    session.backend.prefetch(tx, (e.body for e in ready.values()))
    while (event := ready.get(acked + 1)) is not None:
        try:
            if (event.terminal, event.epoch, event.seq) != (terminal, epoch, acked + 1):
                raise RemoteEventError(
                    f"terminal {terminal} sent event {event.uuid} as its epoch {epoch} seq"
                    f" {acked + 1}, but the event says terminal {event.terminal[:64]} epoch"
                    f" {event.epoch} seq {event.seq}; refused"
                )
            if event.body.prev != head_hash:
                raise RemoteEventError(
                    f"terminal {terminal} seq {acked + 1} does not follow seq {acked}: its"
                    " ledger was edited or rebuilt; check it with `posd audit verify`"
                )
            if acked + 1 in reused:
                raise RemoteEventError(reused[acked + 1])
            # Above the watermark, terminal/epoch/seq cannot be stored yet.
            session.apply(event, known_new=True)
        except (RemoteEventError, LookupError) as exc:
            refused = (acked + 1, str(exc))
            break
        head_hash = event.hash
        acked += 1
    if refused is None and stop is not None and stop.reason is not None and acked + 1 == stop.seq:
        refused = (stop.seq, stop.reason)
    if refused is not None and refused[0] == acked + 1:
        problem(session, refused[1], None, terminal, epoch, refused[0])
        held = refused[0]
    elif held is not None and int(held) <= acked:
        held = None  # it was stored after all (HQ was upgraded, say)
    _check_duplicates(session, terminal, epoch, {s: w for s, w in events.items() if s <= start})
    to_park = [(s, w) for s, w in available.items() if s > acked and s not in parked]
    if to_park:
        tx.executemany(
            "INSERT INTO hq_parked (terminal, epoch, seq, hash, body, parked_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(terminal, epoch, s, w.hash, w.body, now) for s, w in to_park],
        )
        session.report.parked += len(to_park)
    if acked > start and parked:
        tx.execute(
            "DELETE FROM hq_parked WHERE terminal = ? AND epoch = ? AND seq <= ?",
            [terminal, epoch, acked],
        )
    waiting = any(s > acked for s in available)
    tx.execute(
        "UPDATE hq_streams SET acked = ?, head_hash = ?, gap_since = ?, held_seq = ?,"
        " updated_at = ? WHERE terminal = ? AND epoch = ?",
        [acked, head_hash, (gap_since or now) if waiting else None, held, now, terminal, epoch],
    )
    if acked > start:
        session.report.advanced[(terminal, epoch)] = acked


def _reused_ids(session: Session, ready: Mapping[int, ForeignEvent]) -> dict[int, str]:
    """Events whose id another event already has (stored, or earlier in `ready`)."""
    owners: dict[str, tuple[str, str, int]] = {}
    ids = list(dict.fromkeys(event.uuid for event in ready.values()))
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        for uuid, terminal, epoch, seq in session.tx.execute(
            "SELECT uuid, terminal, epoch, seq FROM events WHERE uuid IN"
            f" ({', '.join('?' for _ in part)})",
            part,
        ).fetchall():
            owners[uuid] = (terminal, epoch, int(seq))
    found: dict[int, str] = {}
    for seq, event in sorted(ready.items()):
        owner = owners.setdefault(event.uuid, (event.terminal, event.epoch, seq))
        if owner != (event.terminal, event.epoch, seq):
            found[seq] = (
                f"terminal {event.terminal} seq {seq} reuses the id {event.uuid} of terminal"
                f" {owner[0]} epoch {owner[1]} seq {owner[2]}; refused"
            )
    return found


def drain(session: Session, now: float, stops: Mapping[Stream, Stop] | None = None) -> None:
    """Store parked events that now follow their stream's watermark."""
    for terminal, epoch in waiting_streams(session):
        _stream(session, terminal, epoch, {}, now, (stops or {}).get((terminal, epoch)))


def forget_stored(session: Session) -> None:
    """Drop parked copies of events that are stored by now: a process that found the
    stream busy parks what it got, and the one storing it may have committed first."""
    session.tx.execute(
        "DELETE FROM hq_parked WHERE EXISTS (SELECT 1 FROM hq_streams s"
        " WHERE s.terminal = hq_parked.terminal AND s.epoch = hq_parked.epoch"
        " AND hq_parked.seq <= s.acked)"
    )


def waiting_streams(session: Session) -> list[Stream]:
    """Streams whose next event is parked (and that are not held at it)."""
    return [
        (str(t), str(e))
        for t, e in session.tx.execute(
            "SELECT s.terminal, s.epoch FROM hq_streams s WHERE s.gap_since IS NOT NULL"
            " AND (s.held_seq IS NULL OR s.held_seq != s.acked + 1) AND EXISTS"
            " (SELECT 1 FROM hq_parked p WHERE p.terminal = s.terminal AND p.epoch = s.epoch"
            " AND p.seq = s.acked + 1) ORDER BY s.terminal, s.epoch"
        ).fetchall()
    ]


def watermark(session: Session, terminal: str, epoch: str) -> tuple[int, int]:
    """(acked, the highest seq HQ holds of the stream, parked or stored)."""
    row = session.tx.execute(
        "SELECT s.acked, (SELECT max(p.seq) FROM hq_parked p WHERE p.terminal = s.terminal"
        " AND p.epoch = s.epoch) FROM hq_streams s WHERE s.terminal = ? AND s.epoch = ?",
        [terminal, epoch],
    ).fetchone()
    if row is None:
        return 0, 0
    return int(row[0]), int(row[1] or row[0])


def _check_duplicates(
    session: Session, terminal: str, epoch: str, events: Mapping[int, WireEvent]
) -> None:
    """Events at or below the watermark: copies of stored ones (dropped), or problems."""
    if not events:
        return
    stored = dict(
        session.tx.execute(
            "SELECT seq, hash FROM events WHERE terminal = ? AND epoch = ? AND seq >= ?"
            " AND seq <= ?",
            [terminal, epoch, min(events), max(events)],
        ).fetchall()
    )
    for seq, wire in sorted(events.items()):
        digest = stored.get(seq)
        if digest == wire.hash:
            session.report.duplicates += 1
            continue
        message = (
            f"terminal {terminal} seq {seq} is below the watermark but unknown"
            if digest is None
            else f"terminal {terminal} epoch {epoch} seq {seq} differs from the event HQ stored"
            " under that number; the sender's ledger was rebuilt or edited: check it with"
            " `posd audit verify`"
        )
        problem(session, message, None, terminal, epoch, seq)


def register(session: Session, terminal: str, branch: str, epoch: str) -> None:
    """Know the terminal and its branch; the branch is pinned when first seen."""
    row = session.tx.execute(
        "SELECT branch FROM hq_terminals WHERE terminal = ?", [terminal]
    ).fetchone()
    if row is None:
        session.tx.execute(
            "INSERT INTO hq_terminals (terminal, branch, epoch, session, online, seen_at)"
            " VALUES (?, ?, ?, 0, 0, ?) ON CONFLICT DO NOTHING",
            [terminal, branch, epoch, session.stamp.at],
        )
        session.ensure_branch(branch)
    elif row[0] != branch:
        problem(
            session,
            f"terminal {terminal} says it is at branch {branch} but is registered at branch"
            f" {row[0]}; it gets branch {row[0]}'s feed until `posd hq move-terminal`",
            None,
            terminal,
            epoch,
        )


def presence(session: Session, status: Presence) -> bool:
    """Record a terminal's birth or death; False when it is stale (a late will)."""
    register(session, status.terminal, status.branch, status.epoch)
    epoch, number = session.tx.execute(
        "SELECT epoch, session FROM hq_terminals WHERE terminal = ?" + session.backend.lock,
        [status.terminal],
    ).fetchone()
    if epoch == status.epoch and status.session < int(number):
        return False
    if epoch != status.epoch and status.state == "offline":
        return False
    session.tx.execute(
        "UPDATE hq_terminals SET epoch = ?, session = ?, online = ?, seen_at = ?, backlog = ?,"
        " waiting_since = ? WHERE terminal = ?",
        [
            status.epoch,
            status.session,
            int(status.state == "online"),
            status.at,
            status.backlog,
            status.waiting_since,
            status.terminal,
        ],
    )
    return True


MAX_PROBLEM = 2000  # characters of a problem's message that are kept


def problem(
    session: Session,
    message: str,
    batch: EventBatch | None = None,
    terminal: str | None = None,
    epoch: str | None = None,
    seq: int | None = None,
    *,
    times: int = 1,
) -> None:
    """Note something HQ refused, naming the terminal that sent it (by its topic).

    The same problem again (same terminal, seq and message, not yet dismissed) counts
    up on its row instead of adding one."""
    if batch is not None:
        terminal, epoch, seq = batch.terminal, batch.epoch, batch.first
    message = message[:MAX_PROBLEM]
    terminal = terminal[:MAX_PROBLEM] if terminal is not None else None
    where = [
        "terminal IS NULL" if terminal is None else "terminal = ?",
        "seq IS NULL" if seq is None else "seq = ?",
        "message = ?",
        "dismissed_at IS NULL",
    ]
    params = [v for v in (terminal, seq) if v is not None] + [message]
    seen = session.tx.execute(
        f"SELECT id FROM hq_problems WHERE {' AND '.join(where)} LIMIT 1", params
    ).fetchone()
    if seen is None:
        session.tx.execute(
            "INSERT INTO hq_problems (terminal, epoch, seq, message, at, last_at, seen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [terminal, epoch, seq, message, session.stamp.at, session.stamp.at, times],
        )
    else:
        session.tx.execute(
            "UPDATE hq_problems SET seen = seen + ?, last_at = ? WHERE id = ?",
            [times, session.stamp.at, seen[0]],
        )
    session.report.problems.append(message)


PROBLEM_KEYS = (
    "id",
    "terminal",
    "epoch",
    "seq",
    "message",
    "at",
    "last_at",
    "seen",
    "dismissed_at",
    "dismissed_by",
)


def problems(
    session: Session, limit: int = 20, *, open_only: bool = True
) -> list[dict[str, object]]:
    """The latest problems, open ones (not dismissed by an operator) unless told."""
    where = " WHERE dismissed_at IS NULL" if open_only else ""
    rows = session.tx.execute(
        f"SELECT {', '.join(PROBLEM_KEYS)} FROM hq_problems{where} ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [dict(zip(PROBLEM_KEYS, row, strict=True)) for row in rows]


def open_problems_by_terminal(session: Session) -> dict[str | None, int]:
    """How many open problems name each terminal (None: no terminal could be named)."""
    return {
        terminal: int(n)
        for terminal, n in session.tx.execute(
            "SELECT terminal, count(*) FROM hq_problems WHERE dismissed_at IS NULL"
            " GROUP BY terminal"
        ).fetchall()
    }


def dismiss(session: Session, ids: Sequence[int], terminal: str | None, actor: str) -> int:
    """Mark problems dealt with (by id, or every open one of `terminal`); how many."""
    if ids:
        marks = ", ".join("?" for _ in ids)
        rows = session.tx.execute(
            f"UPDATE hq_problems SET dismissed_at = ?, dismissed_by = ? WHERE id IN ({marks})"
            " AND dismissed_at IS NULL RETURNING id",
            [session.stamp.at, actor, *ids],
        ).fetchall()
    else:
        rows = session.tx.execute(
            "UPDATE hq_problems SET dismissed_at = ?, dismissed_by = ? WHERE terminal = ?"
            " AND dismissed_at IS NULL RETURNING id",
            [session.stamp.at, actor, terminal],
        ).fetchall()
    return len(rows)
