"""The terminal's side of replication: one thread that owns the MQTT client.

    replicator = Replicator(config, Path("/var/lib/posd/ledger.db"), notify=on_status)
    replicator.start()      # returns at once; the thread connects and keeps at it
    ...
    replicator.stop()       # publishes `offline`, disconnects cleanly, closes its ledger

The thread opens its own connection to the ledger (SQLite connections belong to
one thread). It publishes the terminal's own events after the replication cursor
in seq order, moves the cursor only when HQ's retained ack watermark says the
events are stored, answers HQ's resend requests, and applies the branch feed
(other terminals' events, inbound transfers, HQ's flags and resolutions) to the
ledger. Everything it learns reaches the caller as a `ReplicationStatus` through
`notify`, called on the replication thread: give it `on_loop(loop, callback)` to
land in an asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import paho.mqtt.client as mqtt

from daemon.config.replication import ReplicationConfig, check_topic_part
from daemon.ledger.remote import (
    apply_remote_many,
    head_seq,
    outbox,
    replication_cursor,
    set_replication_cursor,
    set_state,
    state,
)
from daemon.ledger.store import LedgerStore, iso, utc_now
from daemon.replication import protocol as p
from daemon.replication.link import Link, LinkHandler, Will
from daemon.replication.outbound import Outbound

log = logging.getLogger(__name__)
PULL_SPACING_S = 2.0
BIRTH_SPACING_S = 5.0


@dataclass(frozen=True)
class ReplicationStatus:
    """What the lane shows about replication."""

    running: bool = False
    connected: bool = False
    head_seq: int = 0  # the newest own event
    acked_seq: int = 0  # HQ has stored every own event up to here
    sent_seq: int = 0  # published up to here (sent again from acked_seq after a stall)
    inflight: int = 0  # messages awaiting the broker's PUBACK
    feed_position: int = 0  # how far the branch feed from HQ is applied
    last_error: str | None = None
    # Units that events from elsewhere changed since the previous status.
    changed_units: tuple[tuple[str, str], ...] = ()

    @property
    def backlog(self) -> int:
        """Own events HQ has not confirmed yet."""
        return max(0, self.head_seq - self.acked_seq)


Notify = Callable[[ReplicationStatus], None]


def on_loop(loop: asyncio.AbstractEventLoop, callback: Notify) -> Notify:
    """A `notify` that runs `callback` on an asyncio loop instead of the thread."""

    def hand_over(status: ReplicationStatus) -> None:
        loop.call_soon_threadsafe(callback, status)

    return hand_over


class Replicator:
    """Replication of one ledger to HQ, on a thread of its own."""

    def __init__(
        self,
        config: ReplicationConfig,
        ledger_path: Path,
        *,
        notify: Notify | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ledger_path = Path(ledger_path)
        self.notify = notify
        self.clock = clock
        self._status = ReplicationStatus()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the caller's side (any thread) ------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("replication is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="posd-replication", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Say `offline`, disconnect cleanly and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def status(self) -> ReplicationStatus:
        with self._changed:
            return self._status

    def wait_for(self, condition: Callable[[ReplicationStatus], bool], timeout: float) -> bool:
        """Block until `condition(status)` holds; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self._status):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    # -- the replication thread ---------------------------------------------------

    def _run(self) -> None:
        try:
            ledger = LedgerStore.open(self.ledger_path)
        except Exception as exc:  # reported: a thread has no caller to raise to
            self._publish(
                ReplicationStatus(last_error=f"replication cannot open the ledger: {exc}")
            )
            return
        worker: _Worker | None = None
        try:
            worker = _Worker(self.config, ledger, self._publish, self.clock)
            while not self._stop.is_set():
                worker.step()
            worker.goodbye()
        except Exception as exc:
            log.exception("replication stopped")
            self._publish(replace(self.status, last_error=f"replication stopped: {exc}"))
        finally:
            if worker is not None:
                worker.close()
            ledger.close()
            self._publish(replace(self.status, running=False, connected=False))

    def _publish(self, status: ReplicationStatus) -> None:
        with self._changed:
            self._status = status
            self._changed.notify_all()
        if self.notify is not None:
            self.notify(status)


class _Worker(LinkHandler):
    """Everything that lives on the replication thread: the ledger, the client."""

    def __init__(
        self,
        config: ReplicationConfig,
        ledger: LedgerStore,
        publish: Notify,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.ledger = ledger
        self.publish_status = publish
        self.clock = clock
        self.status = ReplicationStatus()
        self.terminal = check_topic_part(ledger.terminal, "terminal id")
        self.branch = check_topic_part(ledger.branch, "branch id")
        self.epoch = ledger.epoch
        self.feed_key = f"feed:{self.branch}"
        self.session = state(ledger, "session")
        self.outbound = Outbound(
            replication_cursor(ledger),
            window=config.inflight_window,
            unacked_limit=config.unacked_limit,
            ack_timeout_s=config.ack_timeout_s,
            ack_timeout_max_s=config.ack_timeout_max_s,
            now_monotonic=clock(),
        )
        self.head = head_seq(ledger)
        self.error: str | None = None
        self.changed_units: set[tuple[str, str]] = set()
        self.pull_due_monotonic = 0.0
        self.pull_spacing_until_monotonic = 0.0
        self.birth_spacing_until_monotonic = 0.0
        self.birth_due_monotonic: float | None = None
        self.link = Link(
            config,
            config.client_id or f"posd-{self.terminal}",
            self,
            will=self._next_session_will,
            clock=clock,
        )

    def step(self) -> None:
        self.link.step(self.config.poll_s)
        now = self.clock()
        self.head = head_seq(self.ledger)
        if self.link.connected:
            self._publish_events(now)
            if self.outbound.check_stall(now):
                log.info("HQ has not confirmed events for a while; sending from its watermark")
            if now >= self.pull_due_monotonic:
                self._pull(now)
            if self.birth_due_monotonic is not None and now >= self.birth_due_monotonic:
                self._rebirth(now)
        self._report()

    def goodbye(self) -> None:
        """Replace the retained birth with `offline` before a clean disconnect."""
        if self.link.connected:
            mid = self.link.publish(
                p.status_topic(self.terminal), self._presence(online=False), retain=True
            )
            if mid is not None:
                self.link.flush(mid, timeout=2.0)

    def close(self) -> None:
        self.link.close()

    def _presence(self, online: bool) -> bytes:
        return p.encode(
            p.Presence(
                terminal=self.terminal,
                branch=self.branch,
                epoch=self.epoch,
                session=self.session,
                state="online" if online else "offline",
                at=iso(utc_now()),
            )
        )

    def _next_session_will(self) -> Will:
        """Each connection attempt is a new session, counted durably."""
        self.session += 1
        set_state(self.ledger, "session", self.session)
        return Will(p.status_topic(self.terminal), self._presence(online=False))

    def _publish_events(self, now: float) -> None:
        while (room := self.outbound.to_send(self.head, now)) is not None:
            first, most = room
            rows = outbox(self.ledger, first - 1, min(self.config.batch_events, most - first + 1))
            if not rows:
                return
            batch = p.EventBatch(
                terminal=self.terminal,
                epoch=self.epoch,
                branch=self.branch,
                first=rows[0][0],
                last=rows[-1][0],
                events=[p.WireEvent(hash=digest, body=text) for _, text, digest in rows],
            )
            mid = self.link.publish(p.events_topic(self.terminal), p.encode(batch))
            if mid is None:
                return
            self.outbound.sent(mid, batch.first, batch.last, now)

    def _pull(self, now: float) -> None:
        if now < self.pull_spacing_until_monotonic:
            self.pull_due_monotonic = self.pull_spacing_until_monotonic
            return
        pull = p.Pull(terminal=self.terminal, branch=self.branch, after=self._feed_position())
        if self.link.publish(p.pull_topic(self.terminal), p.encode(pull)) is not None:
            self.pull_spacing_until_monotonic = now + PULL_SPACING_S
            self.pull_due_monotonic = now + self.config.feed_poll_s

    def _feed_position(self) -> int:
        return state(self.ledger, self.feed_key)

    def _report(self) -> None:
        outbound = self.outbound
        error = outbound.refused or self.error
        if not self.link.connected:
            error = error or self.link.last_error
        status = ReplicationStatus(
            running=True,
            connected=self.link.connected,
            head_seq=self.head,
            acked_seq=outbound.acked,
            sent_seq=outbound.next_seq - 1,
            inflight=len(outbound.inflight),
            feed_position=self._feed_position(),
            last_error=error,
            changed_units=tuple(sorted(self.changed_units)),
        )
        if status != self.status:
            self.changed_units.clear()
            self.status = status
            self.publish_status(status)

    # -- LinkHandler: called inside link.step(), on this thread --------------------

    def connected(self, session_present: bool) -> None:
        self.link.subscribe(
            p.to_terminal_filter(self.terminal),
            p.branch_feed_topic(self.branch),
            p.status_topic(self.terminal),
        )
        self.link.publish(p.status_topic(self.terminal), self._presence(online=True), retain=True)
        self.pull_due_monotonic = 0.0
        self.pull_spacing_until_monotonic = 0.0

    def disconnected(self, reason: str) -> None:
        log.info("replication: %s", reason)

    def published(self, mid: int, ok: bool, reason: str) -> None:
        sent = self.outbound.puback(mid, ok, reason, self.clock())
        if sent is not None and not ok:
            log.warning("replication: %s", self.outbound.refused)

    def message(self, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        try:
            if topic == p.ack_topic(self.terminal, self.epoch):
                self._on_ack(p.decode(p.Ack, bytes(message.payload), topic))
            elif topic == p.resend_topic(self.terminal):
                self._on_resend(p.decode(p.Resend, bytes(message.payload), topic))
            elif topic in (p.answer_topic(self.terminal), p.branch_feed_topic(self.branch)):
                feed = p.decode(p.Feed, bytes(message.payload), topic)
                self._on_feed(feed, answer=topic == p.answer_topic(self.terminal))
            elif topic == p.status_topic(self.terminal):
                self._on_own_status(p.decode(p.Presence, bytes(message.payload), topic))
        except Exception as exc:  # one bad message must not stop replication
            log.warning("replication: %s", exc)
            self.error = str(exc)

    def _on_ack(self, ack: p.Ack) -> None:
        if ack.terminal != self.terminal or ack.epoch != self.epoch:
            return
        if ack.seq > self.outbound.acked:
            # Durable first: the cursor is on disk before anything relies on it.
            set_replication_cursor(self.ledger, ack.seq)
            self.error = None
        self.outbound.hq_acked(ack.seq, self.clock())

    def _on_resend(self, resend: p.Resend) -> None:
        if resend.epoch != self.epoch:
            return
        log.info("replication: HQ asks for events from seq %d (%s)", resend.from_seq, resend.reason)
        self.outbound.resend_from(resend.from_seq, self.clock())

    def _on_feed(self, feed: p.Feed, *, answer: bool) -> None:
        if feed.branch != self.branch:
            return
        position = self._feed_position()
        if feed.last <= position:
            return
        if feed.first > position + 1:
            self._pull(self.clock())  # a gap: something was missed
            return
        items = [
            (e.body, e.hash)
            for e in feed.events
            if e.pos > position and (e.terminal, e.epoch) != (self.terminal, self.epoch)
        ]
        for applied in apply_remote_many(self.ledger, items, position=(self.feed_key, feed.last)):
            unit = applied.event.unit
            if applied.stored and unit is not None:
                self.changed_units.add(unit)
        self.error = None
        if answer and feed.last < feed.head:
            self.pull_spacing_until_monotonic = 0.0
            self._pull(self.clock())

    def _on_own_status(self, presence: p.Presence) -> None:
        current = (self.epoch, self.session, "online")
        if (presence.epoch, presence.session, presence.state) == current:
            self.birth_due_monotonic = None
            return
        if presence.epoch == self.epoch and presence.session > self.session:
            return  # not ours to correct
        # A late will from an older connection replaced our birth: say it again (at
        # most every few seconds, in case two terminals share an id and fight).
        self.birth_due_monotonic = max(self.clock(), self.birth_spacing_until_monotonic)

    def _rebirth(self, now: float) -> None:
        self.birth_due_monotonic = None
        self.birth_spacing_until_monotonic = now + BIRTH_SPACING_S
        self.link.publish(p.status_topic(self.terminal), self._presence(online=True), retain=True)
