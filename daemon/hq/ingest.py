"""Terminals' events into the central ledger: once each, in order, chained.

For each terminal epoch HQ keeps a watermark `acked`: every event up to it is
stored and follows the one before it. A batch is taken under a lock on that
stream's row, so when several HQ processes share a shared subscription, and the
broker hands one terminal's consecutive messages to different processes, they
take turns: events right after the watermark are stored, events after a gap are
parked in the database (where any process finds them once the gap is filled),
and events at or below the watermark are duplicates, checked against what is
stored and dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.hq.session import Session
from daemon.ledger.events import genesis_hash
from daemon.ledger.remote import ForeignEvent, RemoteEventError, parse_foreign, stored_hash
from daemon.replication.protocol import EventBatch, Presence, WireEvent


def ingest(session: Session, batches: Sequence[EventBatch], now: float) -> None:
    """Store what can be stored of `batches`; `now` is wall-clock seconds."""
    streams: dict[tuple[str, str], dict[int, WireEvent]] = {}
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
        _stream(session, terminal, epoch, streams[(terminal, epoch)], now)


def _stream(
    session: Session, terminal: str, epoch: str, events: dict[int, WireEvent], now: float
) -> None:
    tx = session.tx
    tx.execute(
        "INSERT INTO hq_streams (terminal, epoch, acked, head_hash, updated_at)"
        " VALUES (?, ?, 0, ?, ?) ON CONFLICT DO NOTHING",
        [terminal, epoch, genesis_hash(terminal, epoch), now],
    )
    row = tx.execute(
        "SELECT acked, head_hash, gap_since FROM hq_streams WHERE terminal = ? AND epoch = ?"
        + session.backend.skip_locked,
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
    acked, head_hash, gap_since = row
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
    ready: dict[int, ForeignEvent] = {}
    seq = acked + 1
    while (wire := available.get(seq)) is not None:
        try:
            ready[seq] = parse_foreign(wire.body, wire.hash)
        except RemoteEventError:
            break  # reported in order below
        seq += 1
    session.backend.prefetch(tx, (e.body for e in ready.values()))
    while (wire := available.get(acked + 1)) is not None:
        try:
            event = ready.get(acked + 1) or parse_foreign(wire.body, wire.hash)
            if (event.terminal, event.epoch, event.seq) != (terminal, epoch, acked + 1):
                raise RemoteEventError(
                    f"event {event.uuid} says terminal {event.terminal} epoch {event.epoch}"
                    f" seq {event.seq} but came as {terminal} {epoch} seq {acked + 1}"
                )
            if event.body.prev != head_hash:
                raise RemoteEventError(
                    f"terminal {terminal} seq {acked + 1} does not follow seq {acked}: its"
                    " ledger was edited or rebuilt; check it with `posd audit verify`"
                )
            # Above the watermark, terminal/epoch/seq cannot be stored yet.
            session.apply(event, known_new=True)
        except (RemoteEventError, LookupError) as exc:
            problem(session, str(exc), None, terminal, epoch, acked + 1)
            break
        head_hash = event.hash
        acked += 1
    for seq in sorted(s for s in events if s <= start):
        _check_duplicate(session, events[seq], terminal, epoch, seq)
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
        "UPDATE hq_streams SET acked = ?, head_hash = ?, gap_since = ?, updated_at = ?"
        " WHERE terminal = ? AND epoch = ?",
        [acked, head_hash, (gap_since or now) if waiting else None, now, terminal, epoch],
    )
    if acked > start:
        session.report.advanced[(terminal, epoch)] = acked


def drain(session: Session, now: float) -> None:
    """Store parked events that now follow their stream's watermark."""
    for terminal, epoch in session.tx.execute(
        "SELECT s.terminal, s.epoch FROM hq_streams s WHERE s.gap_since IS NOT NULL AND EXISTS"
        " (SELECT 1 FROM hq_parked p WHERE p.terminal = s.terminal AND p.epoch = s.epoch"
        " AND p.seq = s.acked + 1) ORDER BY s.terminal, s.epoch"
    ).fetchall():
        _stream(session, terminal, epoch, {}, now)


def _check_duplicate(
    session: Session, wire: WireEvent, terminal: str, epoch: str, seq: int
) -> None:
    try:
        event = parse_foreign(wire.body, wire.hash)
        if stored_hash(session.tx, event) is None:
            raise RemoteEventError(
                f"terminal {terminal} seq {seq} is below the watermark but unknown"
            )
    except RemoteEventError as exc:
        problem(session, str(exc), None, terminal, epoch, seq)
        return
    session.report.duplicates += 1


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
        "UPDATE hq_terminals SET epoch = ?, session = ?, online = ?, seen_at = ?"
        " WHERE terminal = ?",
        [status.epoch, status.session, int(status.state == "online"), status.at, status.terminal],
    )
    return True


def problem(
    session: Session,
    message: str,
    batch: EventBatch | None = None,
    terminal: str | None = None,
    epoch: str | None = None,
    seq: int | None = None,
) -> None:
    """Note something HQ refused (once per message)."""
    if batch is not None:
        terminal, epoch, seq = batch.terminal, batch.epoch, batch.first
    seen = session.tx.execute(
        "SELECT 1 FROM hq_problems WHERE message = ? LIMIT 1", [message]
    ).fetchone()
    if seen is None:
        session.tx.execute(
            "INSERT INTO hq_problems (terminal, epoch, seq, message, at) VALUES (?, ?, ?, ?, ?)",
            [terminal, epoch, seq, message, session.stamp.at],
        )
    session.report.problems.append(message)


def problems(session: Session, limit: int = 20) -> list[dict[str, object]]:
    rows = session.tx.execute(
        "SELECT terminal, epoch, seq, message, at FROM hq_problems ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    keys = ("terminal", "epoch", "seq", "message", "at")
    return [dict(zip(keys, row, strict=True)) for row in rows]
