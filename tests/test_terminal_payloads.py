"""Hostile MQTT payloads at a terminal: what arrives on the topics it reads (HQ's acks,
resend requests, the branch feed, its own status, HQ processes' status) never moves
its replication cursor past what HQ may have, never stores an event HQ's protocol
check would refuse, never advances the feed past what was applied, and the honest
messages after it still work. Driven through the replication thread's own message
handler, without a broker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.events import body_hash, canonical_json
from daemon.ledger.remote import head_seq, replication_cursor, state
from daemon.replication import ReplicationConfig
from daemon.replication import protocol as p
from daemon.replication.bodies import check_event
from daemon.replication.terminal import _Worker
from tests.ledger_fixtures import make_ledger
from tests.test_hq_ingest import batches


@pytest.fixture(scope="module")
def hq_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[p.Feed], Ledger]]:
    """HQ's feed for branch B1 after another terminal (T2) received and sold there."""
    tmp = tmp_path_factory.mktemp("hq")
    central = Central(SqliteBackend(tmp / "hq.db"))
    t2 = make_ledger(tmp / "t2.db", terminal="T2")
    t2.receive("PO-9", "Acme", "LAP", [f"LZ-{i}" for i in range(6)], actor="sue")
    central.ingest(batches(t2, size=100))
    feeds = [f for f in central.claim_feed(chunk=4) if f.branch == "B1"]
    central.close()
    yield feeds, t2


def message(topic: str, payload: bytes) -> mqtt.MQTTMessage:
    found = mqtt.MQTTMessage(mid=1, topic=topic.encode())
    found.payload = payload
    return found


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def changed(draw: st.DrawFn, body: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*sorted(body), "extra"]))
        inner = body.get(key)
        if depth < 2 and isinstance(inner, list) and inner and isinstance(inner[0], dict):
            index = draw(st.integers(0, len(inner) - 1))
            inner[index] = changed(draw, inner[index], depth + 1)
        elif depth < 2 and isinstance(inner, dict) and inner and draw(st.booleans()):
            body[key] = changed(draw, inner, depth + 1)
        elif draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(json_values)
    return body


@st.composite
def payloads(draw: st.DrawFn, ledger: Ledger, feeds: list[p.Feed]) -> tuple[str, bytes]:
    """(topic, payload) for one of the terminal's topics: a valid message changed in a
    few places, one about someone else, or junk."""
    head = head_seq(ledger)
    examples: dict[str, tuple[str, dict[str, Any]]] = {
        "ack": (
            p.ack_topic("T1", ledger.epoch),
            {"v": 1, "terminal": "T1", "epoch": ledger.epoch, "seq": head},
        ),
        "resend": (
            p.resend_topic("T1"),
            {"v": 1, "terminal": "T1", "epoch": ledger.epoch, "from_seq": 1, "reason": "gap"},
        ),
        "feed": (p.branch_feed_topic("B1"), json.loads(p.encode(draw(st.sampled_from(feeds))))),
        "answer": (p.answer_topic("T1"), json.loads(p.encode(feeds[0]))),
        "status": (
            p.status_topic("T1"),
            {
                "v": 1,
                "terminal": "T1",
                "branch": "B1",
                "epoch": ledger.epoch,
                "session": 1,
                "state": "offline",
                "at": "2026-11-23T09:00:00.000Z",
            },
        ),
        "node": (
            p.node_status_topic("posd-hq"),
            {"v": 1, "node": "posd-hq", "state": "online", "at": "2026-11-23T09:00:00Z"},
        ),
    }
    name = draw(st.sampled_from(sorted(examples)))
    topic, body = examples[name]
    if draw(st.integers(0, 9)) == 0:
        return topic, draw(st.binary(max_size=48))
    body = json.loads(json.dumps(body))
    if name in ("feed", "answer") and draw(st.booleans()):
        # An event of the feed changed and hashed again: its hash matches its text.
        body = json.loads(p.encode(feeds[0]))
        entry = draw(st.sampled_from(body["events"]))
        event = changed(draw, json.loads(entry["body"]))
        entry["body"] = canonical_json(event)
        entry["hash"] = body_hash(entry["body"])
        return topic, json.dumps(body).encode()
    return topic, json.dumps(changed(draw, body)).encode()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_nothing_a_terminal_reads_moves_it_past_what_is_true(
    hq_feed: tuple[list[p.Feed], Ledger],
    data: st.DataObject,
) -> None:
    feeds, _ = hq_feed
    ledger = make_ledger(None, terminal="T1")
    ledger.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2"], actor="ann")
    worker = _Worker(
        ReplicationConfig(url="mqtt://127.0.0.1:1"), ledger, lambda status: None, time.monotonic
    )
    head = head_seq(ledger)
    position = 0
    for topic, payload in data.draw(st.lists(payloads(ledger, feeds), min_size=1, max_size=8)):
        worker.message(message(topic, payload))
        cursor = replication_cursor(ledger)
        assert cursor <= head  # never past its own events
        assert worker.outbound.acked == cursor or worker.outbound.acked <= head
        now = state(ledger, worker.feed_key)
        assert now >= position  # the feed position never goes back
        position = now
    for text, digest in ledger.db.execute(
        "SELECT body, hash FROM events WHERE terminal != 'T1'"
    ).fetchall():
        check_event(text, digest)  # nothing HQ's own check would refuse was stored
    assert verify_chain(ledger).ok and verify_projection(ledger) is None
    # Every feed position it claims to have applied, it has: the honest feed from
    # there on is applied, and an honest ack moves the cursor.
    for feed in feeds:
        worker.message(message(p.branch_feed_topic("B1"), p.encode(feed)))
    assert state(ledger, worker.feed_key) == feeds[-1].last
    assert ledger.unit("LAP", "LZ-5") is not None
    ack = p.Ack(terminal="T1", epoch=ledger.epoch, seq=head)
    worker.message(message(p.ack_topic("T1", ledger.epoch), p.encode(ack)))
    assert replication_cursor(ledger) == head
    worker.close()
    ledger.close()
