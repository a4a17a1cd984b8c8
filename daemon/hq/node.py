"""One HQ process: the MQTT client and the central ledger, on one thread.

    node = HqNode(HqConfig(broker=BrokerConfig(url=...)), open_backend(db="hq.db", pg=None))
    node.run(stop_event)

It takes terminals' events from a shared subscription (`$share/<group>/...`), so
any number of processes on one PostgreSQL database share the load; stores each
batch in one transaction; acknowledges a message to the broker only after the
transaction committed (manual acks: a crash never loses an event the broker
thinks delivered); then publishes each terminal's retained ack watermark.
Between batches it publishes the branch feeds, answers pulls and asks for
resends where events wait behind a gap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from daemon.config.hq import HqConfig
from daemon.hq.backend import Backend
from daemon.hq.central import Central
from daemon.hq.exposure import plain_on_network
from daemon.hq.session import IngestReport
from daemon.ledger.store import iso, utc_now
from daemon.replication import protocol as p
from daemon.replication.link import Link, LinkHandler, Will

log = logging.getLogger(__name__)
MAX_TOTALS = 1000  # different problems kept in memory for the summary at the end


@dataclass
class Received:
    payload: Any
    mid: int
    generation: int


@dataclass
class Totals:
    """What this process has done since it started."""

    stored: int = 0
    duplicates: int = 0
    parked: int = 0
    conflicts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, report: IngestReport) -> None:
        self.stored += report.stored
        self.duplicates += report.duplicates
        self.parked += report.parked
        self.conflicts += report.conflicts
        for problem in report.problems:
            self.problem(problem)

    def problem(self, text: str) -> None:
        """Remember a problem once (the first MAX_TOTALS different ones)."""
        if len(self.problems) < MAX_TOTALS and text not in self.problems:
            self.problems.append(text)


class HqNode(LinkHandler):
    def __init__(
        self,
        config: HqConfig,
        backend: Backend,
        *,
        on_report: Callable[[IngestReport], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.central = Central(backend)
        self.on_report = on_report
        self.clock = clock
        self.wall = wall
        self.totals = Totals()
        self._events: list[Received] = []
        self._pulls: list[Received] = []
        self._statuses: list[Received] = []
        # Refused messages to record as problems: (message, sending terminal) → how many.
        self._refused: dict[tuple[str, str | None], int] = {}
        self._housekeeping_due = 0.0
        self._acks_due = 0.0
        self._paused_until = 0.0
        self.link = Link(
            config.broker.model_copy(update={"session_expiry_s": config.session_expiry_s}),
            config.node,
            self,
            will=lambda: Will(p.node_status_topic(config.node), self._node_status(False)),
            manual_ack=True,
            clock=clock,
        )

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set, then say offline and disconnect."""
        for warning in plain_on_network(listen=None, https=False, broker=self.config.broker.url):
            log.warning("HQ: %s", warning)
        try:
            while not stop.is_set():
                self.step()
            if self.link.connected:
                mid = self.link.publish(
                    p.node_status_topic(self.config.node), self._node_status(False), retain=True
                )
                if mid is not None:
                    self.link.flush(mid, 2.0)
        finally:
            # A clean stop ends the session: the broker hands everything to the
            # group's other members instead of queueing a share for this one.
            self.link.close(forget_session=True)
            self.central.close()

    def step(self) -> None:
        busy = bool(self._events) and self.clock() >= self._paused_until
        self.link.step(0.0 if busy else 0.05)
        if not self.link.connected or self.clock() < self._paused_until:
            return
        # Each part on its own: one that fails does not hold up the others.
        for due, work in (
            (bool(self._refused), self._record_refused),
            (bool(self._statuses), self._take_statuses),
            (bool(self._events), self._take_events),
            (bool(self._pulls), self._take_pulls),
            (self.clock() >= self._housekeeping_due, self._housekeeping),
        ):
            if not due:
                continue
            try:
                work()
            except Exception:
                # A lock, a lost connection, a full disk (what comes from the data is
                # a problem, dealt with in Central). Nothing was acknowledged: the
                # messages stay queued and are tried again.
                log.exception("HQ: database error; trying again in %.1f s", self.config.retry_s)
                self._paused_until = self.clock() + self.config.retry_s

    # -- work ------------------------------------------------------------------------

    def _take_events(self) -> None:
        taken = self._events[: self.config.batch_messages]
        report = self.central.ingest([r.payload for r in taken], self.wall())
        del self._events[: len(taken)]
        for ack in self.central.acks(list(report.advanced)):
            self.link.publish(p.ack_topic(ack.terminal, ack.epoch), p.encode(ack), retain=True)
        for received in taken:
            self.link.ack(received.mid, received.generation)
        self.totals.add(report)
        if report.branches or report.deferred:
            self._housekeeping_due = 0.0
        if self.on_report is not None:
            self.on_report(report)

    def _record_refused(self) -> None:
        self.central.note_problems(self._refused)
        self._refused = {}

    def _take_statuses(self) -> None:
        taken = list(self._statuses)
        self.totals.add(self.central.presence([r.payload for r in taken]))
        del self._statuses[: len(taken)]
        for received in taken:
            self.link.ack(received.mid, received.generation)

    def _take_pulls(self) -> None:
        while self._pulls:
            received = self._pulls[0]
            pull: p.Pull = received.payload
            try:
                feeds = self.central.answer_pull(
                    pull.terminal, pull.after, self.config.feed_limit, self.config.feed_chunk
                )
            except Exception as exc:
                if self.central.backend.transient(exc):
                    raise
                message = f"HQ could not answer terminal {pull.terminal}'s pull: {exc!r}"
                self._refused[(message, pull.terminal)] = 1
                feeds = []
            for feed in feeds:
                self._publish_feed(p.answer_topic(pull.terminal), feed)
            del self._pulls[0]
            self.link.ack(received.mid, received.generation)

    def _housekeeping(self) -> None:
        now = self.clock()
        self._housekeeping_due = now + self.config.housekeeping_s
        drained = self.central.drain(self.wall())
        self.totals.add(drained)
        for ack in self.central.acks(list(drained.advanced)):
            self.link.publish(p.ack_topic(ack.terminal, ack.epoch), p.encode(ack), retain=True)
        for feed in self.central.claim_feed(self.config.feed_limit, self.config.feed_chunk):
            self._publish_feed(p.branch_feed_topic(feed.branch), feed)
        for resend in self.central.claim_resends(self.config.resend_after_s, self.wall()):
            log.info("HQ: asking %s to resend from seq %d", resend.terminal, resend.from_seq)
            self.link.publish(p.resend_topic(resend.terminal), p.encode(resend))
        if now >= self._acks_due:
            # Two processes may publish one terminal's watermark in either order;
            # publishing recent ones again leaves the newest retained.
            self._acks_due = now + self.config.ack_refresh_s
            since = self.wall() - 3 * self.config.ack_refresh_s
            for ack in self.central.acks(since=since):
                self.link.publish(p.ack_topic(ack.terminal, ack.epoch), p.encode(ack), retain=True)
            self.central.forget_stored()
            self.central.backend.maintain()

    def _publish_feed(self, topic: str, feed: p.Feed) -> None:
        """Publish within what the broker takes (a terminal pulls what it missed)."""
        try:
            messages = p.encode_feed(feed, p.room(self.link.max_packet_size, topic))
        except p.ProtocolError as exc:
            log.error("HQ: %s", exc)
            return
        for payload in messages:
            self.link.publish(topic, payload)

    def _node_status(self, online: bool) -> bytes:
        return p.encode(
            p.NodeStatus(
                node=self.config.node, state="online" if online else "offline", at=iso(utc_now())
            )
        )

    # -- LinkHandler --------------------------------------------------------------------

    def connected(self, session_present: bool) -> None:
        group = self.config.share_group
        self.link.subscribe(
            p.shared(group, p.ALL_EVENTS),
            p.shared(group, p.ALL_PULLS),
            # Not shared: retained statuses are not sent to shared subscriptions.
            p.ALL_STATUS,
        )
        self.link.publish(
            p.node_status_topic(self.config.node), self._node_status(True), retain=True
        )
        # Messages received on the previous connection were never acknowledged: the
        # broker sends them again, so the copies queued here are dropped.
        self._events.clear()
        self._pulls.clear()
        self._statuses.clear()
        self._acks_due = 0.0
        self._housekeeping_due = 0.0

    def message(self, message: mqtt.MQTTMessage) -> None:
        generation = self.link.generation
        topic = message.topic
        payload = bytes(message.payload)
        sender = p.sender_of(topic)
        try:
            terminal = p.terminal_of(topic)
            kind = topic.rsplit("/", 1)[1]
            if kind == "events":
                batch = p.decode(p.EventBatch, payload, topic)
                self._check_sender(batch.terminal, terminal, topic)
                self._events.append(Received(batch, message.mid, generation))
            elif kind == "pull":
                pull = p.decode(p.Pull, payload, topic)
                self._check_sender(pull.terminal, terminal, topic)
                self._pulls.append(Received(pull, message.mid, generation))
            elif kind == "status" and payload:  # an empty retained message clears it
                status = p.decode(p.Presence, payload, topic)
                self._check_sender(status.terminal, terminal, topic)
                self._statuses.append(Received(status, message.mid, generation))
            else:
                self.link.ack(message.mid, generation)
        except Exception as exc:  # whatever a message holds, it never stops HQ
            text = str(exc) if isinstance(exc, p.ProtocolError) else f"{topic!r}: {exc!r}"
            log.warning("HQ: %s", text)
            self.totals.problem(text)
            # Recorded (naming the sender) between messages; acknowledged now, since
            # it will never be valid.
            key = (text, sender)
            self._refused[key] = self._refused.get(key, 0) + 1
            self.link.ack(message.mid, generation)

    @staticmethod
    def _check_sender(claimed: str, terminal: str, topic: str) -> None:
        if claimed != terminal:
            raise p.ProtocolError(
                f"terminal {terminal} sent a message on {topic!r} that claims to be from"
                f" terminal {claimed!r}; refused"
            )
