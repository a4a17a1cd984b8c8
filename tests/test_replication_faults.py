"""Faults against a real mosquitto: a killed terminal, a terminal on another's topic,
duplicated and reordered deliveries, a late will."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger
from daemon.ledger.audit import verify_chain
from daemon.ledger.remote import head_seq, outbox
from daemon.replication import Replicator
from daemon.replication import protocol as p
from tests.ledger_fixtures import make_ledger
from tests.mqtt_broker import (
    ROOT,
    Broker,
    HqThread,
    RawClient,
    TerminalProcess,
    fast_config,
    hq_watermark,
    needs_mosquitto,
    running_broker,
    wait_until,
)
from tests.test_hq_ingest import batches


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path)


def hq_events(hq_db: Path, terminal: str) -> dict[int, str]:
    central = Central(SqliteBackend(hq_db))
    try:
        rows = central.backend.run(
            lambda tx: tx.execute(
                "SELECT seq, hash FROM events WHERE terminal = ?", [terminal]
            ).fetchall()
        )
        assert central.verify().ok
    finally:
        central.close()
    return {int(seq): digest for seq, digest in rows}


def test_terminal_killed_mid_publish_resumes_without_loss_or_double(
    broker: Broker, tmp_path: Path
) -> None:
    hq_db = tmp_path / "hq.db"
    hq = HqThread(broker.url, db=hq_db)
    ledger_path = tmp_path / "t1.db"
    make_ledger(ledger_path, terminal="T1").close()
    process = TerminalProcess(ledger_path, broker.url, sell=3000)
    wait_until(lambda: hq_watermark(hq_db, "T1") > 50, 60, "HQ to store the first receipts")
    # With HQ away its watermark stands still, so whatever the terminal publishes
    # from here on is out and unconfirmed when it is killed.
    hq.stop()
    stalled = hq_watermark(hq_db, "T1")
    ledger = Ledger.open(ledger_path)
    wait_until(lambda: head_seq(ledger) > stalled + 300, 60, "the terminal to sell on")
    process.kill()  # kill -9: no goodbye, events half-published
    assert verify_chain(ledger).ok  # every receipt is wholly there or wholly absent
    head = head_seq(ledger)
    hq = HqThread(broker.url, db=hq_db)
    restarted = TerminalProcess(ledger_path, broker.url)
    wait_until(lambda: hq_watermark(hq_db, "T1") == head, 60, "HQ to catch up after restart")
    restarted.stop()
    hq.stop()
    mine = {seq: digest for seq, _, digest in outbox(ledger, 0, 10**9)}
    assert hq_events(hq_db, "T1") == mine


def test_a_terminal_cannot_publish_on_another_terminals_topic(tmp_path: Path) -> None:
    acl = (ROOT / "systemd" / "mosquitto" / "acl").read_text()
    users = {"hq": "hq-secret", "T1": "t1-secret", "T2": "t2-secret"}
    needs_mosquitto()
    broker = Broker(tmp_path / "broker", users=users, acl=acl)
    broker.start()
    try:
        (tmp_path / "hq.pw").write_text("hq-secret\n")
        (tmp_path / "t1.pw").write_text("t1-secret\n")
        hq_db = tmp_path / "hq.db"
        hq = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from daemon.cli import main; main()",
                "hq",
                "--db",
                str(hq_db),
                "run",
                "--broker",
                broker.url,
                "--username",
                "hq",
                "--password-file",
                str(tmp_path / "hq.pw"),
                "--json",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
        t1.receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
        honest = Replicator(
            fast_config(broker.url, username="T1", password_file=tmp_path / "t1.pw"),  # type: ignore[arg-type]
            tmp_path / "t1.db",
        )
        honest.start()
        assert honest.wait_for(lambda s: s.acked_seq == head_seq(t1), 30), honest.status

        # T2 logs in with its own password and publishes a forged batch as T1.
        forger = make_ledger(tmp_path / "forged.db", terminal="T1")
        rogue = RawClient(broker.url, "posd-T2", username="T2", password="t2-secret")
        forged = p.encode(batches(forger)[0])
        assert rogue.publish(p.events_topic("T1"), forged).value == 0x87  # type: ignore[attr-defined]
        assert rogue.publish(p.events_topic("T2"), b"{}").value < 0x80  # type: ignore[attr-defined]
        rogue.close()

        # A terminal set up with another terminal's user: every batch is refused
        # (PUBACK "Not authorized"), none counts as sent, and its status says why.
        (tmp_path / "t2.pw").write_text("t2-secret\n")
        wrong = Replicator(
            fast_config(  # type: ignore[arg-type]
                broker.url, username="T2", password_file=tmp_path / "t2.pw", client_id="posd-T2"
            ),
            tmp_path / "forged.db",
        )
        wrong.start()
        assert wrong.wait_for(
            lambda s: "refused events 1-3: Not authorized" in (s.last_error or ""), 30
        ), wrong.status
        assert wrong.status.acked_seq == 0
        wrong.stop()
        honest.stop()
        hq.send_signal(signal.SIGTERM)
        out, err = hq.communicate(timeout=20)
        assert hq.returncode == 0, err
        totals = json.loads(out)
        assert totals["stored"] == head_seq(t1)
        [problem] = totals["problems"]  # T2's own, malformed, batch
        assert "'posd/v1/t/T2/events' is not a valid EventBatch v1" in problem
        assert set(hq_events(hq_db, "T1").values()) == {d for _, _, d in outbox(t1, 0, 10**9)}
    finally:
        broker.stop()


def test_events_the_broker_refuses_are_not_taken_as_sent(tmp_path: Path) -> None:
    """PUBACK with a refusal reason is not success: the events are sent again later."""
    needs_mosquitto()
    # An ACL that forgot the terminal's events topic (status and HQ's topics are there).
    acl = (
        "pattern readwrite posd/v1/t/%u/status\npattern write posd/v1/t/%u/pull\n"
        "pattern read posd/v1/hq/%u/#\nuser hq\ntopic readwrite posd/#\n"
    )
    broker = Broker(tmp_path / "broker", users={"T1": "pw", "hq": "pw"}, acl=acl)
    broker.start()
    try:
        (tmp_path / "pw").write_text("pw")
        hq_db = tmp_path / "hq.db"
        hq = HqThread(broker.url, db=hq_db, username="hq", password_file=tmp_path / "pw")
        t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
        config = fast_config(broker.url, username="T1", password_file=tmp_path / "pw")
        replicator = Replicator(config, tmp_path / "t1.db")  # type: ignore[arg-type]
        replicator.start()
        assert replicator.wait_for(
            lambda s: "refused events 1-3: Not authorized" in (s.last_error or ""), 30
        ), replicator.status
        assert replicator.status.connected and replicator.status.acked_seq == 0
        # The ACL is fixed and reloaded: the same events go through.
        (broker.workdir / "acl").write_text(acl + "pattern write posd/v1/t/%u/events\n")
        assert broker.process is not None
        broker.process.send_signal(signal.SIGHUP)
        assert replicator.wait_for(lambda s: s.acked_seq == head_seq(t1), 30), replicator.status
        assert replicator.status.last_error is None
        replicator.stop()
        hq.stop()
    finally:
        broker.stop()


def test_duplicated_and_reordered_deliveries_and_a_missing_one(
    broker: Broker, tmp_path: Path
) -> None:
    hq_db = tmp_path / "hq.db"
    hq = HqThread(broker.url, db=hq_db, resend_after_s=0.5)
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t1.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(60)], actor="ann")
    parts = batches(t1, size=7)
    withheld = parts[3]
    shuffled = [b for b in parts if b is not withheld] * 2
    random.Random(7).shuffle(shuffled)
    terminal = RawClient(broker.url, "posd-T1")
    terminal.subscribe(p.to_terminal_filter("T1"))
    for part in shuffled:
        terminal.publish(p.events_topic("T1"), p.encode(part))
    wait_until(lambda: hq_watermark(hq_db, "T1") == withheld.first - 1, 30, "HQ up to the gap")

    def resent_from() -> set[int]:
        seen = terminal.messages.get(p.resend_topic("T1"), [])
        return {p.decode(p.Resend, m, "resend").from_seq for m in seen}

    # Earlier gaps (batches arriving out of order) may have been asked for on the way.
    wait_until(lambda: withheld.first in resent_from(), 30, "a resend request for the gap")
    terminal.publish(p.events_topic("T1"), p.encode(withheld))
    head = head_seq(t1)
    wait_until(lambda: hq_watermark(hq_db, "T1") == head, 30, "HQ to fill the gap")
    ack_topic = p.ack_topic("T1", t1.epoch)
    wait_until(
        lambda: any(
            p.decode(p.Ack, m, ack_topic).seq == head for m in terminal.messages.get(ack_topic, [])
        ),
        30,
        "the retained watermark",
    )
    terminal.close()
    hq.stop()
    assert hq_events(hq_db, "T1") == {seq: d for seq, _, d in outbox(t1, 0, 10**9)}


def test_a_late_will_does_not_leave_the_terminal_offline(broker: Broker, tmp_path: Path) -> None:
    hq_db = tmp_path / "hq.db"
    hq = HqThread(broker.url, db=hq_db)
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    replicator = Replicator(fast_config(broker.url), tmp_path / "t1.db")  # type: ignore[arg-type]
    for _ in range(2):  # a second connection, so there is an earlier one to have a will
        replicator.start()
        assert replicator.wait_for(lambda s: s.connected, 20)
        replicator.stop()
    replicator.start()
    assert replicator.wait_for(lambda s: s.connected, 20)
    watcher = RawClient(broker.url, "watcher")
    watcher.subscribe(p.status_topic("T1"))
    topic = p.status_topic("T1")

    def retained() -> p.Presence | None:
        seen = watcher.messages.get(topic)
        return p.decode(p.Presence, seen[-1], topic) if seen else None

    wait_until(lambda: (r := retained()) is not None and r.state == "online", 20, "the birth")
    birth = retained()
    assert birth is not None
    # The will of an earlier connection, arriving after this connection's birth.
    late = birth.model_copy(update={"session": birth.session - 1, "state": "offline"})
    watcher.publish(topic, p.encode(late), retain=True)
    wait_until(
        lambda: (
            (r := retained()) is not None and r.state == "online" and r.session == birth.session
        ),
        20,
        "the terminal to say it is online again",
    )
    central = Central(SqliteBackend(hq_db))
    [terminal] = central.status()["terminals"]
    central.close()
    assert (terminal["online"], terminal["session"]) == (1, birth.session)
    watcher.close()
    replicator.stop()
    hq.stop()
    del t1
