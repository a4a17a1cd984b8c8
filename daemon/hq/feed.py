"""What HQ sends back: the branch feeds, answers to pulls, resend requests, acks.

Each is read (and, for the feed and resends, claimed) in a transaction and
published after it commits. Claims make sure that with several HQ processes only
one publishes a stretch of a feed or asks a terminal to resend; if a process dies
between claim and publish, the terminals notice the gap in positions and pull.

The messages are made from what HQ stored (checked when it arrived) without checking
it again: a row an older HQ stored that this version would refuse must not stop the
feed of every branch; the terminal that receives it checks it and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daemon.hq.session import Session
from daemon.replication.protocol import Ack, Feed, FeedEvent, Resend

FEED_SQL = (
    "SELECT r.pos, e.terminal, e.epoch, e.hash, e.body FROM hq_routes r"
    " JOIN events e ON e.id = r.event_id WHERE r.branch = ? AND r.pos > ? AND r.pos <= ?"
    " ORDER BY r.pos"
)


def _chunks(branch: str, rows: Sequence[Any], head: int, size: int) -> list[Feed]:
    feeds = []
    for start in range(0, len(rows), size):
        part = rows[start : start + size]
        feeds.append(
            Feed.model_construct(
                branch=branch,
                first=int(part[0][0]),
                last=int(part[-1][0]),
                head=head,
                events=[
                    FeedEvent.model_construct(pos=int(pos), terminal=t, epoch=e, hash=h, body=b)
                    for pos, t, e, h, b in part
                ],
            )
        )
    return feeds


def claim_feed(session: Session, limit: int, chunk: int) -> list[Feed]:
    """Feed entries not yet published (at most `limit` per branch), marked published."""
    feeds: list[Feed] = []
    for branch, head, published in session.tx.execute(
        "SELECT branch, head, published FROM hq_branches WHERE head > published ORDER BY branch"
        + session.backend.skip_locked
    ).fetchall():
        upto = min(int(head), int(published) + limit)
        rows = session.tx.execute(FEED_SQL, [branch, published, upto]).fetchall()
        session.tx.execute("UPDATE hq_branches SET published = ? WHERE branch = ?", [upto, branch])
        feeds.extend(_chunks(branch, rows, int(head), chunk))
    return feeds


def answer_pull(session: Session, terminal: str, after: int, limit: int, chunk: int) -> list[Feed]:
    """The feed of the terminal's registered branch after position `after`."""
    row = session.tx.execute(
        "SELECT t.branch, b.head FROM hq_terminals t JOIN hq_branches b ON b.branch = t.branch"
        " WHERE t.terminal = ?",
        [terminal],
    ).fetchone()
    if row is None:
        return []
    branch, head = row[0], int(row[1])
    rows = session.tx.execute(FEED_SQL, [branch, after, min(head, after + limit)]).fetchall()
    return _chunks(branch, rows, head, chunk)


def claim_resends(session: Session, now: float, after_s: float) -> list[Resend]:
    """Streams with events parked for `after_s` seconds: ask their terminal to resend.

    Not a stream held at an event HQ refused: asking for that event again is no use
    (the terminal sends it again anyway when HQ's watermark stalls)."""
    rows = session.tx.execute(
        "SELECT terminal, epoch, acked FROM hq_streams WHERE gap_since IS NOT NULL"
        " AND gap_since <= ? AND (resend_at IS NULL OR resend_at <= ?)"
        " AND (held_seq IS NULL OR held_seq != acked + 1)" + session.backend.skip_locked,
        [now - after_s, now - after_s],
    ).fetchall()
    requests = []
    for terminal, epoch, acked in rows:
        session.tx.execute(
            "UPDATE hq_streams SET resend_at = ? WHERE terminal = ? AND epoch = ?",
            [now, terminal, epoch],
        )
        requests.append(
            Resend.model_construct(
                terminal=terminal,
                epoch=epoch,
                from_seq=int(acked) + 1,
                reason=f"events after seq {acked} arrived but seq {int(acked) + 1} did not",
            )
        )
    return requests


def current_acks(
    session: Session, streams: Sequence[tuple[str, str]] = (), since: float | None = None
) -> list[Ack]:
    """Watermarks as stored now: of `streams`, or of every stream updated since `since`."""
    me = session.identity.terminal
    rows: list[Any] = []
    for terminal, epoch in streams:
        rows += session.tx.execute(
            "SELECT terminal, epoch, acked FROM hq_streams WHERE terminal = ? AND epoch = ?",
            [terminal, epoch],
        ).fetchall()
    if since is not None:
        rows += session.tx.execute(
            "SELECT terminal, epoch, acked FROM hq_streams WHERE updated_at >= ? AND terminal != ?",
            [since, me],
        ).fetchall()
    found = {(t, e): int(a) for t, e, a in rows if t != me}
    return [Ack.model_construct(terminal=t, epoch=e, seq=a) for (t, e), a in sorted(found.items())]
