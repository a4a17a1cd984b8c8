"""Terminal → broker → HQ and back, against a real mosquitto: the normal day and its faults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.remote import outbox, replication_cursor
from daemon.replication import Replicator
from tests.ledger_fixtures import make_ledger
from tests.mqtt_broker import Broker, HqThread, fast_config, running_broker, wait_until


class Lane:
    """A terminal: its ledger (as the lane writes it) and its replication thread."""

    def __init__(self, path: Path, url: str, terminal: str, branch: str = "B1") -> None:
        self.path = path
        self.url = url
        self.ledger = make_ledger(path, terminal=terminal, branch=branch)
        self.replicator = Replicator(fast_config(url), path)  # type: ignore[arg-type]

    def start(self) -> Lane:
        self.replicator.start()
        return self

    def head(self) -> int:
        rows = outbox(self.ledger, 0, 10**9)
        return rows[-1][0] if rows else 0

    def wait_synced(self, timeout: float = 30) -> None:
        head = self.head()
        ok = self.replicator.wait_for(lambda s: s.acked_seq >= head, timeout)
        assert ok, f"{self.ledger.terminal}: HQ confirmed {self.replicator.status} of {head}"

    def stop(self) -> None:
        self.replicator.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path)


@pytest.fixture
def hq_path(tmp_path: Path) -> Path:
    return tmp_path / "hq.db"


@pytest.fixture
def hq(broker: Broker, hq_path: Path) -> Iterator[HqThread]:
    node = HqThread(broker.url, db=hq_path)
    yield node
    node.stop()


def assert_hq_matches(hq_path: Path, *lanes: Lane) -> None:
    """HQ has exactly every terminal's own events, chained, and its projection is a replay."""
    central = Central(SqliteBackend(hq_path))
    try:
        report = central.verify()
        assert report.ok, report.finding
        stored = {
            row[0]: row[1]
            for row in central.backend.run(
                lambda tx: tx.execute(
                    "SELECT uuid, hash FROM events WHERE terminal != 'HQ'"
                ).fetchall()
            )
        }
        expected: dict[str, str] = {}
        for lane in lanes:
            for _, text, digest in outbox(lane.ledger, 0, 10**9):
                expected[text[text.index('"uuid":"') + 8 :][:36]] = digest
        assert stored == expected
    finally:
        central.close()
    for lane in lanes:
        assert verify_chain(lane.ledger).ok
        assert verify_projection(lane.ledger) is None


def test_events_reach_hq_and_the_cursor_follows_hqs_watermark(
    broker: Broker, hq: HqThread, hq_path: Path, tmp_path: Path
) -> None:
    t1 = Lane(tmp_path / "t1.db", broker.url, "T1").start()
    t2 = Lane(tmp_path / "t2.db", broker.url, "T2").start()
    t1.ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(40)], actor="ann")
    t1.ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-3", 129900)], actor="bob")
    t1.wait_synced()
    t2.wait_synced()
    assert replication_cursor(Ledger.open(t1.path)) == t1.head()
    # T2, at the same branch, learns of T1's stock and sale from HQ's branch feed.
    wait_until(lambda: t2.ledger.unit("LAP", "LX-3") is not None, what="T1's units at T2")
    wait_until(
        lambda: t2.ledger.unit("LAP", "LX-3").state.value == "sold",  # type: ignore[union-attr]
        what="T1's sale at T2",
    )
    # ...so T2 refuses to sell a unit T1 sold.
    with pytest.raises(Exception, match=r"already sold|sold at branch"):
        t2.ledger.sell("INV-9", "Eve", [SaleLine("LAP", "LX-3")], actor="sue")
    t1.stop()
    t2.stop()
    assert_hq_matches(hq_path, t1, t2)
    assert t2.replicator.status.backlog == 0


def test_lane_keeps_selling_with_the_broker_down_and_catches_up(
    broker: Broker, hq: HqThread, hq_path: Path, tmp_path: Path
) -> None:
    t1 = Lane(tmp_path / "t1.db", broker.url, "T1").start()
    t1.ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(30)], actor="ann")
    t1.wait_synced()
    broker.stop()
    wait_until(lambda: not t1.replicator.status.connected, what="the terminal to notice")
    for i in range(20):
        t1.ledger.sell(f"INV-{i}", "Dana", [SaleLine("LAP", f"LX-{i}", 100)], actor="bob")
    wait_until(lambda: t1.replicator.status.backlog == 20, what="the backlog to show")
    assert t1.replicator.status.last_error  # the lane can say why
    broker.start()
    t1.wait_synced()
    t1.stop()
    assert_hq_matches(hq_path, t1)


def test_hq_down_and_restarted_loses_nothing(broker: Broker, hq_path: Path, tmp_path: Path) -> None:
    hq = HqThread(broker.url, db=hq_path)
    t1 = Lane(tmp_path / "t1.db", broker.url, "T1").start()
    t1.ledger.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2"], actor="ann")
    t1.wait_synced()
    hq.stop()
    for i in range(50):
        t1.ledger.receive(f"PO-{i + 2}", "Acme", "LAP", [f"MX-{i}"], actor="ann")
    head = t1.head()
    # Published to the broker (PUBACKed), but HQ has not stored them: no progress.
    wait_until(lambda: t1.replicator.status.inflight == 0, what="PUBACKs")
    assert t1.replicator.status.acked_seq < head
    hq = HqThread(broker.url, db=hq_path)
    t1.wait_synced()
    hq.stop()
    t1.stop()
    assert_hq_matches(hq_path, t1)


def test_broker_restart_with_messages_in_flight(
    broker: Broker, hq: HqThread, hq_path: Path, tmp_path: Path
) -> None:
    t1 = Lane(tmp_path / "t1.db", broker.url, "T1").start()
    t1.ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(3000)], actor="ann")
    wait_until(lambda: t1.replicator.status.acked_seq > 0, what="the first events at HQ")
    broker.restart()  # no persistence: whatever it held is gone
    t1.ledger.receive("PO-2", "Acme", "LAP", [f"MX-{i}" for i in range(100)], actor="ann")
    t1.wait_synced(60)
    t1.stop()
    assert_hq_matches(hq_path, t1)


def test_two_terminals_selling_one_unit_offline_is_one_conflict_until_resolved(
    broker: Broker, hq: HqThread, hq_path: Path, tmp_path: Path
) -> None:
    t1 = Lane(tmp_path / "t1.db", broker.url, "T1").start()
    t2 = Lane(tmp_path / "t2.db", broker.url, "T2").start()
    t1.ledger.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2"], actor="ann")
    t1.wait_synced()
    wait_until(lambda: t2.ledger.unit("LAP", "LX-1") is not None, what="the receipt at T2")
    broker.stop()
    t1.ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 100)], actor="bob")
    t2.ledger.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1", 100)], actor="sue")
    broker.start()
    t1.wait_synced()
    t2.wait_synced()

    def flagged(lane: Lane) -> bool:
        unit = lane.ledger.unit("LAP", "LX-1")
        return unit is not None and "conflict" in {f.value for f in unit.flags}

    wait_until(lambda: flagged(t1) and flagged(t2), what="the conflict on both terminals")
    central = Central(SqliteBackend(hq_path))
    conflicts = central.conflicts()
    assert [(c["product"], c["serial"]) for c in conflicts] == [("LAP", "LX-1")]
    assert len(conflicts[0]["events"]) == 2
    t1_sale = next(
        u
        for u in conflicts[0]["events"]
        if t1.ledger.db.execute(
            "SELECT 1 FROM events WHERE uuid = ? AND terminal = 'T1'", [u]
        ).fetchone()
    )
    central.resolve("LAP", "LX-1", keep=t1_sale, note="T1 sold it first")
    central.close()
    wait_until(lambda: not flagged(t1) and not flagged(t2), what="the resolution everywhere")
    for lane in (t1, t2):
        unit = lane.ledger.unit("LAP", "LX-1")
        assert unit is not None and unit.invoice == "INV-1" and unit.customer == "Dana"
    # Both sales stay in the log.
    sales = t2.ledger.db.execute("SELECT count(*) FROM events WHERE kind = 'sell'").fetchone()
    assert sales[0] == 2
    t1.wait_synced()
    t2.wait_synced()
    t1.stop()
    t2.stop()
    assert Central(SqliteBackend(hq_path)).conflicts() == []
    assert_hq_matches(hq_path, t1, t2)


def test_hq_flag_reaches_the_branch(
    broker: Broker, hq: HqThread, hq_path: Path, tmp_path: Path
) -> None:
    from daemon.rules.units import Flag

    t1 = Lane(tmp_path / "t1.db", broker.url, "T1").start()
    t1.ledger.receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
    t1.wait_synced()
    central = Central(SqliteBackend(hq_path))
    central.flag("LAP", "LX-1", Flag.STOLEN, reason="police report 4711")
    central.close()
    wait_until(
        lambda: Flag.STOLEN in t1.ledger.unit("LAP", "LX-1").flags,  # type: ignore[union-attr]
        what="the stolen flag at the terminal",
    )
    with pytest.raises(Exception, match="stolen"):
        t1.ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1")], actor="bob")
    t1.ledger.set_flag([UnitRef("LAP", "LX-1")], Flag.ON_HOLD, actor="ann", reason="hold")
    t1.wait_synced()
    t1.stop()
    assert_hq_matches(hq_path, t1)
