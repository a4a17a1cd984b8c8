"""Replication resumes promptly after every outage, against a real mosquitto.

A terminal on its default settings builds a backlog while HQ is stopped (cleanly, or
killed while its broker session expires, so whatever was queued for it is gone) or
while the broker is down. Once HQ is back, HQ's watermark for the terminal must move
within RESUME_BOUND_S (10 s) and then everything arrives. Before, refused PUBACKs
("No matching subscribers") doubled a pause towards ack_timeout_max_s (600 s) that
HQ's ack did not end, and the reconnect backoff grew to 30 s: a terminal could sit
silent for minutes. `posd bench` measures the same as `replication_resume_s`.

While it waits, the terminal's status and its retained presence say so, and HQ shows
it (from that presence) once it is back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from daemon.bench.mosquitto import Broker
from daemon.bench.replication import RESUME_BOUND_S, HqProcess, wait_online
from daemon.cli import build
from daemon.ledger import Ledger
from daemon.ledger.remote import head_seq, outbox
from daemon.replication import ReplicationConfig, Replicator
from tests.ledger_fixtures import make_ledger
from tests.mqtt_broker import needs_mosquitto, wait_until
from tests.test_replication_faults import hq_events


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    needs_mosquitto()
    started = Broker(tmp_path / "broker")
    started.start()
    yield started
    started.stop()


def hq_status(db: Path) -> dict[str, Any]:
    result = CliRunner().invoke(build(), ["hq", "--db", str(db), "status", "--json"])
    assert result.exit_code in (0, 1), result.output
    return dict(json.loads(result.output))


def sell_for(ledger: Ledger, seconds: float, start: int) -> int:
    """Receipts written one by one, as a lane does, for `seconds`; how many."""
    deadline = time.monotonic() + seconds
    n = start
    while time.monotonic() < deadline:
        ledger.receive(f"PO-OUT-{n}", "Acme", "LAP", [f"OUT-{n:05d}"], actor="lane")
        n += 1
        time.sleep(0.25)
    return n - start


@pytest.mark.parametrize("outage", ["hq_stopped", "hq_killed", "broker_restarted"])
def test_a_terminal_with_a_backlog_resumes_within_the_bound_after_an_outage(
    broker: Broker, tmp_path: Path, outage: str
) -> None:
    db = tmp_path / "hq.db"
    # Killed, its session expires while it is away: what was queued for it is gone.
    expiry = 2 if outage == "hq_killed" else 600
    hq = HqProcess(broker.url, tmp_path, "posd-hq", db=db, session_expiry=expiry)
    ledger = make_ledger(tmp_path / "t1.db", terminal="T1")
    ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(20)], actor="ann")
    replicator = Replicator(ReplicationConfig(url=broker.url), tmp_path / "t1.db")
    try:
        wait_online(broker.url, ["posd-hq"])
        replicator.start()
        head = head_seq(ledger)
        assert replicator.wait_for(lambda s: s.acked_seq == head and s.hq_online, 30)

        if outage == "broker_restarted":
            broker.stop()
        else:
            hq.stop(kill=outage == "hq_killed")
        # Long enough for the pause after refused PUBACKs (before: 30 s at the first)
        # and the reconnect backoff (before: 16 s after 15 s away) to grow.
        sold = sell_for(ledger, 20.0 if outage == "broker_restarted" else 10.0, 0)
        status = replicator.status
        assert status.acked_seq == head and status.backlog == sold
        assert status.waiting_for_hq_since is not None or not status.connected
        if outage != "broker_restarted":
            assert status.hq_online is False and status.waiting_for_hq

        before = replicator.status.acked_seq
        if outage == "broker_restarted":
            broker.start()
        else:
            hq = HqProcess(broker.url, tmp_path, "posd-hq", db=db, session_expiry=expiry)
            wait_online(broker.url, ["posd-hq"], timeout=60)
        back = time.monotonic()
        assert replicator.wait_for(lambda s: s.acked_seq > before, RESUME_BOUND_S), (
            f"no event reached HQ within {RESUME_BOUND_S} s of {outage}: {replicator.status}"
        )
        assert time.monotonic() - back <= RESUME_BOUND_S
        head = head_seq(ledger)
        assert replicator.wait_for(lambda s: s.acked_seq == head, 60), replicator.status
        # Nothing lost, nothing doubled: HQ holds exactly the terminal's chain.
        assert hq_events(db, "T1") == {seq: d for seq, _, d in outbox(ledger, 0, 10**9)}
        # Caught up: the terminal says it no longer waits, and HQ shows that.
        assert replicator.wait_for(lambda s: s.waiting_for_hq_since is None, 30)
        wait_until(
            lambda: hq_status(db)["terminals"][0]["waiting_for_hq_since"] is None,
            30,
            "HQ to see the terminal is not waiting",
        )
        [terminal] = hq_status(db)["terminals"]
        assert terminal["ok"] and terminal["online"]
    finally:
        replicator.stop()
        hq.stop()


def test_hq_sees_from_the_retained_status_that_a_terminal_was_waiting(
    broker: Broker, tmp_path: Path
) -> None:
    """The terminal's retained presence carries its backlog and since when it waits:
    HQ back (and before it stores anything) shows the terminal as waiting for it."""
    db = tmp_path / "hq.db"
    ledger = make_ledger(tmp_path / "t1.db", terminal="T1")
    hq = HqProcess(broker.url, tmp_path, "posd-hq", db=db)
    replicator = Replicator(ReplicationConfig(url=broker.url), tmp_path / "t1.db")
    try:
        wait_online(broker.url, ["posd-hq"])
        replicator.start()
        head = head_seq(ledger)
        assert replicator.wait_for(lambda s: s.acked_seq == head, 30)
        hq.stop()
        sell_for(ledger, 1.0, 0)
        assert replicator.wait_for(lambda s: s.waiting_for_hq_since is not None, 30)
        time.sleep(6)  # the presence is republished at most every 5 s
        since = replicator.status.waiting_for_hq_since
        assert since is not None
        # HQ comes back, reads the retained presence: T1 has been waiting since then.
        central_seen: list[dict[str, Any]] = []

        def waiting_at_hq() -> bool:
            found = hq_status(db)["terminals"]
            central_seen[:] = found
            return bool(found) and found[0]["waiting_for_hq_since"] is not None

        replicator.stop()  # so that HQ's view is not overtaken by the catch-up
        hq = HqProcess(broker.url, tmp_path, "posd-hq", db=db)
        wait_until(waiting_at_hq, 30, "HQ to record the terminal's waiting status")
        [terminal] = central_seen
        assert terminal["waiting_for_hq_since"][:19] == since[:19]
        assert terminal["backlog"] >= 1
        text = CliRunner().invoke(build(), ["hq", "--db", str(db), "status"]).output
        assert "waiting for HQ since" in text
    finally:
        replicator.stop()
        hq.stop()
