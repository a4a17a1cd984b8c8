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
from datetime import timedelta
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
from daemon.replication.bodies import check_event
from daemon.replication.link import NO_SUBSCRIBERS, Link, LinkHandler, Will
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
    # Whether an HQ process is online, as its retained status says (None: not seen).
    hq_online: bool | None = None
    # Since when (ISO 8601 UTC) own events have been waiting for HQ to take them, and
    # why; None: HQ is taking them.
    waiting_for_hq_since: str | None = None
    waiting_for_hq: str | None = None

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
            retry_max_s=config.refused_retry_max_s,
            now_monotonic=clock(),
        )
        self.hq_nodes: dict[str, bool] = {}  # HQ process → online, from its status
        self.offline_since_monotonic: float | None = clock()  # not connected since
        self.hq_offline_since_monotonic: float | None = None  # every HQ process offline
        self._since_text: tuple[float, str] | None = None
        self.waiting_since: str | None = None  # as told in the retained status
        self.status_due_monotonic: float | None = None
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
            self._update_presence(now)
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
                backlog=max(0, self.head - self.outbound.acked),
                waiting_since=self.waiting_since,
            )
        )

    def _waiting(self, now: float) -> tuple[str | None, str | None]:
        """(since when, why) own events have been waiting for HQ; (None, None): they
        are not."""
        outbound = self.outbound
        outbound.settled(self.head)
        if self.head <= outbound.acked:
            return None, None
        reasons = [
            (outbound.waiting_since_monotonic, outbound.waiting_reason),
            (self.hq_offline_since_monotonic, "no HQ process is online (its status says so)"),
            (
                None if self.link.connected else self.offline_since_monotonic,
                self.link.last_error or "not connected to the broker",
            ),
        ]
        found = [(since, why) for since, why in reasons if since is not None]
        if not found:
            return None, None
        since, why = min(found, key=lambda item: item[0])
        if self._since_text is None or self._since_text[0] != since:
            wall = utc_now() - timedelta(seconds=max(0.0, now - since))
            self._since_text = (since, iso(wall))
        return self._since_text[1], why

    def _update_presence(self, now: float) -> None:
        """Say in the retained status when the terminal starts or stops waiting for HQ
        (at most every few seconds)."""
        since, _ = self._waiting(now)
        if (since is None) == (self.waiting_since is None):
            return
        if self.status_due_monotonic is None:
            self.status_due_monotonic = max(now, self.birth_spacing_until_monotonic)
        if now < self.status_due_monotonic:
            return
        self.waiting_since = since
        self.status_due_monotonic = None
        self.birth_spacing_until_monotonic = now + BIRTH_SPACING_S
        self.link.publish(p.status_topic(self.terminal), self._presence(online=True), retain=True)

    def _next_session_will(self) -> Will:
        """Each connection attempt is a new session, counted durably."""
        self.session += 1
        set_state(self.ledger, "session", self.session)
        return Will(p.status_topic(self.terminal), self._presence(online=False))

    def _publish_events(self, now: float) -> None:
        topic = p.events_topic(self.terminal)
        limit = p.room(self.link.max_packet_size, topic)
        while (room := self.outbound.to_send(self.head, now)) is not None:
            first, most = room
            rows = outbox(self.ledger, first - 1, min(self.config.batch_events, most - first + 1))
            if not rows:
                return
            payload = self._batch(rows, limit)
            if payload is None:
                self.error = (
                    f"event {rows[0][0]} does not fit in the {limit:,} bytes the broker takes in"
                    " a message; raise the broker's max_packet_size (PROTOCOL.md)"
                )
                return
            mid = self.link.publish(topic, payload[0])
            if mid is None:
                return
            self.outbound.sent(mid, rows[0][0], payload[1], now)

    def _batch(self, rows: list[tuple[int, str, str]], limit: int) -> tuple[bytes, int] | None:
        """The message for as many of `rows` as fit in `limit` bytes, and its last seq."""
        while rows:
            batch = p.EventBatch(
                terminal=self.terminal,
                epoch=self.epoch,
                branch=self.branch,
                first=rows[0][0],
                last=rows[-1][0],
                events=[p.WireEvent(hash=digest, body=text) for _, text, digest in rows],
            )
            payload = p.encode(batch)
            if len(payload) <= limit:
                return payload, batch.last
            if len(rows) == 1:
                return None
            # Most of the events that fit, judged by the average size: rarely twice.
            keep = max(1, min(len(rows) - 1, len(rows) * limit // len(payload)))
            rows = rows[:keep]
        return None

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
        since, why = self._waiting(self.clock())
        online = any(self.hq_nodes.values()) if self.hq_nodes else None
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
            hq_online=online,
            waiting_for_hq_since=since[:19] + "Z" if since else None,
            waiting_for_hq=why,
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
            # HQ processes' retained status: when one comes (back) online, publish.
            p.ALL_NODE_STATUS,
        )
        self.offline_since_monotonic = None
        self.link.publish(p.status_topic(self.terminal), self._presence(online=True), retain=True)
        self.pull_due_monotonic = 0.0
        self.pull_spacing_until_monotonic = 0.0

    def disconnected(self, reason: str) -> None:
        log.info("replication: %s", reason)
        self.offline_since_monotonic = self.clock()

    def published(self, mid: int, ok: bool, reason: str) -> None:
        no_subscribers = reason == NO_SUBSCRIBERS
        before = self.outbound.waiting_since_monotonic
        sent = self.outbound.puback(mid, ok, reason, self.clock(), no_subscribers=no_subscribers)
        if sent is not None and not ok:
            # Once per outage, not for every try.
            level = logging.WARNING if before is None else logging.DEBUG
            log.log(level, "replication: %s", self.outbound.refused)

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
            elif topic.startswith(p.ALL_NODE_STATUS.split("+")[0]) and message.payload:
                node = p.node_of(topic)
                self._on_hq_status(node, p.decode(p.NodeStatus, bytes(message.payload), topic))
        except Exception as exc:  # one bad message must not stop replication
            log.warning("replication: %s", exc)
            self.error = str(exc)[:500]

    def _on_hq_status(self, node: str, status: p.NodeStatus) -> None:
        if status.node != node:
            return
        online = status.state == "online"
        before = self.hq_nodes.get(node)
        self.hq_nodes[node] = online
        if any(self.hq_nodes.values()):
            self.hq_offline_since_monotonic = None
        elif self.hq_offline_since_monotonic is None:
            self.hq_offline_since_monotonic = self.clock()
        if online and before is not True:
            log.info("replication: HQ process %s is online; publishing", node)
            self.outbound.hq_back(self.clock())

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
        entries = [
            e
            for e in feed.events
            if e.pos > position and (e.terminal, e.epoch) != (self.terminal, self.epoch)
        ]
        for entry in entries:
            # Checked like HQ checks a terminal's: one this version cannot apply holds
            # the feed at it (the position stays), and the status says why.
            check_event(entry.body, entry.hash, f"HQ's feed entry {entry.pos}")
        items = [(e.body, e.hash) for e in entries]
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
