"""Hostile MQTT payloads at HQ: whatever arrives on a terminal's topics (event batches,
presence, pulls), HQ answers with a problem naming the sender or with the work asked
for, acknowledges every message once (so none sits in the broker's in-flight window),
and an honest terminal's events are stored meanwhile.

The property test drives HQ's message handler and its work loop with a stand-in link
(no broker); the others run against a real mosquitto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.bench.mosquitto import Broker
from daemon.cli import build
from daemon.config.replication import BrokerConfig
from daemon.hq import HqConfig, HqNode
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger, UnitRef
from daemon.ledger.remote import head_seq, outbox
from daemon.replication import Replicator
from daemon.replication import protocol as p
from tests.ledger_fixtures import make_ledger
from tests.mqtt_broker import (
    HqThread,
    RawClient,
    fast_config,
    hq_watermark,
    needs_mosquitto,
    wait_until,
)
from tests.test_hq_ingest import batches


class StandInLink:
    """What HqNode's loop needs of its link: connected, publishing, acknowledging."""

    def __init__(self) -> None:
        self.connected = True
        self.generation = 1
        self.acked: list[int] = []
        self.published: list[tuple[str, bytes]] = []
        self.max_packet_size = None

    def step(self, timeout: float) -> None:
        pass

    def ack(self, mid: int, generation: int) -> None:
        self.acked.append(mid)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        self.published.append((topic, payload))
        return len(self.published)


def message(topic: str, payload: bytes, mid: int) -> mqtt.MQTTMessage:
    found = mqtt.MQTTMessage(mid=mid, topic=topic.encode(errors="surrogateescape"))
    found.payload = payload
    return found


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HqNode, StandInLink]]:
    tmp = tmp_path_factory.mktemp("hq")
    hq = HqNode(
        HqConfig(broker=BrokerConfig(url="mqtt://127.0.0.1:1")), SqliteBackend(tmp / "hq.db")
    )
    link = StandInLink()
    hq.link = link  # type: ignore[assignment]
    yield hq, link
    hq.central.close()


def honest_payloads(ledger: Ledger) -> dict[str, dict[str, Any]]:
    batch = batches(ledger, size=100)[0]
    return {
        "events": json.loads(p.encode(batch)),
        "status": json.loads(
            p.encode(
                p.Presence(
                    terminal=ledger.terminal,
                    branch="B1",
                    epoch=ledger.epoch,
                    session=3,
                    state="online",
                    at="2026-11-23T09:00:00.000Z",
                )
            )
        ),
        "pull": json.loads(p.encode(p.Pull(terminal=ledger.terminal, branch="B1", after=0))),
    }


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
ids = st.sampled_from(["T1", "T2", "", "T/1", "+", "#", "$SYS", " T1", "T\x00", "x" * 70])


@st.composite
def payload(draw: st.DrawFn, examples: dict[str, dict[str, Any]]) -> tuple[str, bytes]:
    """(topic, payload): a valid payload changed in a few places, or junk."""
    kind = draw(st.sampled_from(["events", "status", "pull", "other"]))
    terminal = draw(st.one_of(st.just("T9"), ids))
    topic = f"posd/v1/t/{terminal}/{kind}"
    if kind == "other" or draw(st.integers(0, 9)) == 0:
        return topic, draw(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
    body = json.loads(json.dumps(examples[kind]))
    body["terminal"] = terminal if draw(st.booleans()) else body["terminal"]
    for _ in range(draw(st.integers(0, 3))):
        target = body
        events = body.get("events")
        if isinstance(events, list) and events and all(isinstance(e, dict) for e in events):
            target = draw(st.sampled_from(events)) if draw(st.booleans()) else body
        key = draw(st.sampled_from([*sorted(target), "extra"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return topic, json.dumps(body).encode()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_payload_on_a_terminal_topic_is_acknowledged_once_and_never_stops_hq(
    node: tuple[HqNode, StandInLink], data: st.DataObject
) -> None:
    hq, link = node
    honest = make_ledger(None, terminal="T9")
    examples = honest_payloads(honest)
    sent = data.draw(st.lists(payload(examples), min_size=1, max_size=6))
    start = len(link.acked)
    mids = []
    for mid, (topic, body) in enumerate(sent, start=10_000 + start * 10):
        hq.message(message(topic, body, mid))
        mids.append(mid)
    # The honest terminal's batch after the junk.
    hq.message(message(p.events_topic("T9"), p.encode(batches(honest, size=100)[0]), 1))
    for _ in range(3):
        hq.step()
    acked = link.acked[start:]
    assert sorted(acked) == sorted([*mids, 1])  # each message once, none left in flight
    assert not hq._events and not hq._statuses and not hq._pulls and not hq._refused
    status = hq.central.status()
    assert {s["terminal"]: s["acked"] for s in status["streams"]}.get("T9", 0) >= 1
    # Every problem names the terminal whose topic the message came on.
    for problem in status["problems"]:
        assert problem["terminal"] is not None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    needs_mosquitto()
    started = Broker(tmp_path / "broker", extra=["max_inflight_messages 20"])
    started.start()
    yield started
    started.stop()


def test_hostile_messages_fill_nothing_and_name_their_sender(
    broker: Broker, tmp_path: Path
) -> None:
    """Absurd sessions (before: an integer SQLite cannot hold, never acknowledged, so the
    broker's in-flight window for HQ filled up and HQ got nothing more), a terminal
    claiming to be another, junk and a message over 1 MiB: each a problem naming the
    sender, and the honest terminal's events all stored."""
    db = tmp_path / "hq.db"
    hq = HqThread(broker.url, db=db)
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t1.receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
    rogue = RawClient(broker.url, "rogue")
    try:
        presence = honest_payloads(t1)["status"]
        for n in range(60):  # three times the broker's in-flight window for HQ
            absurd = presence | {"session": 10**30 + n}
            rogue.publish(p.status_topic("T1"), json.dumps(absurd).encode())
        claimed = p.encode(batches(make_ledger(None, terminal="T1"))[0])
        rogue.publish(p.events_topic("T2"), claimed)  # T2's topic, claiming to be T1
        rogue.publish(p.pull_topic("T3"), b"\xff\xfe not json")
        rogue.publish(p.events_topic("T4"), b"[" * (p.MAX_MESSAGE_BYTES + 1))
        replicator = Replicator(fast_config(broker.url), tmp_path / "t1.db")  # type: ignore[arg-type]
        replicator.start()
        head = head_seq(t1)
        wait_until(lambda: hq_watermark(db, "T1") == head, 30, "HQ to store T1's events")
        replicator.stop()

        def problems() -> list[dict[str, Any]]:
            result = CliRunner().invoke(build(), ["hq", "--db", str(db), "problems", "--json"])
            return list(json.loads(result.output)["problems"])

        def seen() -> dict[str, Any]:
            return {pr["terminal"]: pr for pr in problems()}

        wait_until(
            lambda: len(found := seen()) == 4 and found["T1"]["seen"] == 60,
            30,
            "four problems, one of them seen 60 times",
        )
        found = seen()
        assert "session" in found["T1"]["message"]
        assert "claims to be from terminal 'T1'" in found["T2"]["message"]
        assert "not a valid Pull" in found["T3"]["message"]
        assert "is 1,048,577 bytes" in found["T4"]["message"]
    finally:
        rogue.close()
        hq.stop()


def test_messages_keep_within_the_brokers_packet_limit(tmp_path: Path) -> None:
    """Events batched by count alone (200 of 2 KB: 400 KB) would make a broker that takes
    96 KB packets drop the connection; the terminal and HQ (its feed) read the limit
    from the broker and fit it."""
    needs_mosquitto()
    broker = Broker(tmp_path / "broker", extra=["max_packet_size 98304"])
    broker.start()
    db = tmp_path / "hq.db"
    hq = HqThread(broker.url, db=db)
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    for n in range(120):  # names at their longest: HQ forwards these to the branch's terminals
        t1.define_product(f"P{n}", f"Product {n} " + "long description " * 6, actor="ann")
    t1.receive("PO-1", "ACME", "LAP", ["LX-1"], actor="ann")
    t1.repair_open(
        "R-1",
        UnitRef("LAP", "LX-1"),
        actor="ann",
        technician="bo",
        intake_condition="ok",
        fault="f",
    )
    for n in range(120):  # notes at their longest: 2 KB events
        t1.repair_step("R-1", "diagnosis", actor="bo", note=f"step {n} " + "x" * 1990)
    sizes = [len(b) for _, b, _ in outbox(t1, 0, 10**9)]
    assert sum(sizes) > 240_000 and max(sizes) < 98304
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")  # same branch: gets T1's products
    replicator = Replicator(fast_config(broker.url), tmp_path / "t1.db")  # type: ignore[arg-type]
    other = Replicator(fast_config(broker.url), tmp_path / "t2.db")  # type: ignore[arg-type]
    replicator.start()
    other.start()
    try:
        head = head_seq(t1)
        assert replicator.wait_for(lambda s: s.acked_seq == head, 60), replicator.status
        assert replicator.status.last_error is None
        assert other.wait_for(lambda s: t2.product("P119") is not None, 60), other.status
    finally:
        replicator.stop()
        other.stop()
        hq.stop()
        broker.stop()
