"""HQ on PostgreSQL: the same ledger rules, and two HQ processes sharing the load.

Runs against a fresh database on the local server (127.0.0.1:5432, user postgres).
Without a server the tests are skipped, loudly; with POSD_REQUIRE_PG=1 they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.hq import Central
from daemon.hq.pg import PgBackend
from daemon.ledger import SaleLine
from daemon.ledger.remote import apply_remote_many, head_seq, outbox
from daemon.replication import Replicator
from daemon.replication import protocol as p
from tests.ledger_fixtures import make_ledger
from tests.mqtt_broker import (
    Broker,
    HqThread,
    RawClient,
    fast_config,
    fresh_pg_database,
    running_broker,
    wait_until,
)
from tests.test_hq_ingest import batches, watermark


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    yield from fresh_pg_database()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path)


def test_postgresql_hq_keeps_the_same_ledger(pg_dsn: str, tmp_path: Path) -> None:
    central = Central(PgBackend(pg_dsn))
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    t1.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(12)], actor="ann")
    parts = batches(t1)
    for part in [parts[3], parts[1], parts[0], parts[1], *parts[2:]]:
        central.ingest([part])
    assert watermark(central, t1) == head_seq(t1)
    for feed in central.claim_feed():
        apply_remote_many(t2, [(e.body, e.hash) for e in feed.events if e.terminal != "T2"])
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 100)], actor="bob")
    t2.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1", 100)], actor="sue")
    central.ingest(batches(t1, after=watermark(central, t1)))
    assert central.ingest(batches(t2)).conflicts == ["LAP LX-1"]
    [conflict] = central.conflicts()
    done = central.resolve("LAP", "LX-1", keep=conflict["events"][0], note="T1 first")
    assert done["state"]["customer"] == "Dana"
    report = central.verify()  # PostgreSQL's projection equals a replay in SQLite
    assert report.ok, report.finding
    central.close()
    # A second process on the same database finds HQ's identity and schema in place.
    again = Central(PgBackend(pg_dsn))
    assert again.status()["events"] == report.events
    again.close()


def test_two_hq_processes_share_the_load_with_nothing_stored_twice(
    pg_dsn: str, broker: Broker, tmp_path: Path
) -> None:
    first = HqThread(broker.url, pg=pg_dsn, client_id="posd-hq-1")
    second = HqThread(broker.url, pg=pg_dsn, client_id="posd-hq-2")
    watcher = RawClient(broker.url, "watcher")
    watcher.subscribe(p.ALL_NODE_STATUS)
    wait_until(  # both members of the shared subscription are there before terminals send
        lambda: all(
            b'"online"' in (watcher.messages.get(p.node_status_topic(node)) or [b""])[-1]
            for node in ("posd-hq-1", "posd-hq-2")
        ),
        30,
        "both HQ processes to be online",
    )
    watcher.close()
    lanes = []
    for n in range(3):
        path = tmp_path / f"t{n}.db"
        ledger = make_ledger(path, terminal=f"T{n}", branch=f"B{n % 2}")
        replicator = Replicator(fast_config(broker.url, batch_events=20), path)  # type: ignore[arg-type]
        replicator.start()
        lanes.append((ledger, replicator))
    for round_ in range(4):
        for n, (ledger, _) in enumerate(lanes):
            ledger.receive(
                f"PO-{n}-{round_}",
                "Acme",
                "LAP",
                [f"T{n}-{round_}-{i}" for i in range(150)],
                actor="ann",
            )
    for ledger, replicator in lanes:
        head = head_seq(ledger)
        assert replicator.wait_for(lambda s, h=head: s.acked_seq == h, 60), replicator.status
        replicator.stop()
    first.stop()
    second.stop()
    assert first.node is not None and second.node is not None
    shares = (first.node.totals.stored, second.node.totals.stored)
    expected = sum(head_seq(ledger) for ledger, _ in lanes)
    assert sum(shares) == expected and min(shares) > 0, shares
    central = Central(PgBackend(pg_dsn))
    stored = central.backend.run(
        lambda tx: tx.execute(
            "SELECT terminal, seq, hash FROM events WHERE terminal != 'HQ'"
        ).fetchall()
    )
    assert len(stored) == expected
    assert {(t, s, h) for t, s, h in stored} == {
        (ledger.terminal, seq, digest)
        for ledger, _ in lanes
        for seq, _, digest in outbox(ledger, 0, 10**9)
    }
    assert central.verify().ok
    assert all(s["parked"] == 0 for s in central.status()["streams"])
    central.close()
