"""HQ never stalls on one bad event.

A terminal's chain-valid event that protocol v1 does not allow (a null state, a
price that is a list, an amount past SQLite's integers), that reuses another
event's id, or that the database refuses for a reason no check foresaw, is a
problem naming the terminal and seq. That terminal's chain waits at the event
(each event chains from the one before, so nothing after it can be stored), every
other terminal goes on, and `posd hq status` says which terminal needs attention.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from daemon.cli import build
from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.hq.pg import PgBackend
from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.events import body_hash, canonical_json
from daemon.ledger.remote import head_seq, outbox
from daemon.replication.protocol import EventBatch, WireEvent
from tests.ledger_fixtures import make_ledger
from tests.mqtt_broker import fresh_pg_database
from tests.test_hq_ingest import batches, count, watermark

Body = dict[str, Any]


REUSE = "the newest event's id"


def forged_next(ledger: Ledger, change: Callable[[Body], Body]) -> WireEvent:
    """The event after the ledger's newest own one, chained and hashed as posd would,
    but with its body changed by `change` (starting from the newest event's body)."""
    rows = outbox(ledger, 0, 10**9)
    last = json.loads(rows[-1][1])
    body = change(last | {"uuid": str(uuid.uuid4())})
    body |= {"seq": rows[-1][0] + 1, "prev": rows[-1][2]}
    if body["uuid"] == REUSE:
        body["uuid"] = last["uuid"]
    text = canonical_json(body)
    return WireEvent(hash=body_hash(text), body=text)


def batch_of(ledger: Ledger, events: list[WireEvent], first: int) -> EventBatch:
    return EventBatch(
        terminal=ledger.terminal,
        epoch=ledger.epoch,
        branch=ledger.branch,
        first=first,
        last=first + len(events) - 1,
        events=events,
    )


def _reuse_uuid(body: Body) -> Body:
    return body | {"uuid": REUSE}  # the newest event's own id, under the next seq


def _with_set(**fields: object) -> Callable[[Body], Body]:
    return lambda body: body | {"set": {**body["set"], **fields}, "serial": "LX-NEW"}


def _sale(data: Body) -> Callable[[Body], Body]:
    return lambda body: body | {"kind": "sell", "data": data}


# Each a chain-valid event that crashed HQ (every terminal's events stayed unstored,
# the batch retried forever) before payloads were checked against the protocol.
BAD_EVENTS: dict[str, tuple[Callable[[Body], Body], str]] = {
    "state null (a NOT NULL column)": (_with_set(state=None), "set.state"),
    "a reused event id under a new seq": (_reuse_uuid, "reuses the id"),
    "a number where the branch goes (sorting mixed types)": (
        _with_set(branch=5),
        "set.branch",
    ),
    "a list as price_cents (the activity sums)": (_sale({"price_cents": [1]}), "price_cents"),
    "a cost past SQLite's integer": (_with_set(cost_cents=2**70), "set.cost_cents"),
    "a price past any money": (_sale({"price_cents": 10**40}), "price_cents"),
    "a negative price": (_sale({"price_cents": -5}), "price_cents"),
    "NaN as accuracy": (
        lambda body: (
            {k: v for k, v in body.items() if k not in ("product", "serial", "set", "was")}
            | {"kind": "count_close", "unit_prev": None, "data": {"accuracy": float("nan")}}
        ),
        "data.accuracy",
    ),
    "a branch that is an MQTT wildcard": (_with_set(branch="B/#"), "set.branch"),
    "a day that is no day": (_with_set(sold_on="2026-02-30"), "set.sold_on"),
    "a kind this version does not know": (
        lambda body: body | {"kind": "teleport"},
        "does not know",
    ),
    "a field this version does not know": (
        lambda body: body | {"data": {**body["data"], "colour": "red"}},
        "data.colour",
    ),
    "an unknown flag": (_with_set(flags=["cursed"]), "set.flags"),
    "a NUL in a name": (
        lambda body: body | {"data": {**body["data"], "party": "Ac\x00me"}},
        "NUL",
    ),
    "a unit HQ never heard of without a state": (
        lambda body: (
            body
            | {
                "serial": "LX-GHOST",
                "set": {"flags": ["stolen"]},
                "kind": "flag",
                "data": {"flag": "stolen", "reason": "x"},
            }
        ),
        "has no record of",
    ),
    "an event that says it is another terminal's (a spoof)": (
        lambda body: body | {"terminal": "T2"},
        "but the event says terminal T2",
    ),
    "a product HQ was never sent": (
        lambda body: body | {"product": "NOPE"},
        "which HQ has not been sent",
    ),
}


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    central = Central(SqliteBackend(tmp_path / "hq.db"))
    yield central
    central.close()


def two_terminals(tmp_path: Path) -> tuple[Ledger, Ledger]:
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    t1.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2"], actor="ann")
    t2.receive("PO-2", "Acme", "LAP", ["LX-3"], actor="bob")
    return t1, t2


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_one_bad_event_is_a_problem_naming_its_terminal_and_seq_and_the_rest_go_on(
    central: Central, tmp_path: Path, case: str
) -> None:
    change, named = BAD_EVENTS[case]
    t1, t2 = two_terminals(tmp_path)
    good = [WireEvent(hash=h, body=b) for _, b, h in outbox(t1, 0, 100)]
    bad = forged_next(t1, change)
    bad_seq = len(good) + 1
    # The bad event in the middle of T1's batch, with T2's events in the same call.
    after = json.loads(bad.body) | {"seq": bad_seq + 1, "prev": bad.hash}
    after["uuid"] = str(uuid.uuid4())
    text = canonical_json(after)
    behind = WireEvent(hash=body_hash(text), body=text)
    report = central.ingest([batch_of(t1, [*good, bad, behind], 1), *batches(t2)])

    assert watermark(central, t2) == head_seq(t2)  # T2 is not held up
    assert watermark(central, t1) == bad_seq - 1  # T1's events before the bad one stored
    assert count(central, f"terminal = 'T1' AND seq >= {bad_seq}") == 0
    [problem] = report.problems
    assert named in problem and "T1" in problem

    status = central.status()
    assert status["ok"] is False
    by_name = {t["terminal"]: t for t in status["terminals"]}
    assert by_name["T2"]["ok"] is True
    assert by_name["T1"]["ok"] is False and by_name["T1"]["held"] == [
        {"epoch": t1.epoch, "seq": bad_seq}
    ]
    [listed] = status["problems"]
    assert (listed["terminal"], listed["seq"]) == ("T1", bad_seq)
    # Held: HQ does not ask for it again, and the same event sent again (the terminal
    # sends from HQ's watermark when it stalls) counts up on the same problem.
    assert central.claim_resends(after_s=0, now=10**10) == []
    central.ingest([batch_of(t1, [bad, behind], bad_seq)])
    [again] = central.status()["problems"]
    assert (again["id"], again["seen"]) == (listed["id"], 2)
    assert central.verify().ok


def test_an_event_the_database_refuses_holds_only_its_own_terminal(
    central: Central, tmp_path: Path
) -> None:
    """A refusal no check foresaw (here: two terminals give two products one GTIN, which
    the products table keeps unique) is found, named, and holds that terminal only."""
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    t1.define_product("TAB", "Tablet", actor="ann", gtin="04012345678901")
    t1.receive("PO-1", "Acme", "TAB", ["TB-1"], actor="ann")
    t2.define_product("WATCH", "Watch", actor="bob", gtin="04012345678901")
    t2.receive("PO-2", "Acme", "LAP", ["LX-9"], actor="bob")
    central.ingest(batches(t1, size=100))
    t3 = make_ledger(tmp_path / "t3.db", terminal="T3")
    t3.receive("PO-3", "Acme", "LAP", ["LX-7"], actor="cy")
    report = central.ingest([*batches(t2, size=100), *batches(t3, size=100)])

    watch = next(s for s, b, _ in outbox(t2, 0, 100) if '"WATCH"' in b)
    assert watermark(central, t2) == watch - 1
    assert watermark(central, t3) == head_seq(t3)
    assert watermark(central, t1) == head_seq(t1)
    [problem] = report.problems
    assert f"terminal T2 epoch {t2.epoch} seq {watch}" in problem and "gtin" in problem
    found = json.loads(
        CliRunner()
        .invoke(build(), ["hq", "--db", str(tmp_path / "hq.db"), "status", "--json"])
        .output
    )
    assert {t["terminal"]: t["ok"] for t in found["terminals"]} == {
        "T1": True,
        "T2": False,
        "T3": True,
    }
    assert central.verify().ok


def test_an_oversized_event_is_never_written_and_hq_refuses_one(
    central: Central, tmp_path: Path
) -> None:
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    head = head_seq(t1)
    # Every value has its own cap, but a list of them can still add up: 600 accessories
    # of 128 characters each.
    t1.receive("PO-9", "Acme", "LAP", ["LX-9"], actor="ann")
    head = head_seq(t1)
    accessories = [f"{n:03d}" + "x" * 125 for n in range(600)]
    with pytest.raises(Refusal, match="at most 65,536 bytes"):
        t1.repair_open(
            "RP-1",
            UnitRef("LAP", "LX-9"),
            actor="ann",
            technician="tess",
            intake_condition="as brought in",
            fault="no power",
            accessories=accessories,
        )
    assert head_seq(t1) == head  # nothing written
    # 40,000 characters (a message may carry them) but 80,000 bytes.
    huge = forged_next(t1, lambda body: body | {"data": {**body["data"], "name": "é" * 40_000}})
    report = central.ingest(
        [batch_of(t1, [WireEvent(hash=h, body=b) for _, b, h in outbox(t1, 0, 100)] + [huge], 1)]
    )
    assert watermark(central, t1) == head
    assert any("bytes; an event is at most 65,536" in p for p in report.problems)


def test_dismissing_problems_makes_a_terminal_ok_again_unless_it_is_held(
    central: Central, tmp_path: Path
) -> None:
    db = tmp_path / "hq.db"
    t1, t2 = two_terminals(tmp_path)
    central.ingest(batches(t2))
    central.note_problem("terminal T2 sent garbage", "T2")
    bad = forged_next(t1, _with_set(state=None))
    good = [WireEvent(hash=h, body=b) for _, b, h in outbox(t1, 0, 100)]
    central.ingest([batch_of(t1, [*good, bad], 1)])

    def cli(*args: str, code: int = 0) -> dict[str, Any]:
        result = CliRunner().invoke(build(), ["hq", "--db", str(db), *args, "--json"])
        assert result.exit_code == code, result.output
        return dict(json.loads(result.output))

    found = cli("status", code=1)
    assert found["ok"] is False
    assert {t["terminal"]: t["problems"] for t in found["terminals"]} == {"T1": 1, "T2": 1}
    assert cli("dismiss", "--terminal", "T2")["dismissed"] == 1
    assert cli("dismiss", "--terminal", "T1")["dismissed"] == 1
    found = cli("status", code=1)
    ok = {t["terminal"]: t["ok"] for t in found["terminals"]}
    assert ok == {"T1": False, "T2": True}  # T1's chain still waits at the bad event
    assert [p["terminal"] for p in cli("problems", "--all")["problems"]] == ["T1", "T2"]
    assert cli("problems")["problems"] == []


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    yield from fresh_pg_database()


def test_postgresql_hq_holds_only_the_terminal_whose_event_it_cannot_store(
    pg_dsn: str, tmp_path: Path
) -> None:
    central = Central(PgBackend(pg_dsn))
    try:
        t1, t2 = two_terminals(tmp_path)
        t1.define_product("TAB", "Tablet", actor="ann", gtin="04012345678901")
        t2.define_product("WATCH", "Watch", actor="bob", gtin="04012345678901")
        t2.sell("INV-1", "Dana", [SaleLine("LAP", "LX-3", 100)], actor="bob")
        central.ingest(batches(t1, size=100))
        # A product price past PostgreSQL's bigint.
        bad = forged_next(t1, lambda body: body | {"data": {**body["data"], "price_cents": 2**63}})
        good = batch_of(t1, [bad], head_seq(t1) + 1)
        report = central.ingest([good, *batches(t2, size=100)])
        watch = next(s for s, b, _ in outbox(t2, 0, 100) if '"WATCH"' in b)
        assert watermark(central, t2) == watch - 1  # the GTIN PostgreSQL keeps unique
        assert watermark(central, t1) == head_seq(t1)
        assert len(report.problems) == 2
        assert {t["terminal"]: t["ok"] for t in central.status()["terminals"]} == {
            "T1": False,
            "T2": False,
        }
        t3 = make_ledger(tmp_path / "t3.db", terminal="T3")
        central.ingest(batches(t3))
        assert watermark(central, t3) == head_seq(t3)
        assert central.verify().ok
    finally:
        central.close()
