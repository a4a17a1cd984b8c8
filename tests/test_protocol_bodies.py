"""Event bodies against protocol v1: every event posd writes passes, every change that
breaks a field's type or range is refused before a database sees it.

The first test runs a store's day that writes every kind of event (at two terminals
and HQ, with a fork, its resolution and flags merged on the way) and checks each
event against `daemon.replication.bodies`: a field added to an event without adding
it to the protocol's table fails here, not at a customer's HQ. The property tests
throw changed bodies of every kind at HQ next to an honest terminal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.events import body_hash, canonical_json
from daemon.ledger.kinds import Kind
from daemon.ledger.remote import apply_remote_many, head_seq, outbox
from daemon.ledger.stocktake import close_count, count_scan, open_count
from daemon.replication.bodies import EventRefused, check_event
from daemon.replication.protocol import EventBatch, WireEvent
from daemon.rules.units import Flag, Op, State
from daemon.rules.warranty import Cause, ClaimLine, LineKind
from tests.ledger_fixtures import FixedClock, make_ledger
from tests.test_hq_ingest import batches, watermark


def _sync(central: Central, *ledgers: Ledger) -> None:
    """Every terminal's new events to HQ, and HQ's feed back to every terminal."""
    for ledger in ledgers:
        central.ingest(batches(ledger, after=watermark(central, ledger), size=50))
    feeds = central.claim_feed()
    for ledger in ledgers:
        for feed in feeds:
            if feed.branch == ledger.branch:
                foreign = [
                    (e.body, e.hash)
                    for e in feed.events
                    if (e.terminal, e.epoch) != (ledger.terminal, ledger.epoch)
                ]
                apply_remote_many(ledger, foreign)


def a_store_day(tmp_path: Path) -> tuple[Central, Ledger, Ledger]:
    """Two terminals of one branch and HQ, after a day that wrote every kind of event."""
    clock = FixedClock()
    central = Central(SqliteBackend(tmp_path / "hq.db"))
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1", clock=clock)
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2", clock=clock)
    lap = [f"LX-{i}" for i in range(12)]
    t1.receive("PO-1", "Acme", "LAP", lap, actor="ann", cost_cents=90000, lot="L7")
    _sync(central, t1, t2)
    t1.sell(
        "INV-1",
        "Dana",
        [SaleLine("LAP", "LX-0", 129900), SaleLine("CABLE", None, 999, 2)],
        actor="bob",
    )
    with pytest.raises(Refusal):
        t1.return_unit(
            "INV-1", "LAP", "LX-5", actor="bob", condition="ok", disposition=State.IN_STOCK
        )  # the wrong unit: recorded
    t1.return_unit(
        "INV-1",
        "LAP",
        "LX-0",
        actor="bob",
        condition="scratched",
        disposition=State.IN_STOCK,
        reason="changed mind",
    )
    t1.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1", 129900)], actor="bob")
    t1.repair_open(
        "RP-1",
        UnitRef("LAP", "LX-1"),
        actor="ann",
        technician="tom",
        intake_condition="cracked",
        fault="screen",
        accessories=["charger"],
    )
    t1.warranty_claim(
        "WC-1",
        UnitRef("LAP", "LX-1"),
        [ClaimLine("screen", 12000, LineKind.PART, Cause.DEFECT)],
        actor="tom",
    )
    t1.repair_step("RP-1", "qc_passed", actor="tom", diagnosis="panel", parts=["panel"])
    t1.repair_close("RP-1", actor="tom", outcome="repaired", collected_by="Eve")
    t1.replace(
        "RPL-1",
        UnitRef("LAP", "LX-1"),
        UnitRef("LAP", "LX-2"),
        actor="ann",
        old_disposition=State.QUARANTINED,
        reason="second fault",
    )
    t1.move(Op.RELEASE, [UnitRef("LAP", "LX-1")], actor="ann", reason="checked")
    for op in (Op.QUARANTINE, Op.RETURN_TO_SUPPLIER):
        t1.move(op, [UnitRef("LAP", "LX-3")], actor="ann", reason="rma")
    t1.move(Op.WRITE_OFF, [UnitRef("LAP", "LX-4")], actor="ann", reason="broken", manager="M")
    t1.move(Op.MARK_LOST, [UnitRef("LAP", "LX-5")], actor="ann", reason="gone")
    t1.move(Op.MARK_FOUND, [UnitRef("LAP", "LX-5")], actor="ann", reason="back")
    t1.transfer_out("TR-1", "B2", [UnitRef("LAP", "LX-6")], actor="ann")
    t1.transfer_in("TR-1", [UnitRef("LAP", "LX-6")], actor="ann", branch="B2")
    t1.sell("INV-3", "Fay", [SaleLine("LAP", "LX-6", 1)], actor="bob", manager="Mo")
    t1.set_flag([UnitRef("LAP", "LX-7")], Flag.STOLEN, actor="ann", reason="police 1")
    t1.set_flag([UnitRef("LAP", "LX-7")], Flag.STOLEN, actor="ann", reason="found", on=False)
    sale = t1.sell("INV-4", "Gil", [SaleLine("LAP", "LX-8", 5)], actor="bob")
    t1.correct(sale.events[-1], actor="ann", manager="M", reason="mis-scan")
    open_count(t1, "CNT-1", actor="ann")
    count_scan(t1, "CNT-1", "LAP", "LX-9", actor="ann")
    count_scan(t1, "CNT-1", "LAP", "NOT-HERE", actor="ann")
    close_count(t1, "CNT-1", actor="ann")
    t1.move(Op.RELOCATE, [UnitRef("LAP", "LX-11")], actor="ann", reason="count", branch="B1")
    t1.record_release("mia", method="pin", code="wrong_unit", message="locked")
    t1.record_refused_manager(
        actor="bob", who="Zed", method="pin", action="override", code="bad_pin", message="wrong PIN"
    )
    _sync(central, t1, t2)
    # Both terminals sell LX-10 without hearing of the other: a fork, which HQ resolves;
    # both flag LX-11, each with a flag the other did not know of: merged.
    t2.set_flag([UnitRef("LAP", "LX-11")], Flag.ON_HOLD, actor="sue", reason="check")
    t1.set_flag([UnitRef("LAP", "LX-11")], Flag.STOLEN, actor="ann", reason="police 2")
    t1.sell("INV-5", "Hal", [SaleLine("LAP", "LX-10", 5)], actor="bob")
    t2.sell("INV-6", "Ida", [SaleLine("LAP", "LX-10", 5)], actor="sue")
    _sync(central, t1, t2)
    _sync(central, t1, t2)
    for conflict in central.conflicts():
        central.resolve("LAP", conflict["serial"], keep=conflict["events"][0], note="first")
    central.flag("LAP", "LX-9", Flag.RECALLED, reason="notice 9")
    _sync(central, t1, t2)
    return central, t1, t2


def test_every_kind_of_event_posd_writes_is_one_protocol_v1_allows(tmp_path: Path) -> None:
    central, t1, t2 = a_store_day(tmp_path)
    assert central.status()["ok"] is True, central.status()["problems"]
    assert watermark(central, t1) == head_seq(t1) and watermark(central, t2) == head_seq(t2)
    kinds = set()
    for store in (central.backend.db, t1.db, t2.db):  # type: ignore[attr-defined]
        for body, digest in store.execute("SELECT body, hash FROM events").fetchall():
            kinds.add(check_event(body, digest).body.kind)
    assert kinds == set(Kind), f"no example of {set(Kind) - kinds}"
    assert central.verify().ok
    central.close()


# -- changed bodies ---------------------------------------------------------------


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """One body of each kind, from a store's day."""
    central, t1, t2 = a_store_day(tmp_path_factory.mktemp("day"))
    found: dict[str, dict[str, Any]] = {}
    for store in (central.backend.db, t1.db, t2.db):  # type: ignore[attr-defined]
        for (body,) in store.execute("SELECT body FROM events ORDER BY id DESC").fetchall():
            parsed = json.loads(body)
            found.setdefault(parsed["kind"], parsed)
    central.close()
    yield found


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


@st.composite
def changed(draw: st.DrawFn, example: dict[str, Any]) -> dict[str, Any]:
    """The example with a few fields (top level, in data, set or was) changed or dropped."""
    body = json.loads(json.dumps(example))
    for _ in range(draw(st.integers(1, 3))):
        part = draw(st.sampled_from(["top", "data", "set", "was"]))
        target = body if part == "top" or not isinstance(body.get(part), dict) else body[part]
        keys = sorted(target) or ["x"]
        key = draw(st.sampled_from([*keys, "extra"]))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(json_values)
    return body


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Central, Ledger]]:
    """HQ, and an honest terminal that sends something with every example."""
    tmp = tmp_path_factory.mktemp("hq")
    central = Central(SqliteBackend(tmp / "hq.db"))
    yield central, make_ledger(None, terminal="T2")
    central.close()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), kind=st.sampled_from(sorted(Kind)))
def test_a_changed_body_is_refused_or_stored_as_a_valid_event_never_a_crash(
    examples: dict[str, dict[str, Any]],
    hq: tuple[Central, Ledger],
    data: st.DataObject,
    kind: Kind,
) -> None:
    central, honest = hq
    body = data.draw(changed(examples[kind]))
    sender = make_ledger(None, terminal=f"F{uuid.uuid4().hex[:8]}")
    sender.receive("PO-1", "Acme", "LAP", [f"{sender.terminal}-1"], actor="ann")
    rows = outbox(sender, 0, 100)
    body |= {
        "terminal": sender.terminal,
        "epoch": sender.epoch,
        "seq": len(rows) + 1,
        "prev": rows[-1][2],
        "uuid": str(uuid.uuid4()),
    }
    text = canonical_json(body)
    try:
        check_event(text, body_hash(text))
        allowed = True
    except EventRefused as refusal:
        assert str(refusal)
        allowed = False
    events = [WireEvent(hash=h, body=b) for _, b, h in rows]
    events.append(WireEvent(hash=body_hash(text), body=text))
    honest.receive(f"PO-{uuid.uuid4().hex[:6]}", "Acme", "LAP", [uuid.uuid4().hex[:8]], actor="b")
    report = central.ingest(
        [
            EventBatch(
                terminal=sender.terminal,
                epoch=sender.epoch,
                branch="B1",
                first=1,
                last=len(events),
                events=events,
            ),
            *batches(honest, after=watermark(central, honest), size=100),
        ]
    )
    assert watermark(central, honest) == head_seq(honest)  # the others go on
    stored = watermark(central, sender) == len(events)
    # Refused by the check: never stored, and said why. Stored: a valid event, and
    # HQ's ledger still equals a replay of its log.
    assert stored or report.problems
    assert allowed or not stored
    assert central.verify().ok
    held = {t["terminal"]: t["ok"] for t in central.status()["terminals"]}[sender.terminal]
    assert held is False or stored
