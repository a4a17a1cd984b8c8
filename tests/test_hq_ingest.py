"""HQ's ingest without a broker: order, duplicates, gaps, tampering, presence, routing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.remote import apply_remote_many, outbox
from daemon.replication.protocol import EventBatch, Presence, WireEvent
from tests.ledger_fixtures import make_ledger


def batches(ledger: Ledger, after: int = 0, size: int = 3) -> list[EventBatch]:
    rows = outbox(ledger, after, 10**9)
    return [
        EventBatch(
            terminal=ledger.terminal,
            epoch=ledger.epoch,
            branch=ledger.branch,
            first=rows[i][0],
            last=rows[min(i + size, len(rows)) - 1][0],
            events=[WireEvent(hash=h, body=b) for _, b, h in rows[i : i + size]],
        )
        for i in range(0, len(rows), size)
    ]


def watermark(central: Central, ledger: Ledger) -> int:
    acks = central.acks([(ledger.terminal, ledger.epoch)])
    return acks[0].seq if acks else 0


def count(central: Central, where: str = "1 = 1") -> int:
    return int(
        central.backend.run(
            lambda tx: tx.execute(f"SELECT count(*) FROM events WHERE {where}").fetchone()[0]
        )
    )


@pytest.fixture
def central(tmp_path: Path) -> Central:
    return Central(SqliteBackend(tmp_path / "hq.db"))


@pytest.fixture
def t1(tmp_path: Path) -> Ledger:
    ledger = make_ledger(tmp_path / "t1.db", terminal="T1")
    ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(10)], actor="ann")
    return ledger


def test_reordered_and_duplicated_batches_are_stored_once_in_order(
    central: Central, t1: Ledger
) -> None:
    parts = batches(t1)
    assert len(parts) >= 4
    head = parts[-1].last
    for part in [parts[2], parts[3], parts[0], parts[2], *parts[4:], parts[1], parts[0]]:
        central.ingest([part])
    assert watermark(central, t1) == head
    assert count(central, "terminal = 'T1'") == head
    status = central.status()
    assert status["streams"][0]["parked"] == 0 and status["problems"] == []
    assert central.verify().ok


def test_a_gap_is_parked_and_the_terminal_asked_to_resend(central: Central, t1: Ledger) -> None:
    parts = batches(t1)
    central.ingest([parts[0]], now=1000.0)
    report = central.ingest([parts[2]], now=1001.0)
    assert report.parked == len(parts[2].events)
    assert watermark(central, t1) == parts[0].last
    assert central.claim_resends(after_s=5, now=1003.0) == []  # not yet
    [resend] = central.claim_resends(after_s=5, now=1006.5)
    assert (resend.terminal, resend.from_seq) == ("T1", parts[0].last + 1)
    assert central.claim_resends(after_s=5, now=1007.0) == []  # asked once per interval
    central.ingest([parts[1]], now=1008.0)
    assert watermark(central, t1) == parts[2].last
    assert central.status()["streams"][0]["parked"] == 0


def test_an_edited_event_is_refused_and_named(central: Central, t1: Ledger) -> None:
    parts = batches(t1)
    central.ingest([parts[0]])
    edited = parts[1].events[0].body.replace('"ann"', '"eve"')
    forged = parts[1].model_copy(
        update={
            "events": [WireEvent(hash=parts[1].events[0].hash, body=edited), *parts[1].events[1:]]
        }
    )
    report = central.ingest([forged])
    assert watermark(central, t1) == parts[0].last
    assert "does not match its text" in report.problems[0]
    # Rehashing the edit does not help: it no longer follows the event before it.
    digest = hashlib.sha256(edited.encode()).hexdigest()
    rehashed = parts[1].model_copy(
        update={"events": [WireEvent(hash=digest, body=edited), *parts[1].events[1:]]}
    )
    report = central.ingest([rehashed])
    assert "does not follow" in report.problems[0]
    assert any("does not follow" in p["message"] for p in central.status()["problems"])


def test_a_terminal_cannot_use_hqs_own_id(central: Central, tmp_path: Path) -> None:
    fake = make_ledger(tmp_path / "fake.db", terminal="HQ")
    report = central.ingest(batches(fake))
    assert report.stored == 0 and "HQ's own id" in report.problems[0]


def test_a_late_will_from_an_older_session_is_ignored(central: Central, t1: Ledger) -> None:
    def presence(session: int, state: str) -> Presence:
        return Presence(
            terminal="T1",
            branch="B1",
            epoch=t1.epoch,
            session=session,
            state=state,
            at="2026-11-23T09:00:00Z",
        )  # type: ignore[arg-type]

    central.presence([presence(4, "online")])
    central.presence([presence(3, "offline")])  # the will of connection 3, delivered late
    [terminal] = central.status()["terminals"]
    assert (terminal["session"], terminal["online"]) == (4, 1)
    central.presence([presence(4, "offline")])
    assert central.status()["terminals"][0]["online"] == 0


def test_a_transfer_reaches_the_destination_with_the_units_history(
    central: Central, t1: Ledger, tmp_path: Path
) -> None:
    t9 = make_ledger(tmp_path / "t9.db", terminal="T9", branch="B9")
    central.ingest(batches(t9))  # B9 exists; its terminal defined the same products
    t1.transfer_out("TR-1", "B9", [UnitRef("LAP", "LX-4")], actor="ann")
    central.ingest(batches(t1))
    feeds = [f for f in central.claim_feed() if f.branch == "B9"]
    events = [e for f in feeds for e in f.events if e.terminal != "T9"]
    apply_remote_many(t9, [(e.body, e.hash) for e in events])
    arriving = t9.unit("LAP", "LX-4")
    assert arriving is not None and arriving.state.value == "in_transit"
    assert t9.unit("LAP", "LX-5") is None  # B9 hears only of the unit coming its way
    t9.transfer_in("TR-1", [UnitRef("LAP", "LX-4")], actor="sam")
    central.ingest(batches(t9, after=watermark(central, t9)))
    assert central.verify().ok


def test_fork_is_one_conflict_and_resolution_keeps_the_chosen_sale(
    central: Central, t1: Ledger, tmp_path: Path
) -> None:
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    central.ingest(batches(t1))
    for feed in central.claim_feed():
        apply_remote_many(t2, [(e.body, e.hash) for e in feed.events if e.terminal != "T2"])
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 100)], actor="bob")
    t2.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1", 100)], actor="sue")
    central.ingest(batches(t1, after=watermark(central, t1)))
    report = central.ingest(batches(t2))
    assert report.conflicts == ["LAP LX-1"]
    [conflict] = central.conflicts()
    t2_sale = conflict["events"][1]
    with pytest.raises(ValueError, match="not one of the conflicting events"):
        central.resolve("LAP", "LX-1", keep="nope", note="?")
    done = central.resolve("LAP", "LX-1", keep=t2_sale, note="T2's customer has it")
    assert done["state"]["invoice"] == "INV-2" and done["state"]["flags"] == []
    assert central.conflicts() == []
    with pytest.raises(ValueError, match="no open conflict"):
        central.resolve("LAP", "LX-1", note="again")
    # A terminal's own conflict flag for the fork, arriving after the resolution,
    # is cleared again at once instead of reopening it.
    for feed in central.claim_feed():
        apply_remote_many(t1, [(e.body, e.hash) for e in feed.events if e.terminal != "T1"])
    late = batches(t1, after=watermark(central, t1))
    assert json.loads(late[0].events[0].body)["data"]["flag"] == "conflict"
    central.ingest(late)
    assert central.conflicts() == []
    body = central.backend.run(
        lambda tx: tx.execute(
            "SELECT body FROM events WHERE terminal = 'HQ' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
    )
    assert json.loads(body)["kind"] == "unflag"
    flags = central.backend.run(
        lambda tx: tx.execute("SELECT flags FROM units WHERE serial = 'LX-1'").fetchone()[0]
    )
    assert flags == ""
    assert central.verify().ok


def test_parked_copies_of_events_stored_meanwhile_are_dropped(central: Central, t1: Ledger) -> None:
    """A second HQ process that found the stream busy parks what it got; the one that
    was storing it may commit those very events first. Housekeeping drops the copies,
    and they never count as waiting."""
    parts = batches(t1)
    central.ingest(parts[:2])
    stale = parts[1].events[0]
    central.backend.run(
        lambda tx: tx.execute(
            "INSERT INTO hq_parked (terminal, epoch, seq, hash, body, parked_at)"
            " VALUES (?, ?, ?, ?, ?, 0)",
            ["T1", t1.epoch, parts[1].first, stale.hash, stale.body],
        )
    )
    assert central.status()["streams"][0]["parked"] == 0
    central.forget_stored()
    left = central.backend.run(lambda tx: tx.execute("SELECT count(*) FROM hq_parked").fetchone())
    assert left[0] == 0


def test_a_sale_a_manager_let_through_is_no_conflict_at_hq(central: Central, t1: Ledger) -> None:
    # A unit the ledger places at another branch needs a manager: the ledger writes the
    # override and then the sale, one after the other, for the same unit.
    t1.transfer_out("TR-1", "SOUTH", [UnitRef("LAP", "LX-1")], actor="ann")
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 129_900)], actor="ann", manager="Mia")
    events = [json.loads(body) for _, body, _ in outbox(t1, 0, 10**9)]
    override, sale = (e for e in events if e["kind"] in ("override", "sell"))
    assert override["kind"] == "override" and sale["kind"] == "sell"
    assert sale["unit_prev"] == override["uuid"]  # the sale follows the override
    report = central.ingest(batches(t1))
    assert report.conflicts == [] and central.conflicts() == []
    assert watermark(central, t1) == len(events)
