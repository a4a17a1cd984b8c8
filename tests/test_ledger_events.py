"""Event kinds and the typed view of an event body.

The bytes of an event are what its hash, and every later event's hash, rest on: the
golden texts here were produced before kinds became an enumeration, and must not move.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.events import (
    BodyTemplate,
    ChainHead,
    Change,
    EventBody,
    Stamp,
    body_hash,
    canonical_json,
    seal,
)
from daemon.ledger.kinds import Kind
from daemon.ledger.queries import events_of
from daemon.ledger.remote import RemoteEventError, outbox, parse_foreign
from daemon.replication.protocol import EventBatch, WireEvent
from daemon.rules.units import Flag, Op, State
from tests.ledger_fixtures import make_ledger

UUID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
SALE_TEXT = (
    '{"actor":"ann","at":"2026-11-23T09:00:00.000Z","branch":"B1",'
    '"data":{"party":"Zoë","price_cents":129900},"doc":{"no":"INV-1","type":"invoice"},'
    '"epoch":"e0e1e2e3e4e5e6e7","kind":"sell",'
    '"prev":"abababababababababababababababababababababababababababababababab",'
    '"product":"LAP","seq":42,"serial":"SN-1","set":{"invoice":"INV-1","state":"sold"},'
    '"terminal":"T1","unit_prev":"0190a1b2-0000-7000-8000-000000000000",'
    f'"uuid":"{UUID}","v":1,"was":{{"invoice":null,"state":"in_stock"}}}}'
)
SALE_HASH = "bb6ff96c7b5dfdcb72464c01eb62aaeff9069114ff2338c164ea74aeb1575752"
RELEASE_HASH = "98d3a88e8931d6357e52134300813214b1d0c25f3edcd368ad0f724e3d71100b"


class FixedIds:
    def next(self) -> str:
        return UUID


def _head() -> ChainHead:
    return ChainHead("T1", "e0e1e2e3e4e5e6e7", 41, "ab" * 32, FixedIds())  # type: ignore[arg-type]


STAMP = Stamp(at="2026-11-23T09:00:00.000Z", actor="ann", branch="B1")
SALE = Change(
    Kind.SELL,
    {"party": "Zoë", "price_cents": 129900},
    product="LAP",
    serial="SN-1",
    doc=("invoice", "INV-1"),
    set={"state": "sold", "invoice": "INV-1"},
    was={"state": "in_stock", "invoice": None},
    unit_prev="0190a1b2-0000-7000-8000-000000000000",
)


def test_an_event_hashes_to_the_same_bytes_as_before_kinds_were_an_enumeration() -> None:
    head = _head()
    sale = seal(SALE, STAMP, head)
    assert sale.text == SALE_TEXT
    assert sale.hash == SALE_HASH
    release = Change(
        Kind.LANE_RELEASE,
        {"terminal": "T1", "method": "pin", "reason": "wrong_unit", "message": "m"},
    )
    assert seal(release, STAMP, head).hash == RELEASE_HASH  # and the chain goes on the same


def test_a_bulk_template_writes_the_bytes_a_single_event_would() -> None:
    receipt = Change(
        Kind.RECEIVE,
        {"party": "Acme", "received_on": "2026-11-23"},
        product="LAP",
        serial="SN-7",
        doc=("po", "PO-1"),
        set={"state": "in_stock", "branch": "B1", "po": "PO-1", "supplier": "Acme"},
    )
    variables = ("serial", "doc.no", "set.po")
    template = BodyTemplate(receipt, STAMP, _head(), variables)
    _, _, text, digest = template.seal(_head(), ("SN-7", "PO-1", "PO-1"))
    single = seal(receipt, STAMP, _head())
    assert (text, digest) == (single.text, single.hash)
    assert '"kind":"receive"' in text


@pytest.mark.parametrize("op", list(Op))
def test_every_unit_operation_records_the_event_kind_of_its_name(op: Op) -> None:
    assert Kind.of(op).value == op.value


def test_the_view_reads_every_field_of_a_stored_event() -> None:
    event = EventBody.parse(SALE_TEXT)
    assert event.kind == Kind.SELL
    assert (event.uuid, event.terminal, event.epoch, event.seq) == (
        UUID,
        "T1",
        "e0e1e2e3e4e5e6e7",
        42,
    )
    assert event.prev == "ab" * 32
    assert (event.at, event.day, event.actor, event.branch) == (
        "2026-11-23T09:00:00.000Z",
        "2026-11-23",
        "ann",
        "B1",
    )
    assert event.at_datetime.isoformat() == "2026-11-23T09:00:00+00:00"
    assert event.data == {"party": "Zoë", "price_cents": 129900}
    assert event.doc == ("invoice", "INV-1")
    assert event.doc is not None and event.doc.label == "invoice INV-1"
    assert event.about_unit
    assert event.unit == ("LAP", "SN-1")
    assert event.unit_prev == "0190a1b2-0000-7000-8000-000000000000"
    assert event.after == {"state": "sold", "invoice": "INV-1"}
    assert event.before == {"state": "in_stock", "invoice": None}


def test_an_event_about_no_unit_and_no_document_says_so() -> None:
    head = _head()
    event = EventBody.parse(seal(Change(Kind.PRODUCT, {"code": "LAP"}), STAMP, head).text)
    assert event.kind == Kind.PRODUCT
    assert not event.about_unit
    assert (event.unit, event.product, event.serial, event.doc) == (None, None, None, None)
    assert (dict(event.after), dict(event.before)) == ({}, {})


def test_a_kind_from_a_newer_terminal_is_read_as_its_name() -> None:
    body = json.loads(SALE_TEXT) | {"kind": "teleport"}
    event = EventBody(body)
    assert event.kind == "teleport"
    assert event.kind not in set(Kind)


def test_every_event_the_ledger_writes_is_of_a_known_kind_and_reads_back_whole() -> None:
    ledger = make_ledger()
    ledger.receive("PO-1", "Acme", "LAP", ["SN-1", "SN-2", "SN-3"], actor="ann")
    ledger.sell("INV-1", "Zoë", [SaleLine("LAP", "SN-1"), SaleLine("CABLE")], actor="ann")
    ledger.return_unit(
        "INV-1", "LAP", "SN-1", actor="ann", condition="ok", disposition=State.IN_STOCK
    )
    ledger.move(Op.QUARANTINE, [UnitRef("LAP", "SN-2")], actor="ann", reason="dented")
    ledger.set_flag([UnitRef("LAP", "SN-3")], Flag.STOLEN, actor="ann", reason="police")
    ledger.record_release("mia", method="pin", code="wrong_unit", message="locked")
    kinds = {row[0] for row in ledger.db.execute("SELECT kind FROM events")}
    assert kinds <= {k.value for k in Kind}
    assert kinds >= {"product", "receive", "sell", "sell_item", "return", "quarantine", "flag"}
    for (text,) in ledger.db.execute("SELECT body FROM events"):
        raw: dict[str, Any] = json.loads(text)
        event = EventBody.parse(text)
        assert (event.kind, event.seq, event.uuid, event.actor) == (
            raw["kind"],
            raw["seq"],
            raw["uuid"],
            raw["actor"],
        )
        assert event.unit == ((raw["product"], raw["serial"]) if "product" in raw else None)
    releases = list(events_of(ledger, Kind.LANE_RELEASE))
    assert [(e.actor, e.data["reason"]) for e in releases] == [("mia", "wrong_unit")]


def test_receipts_are_not_read_by_kind() -> None:
    with pytest.raises(ValueError, match="receipts"):
        list(events_of(make_ledger(), Kind.RECEIVE))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
FIELDS = sorted(json.loads(SALE_TEXT))


@given(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)
def test_a_foreign_event_is_refused_or_reads_as_the_types_its_view_promises(
    changes: dict[str, Any], dropped: set[str]
) -> None:
    body = {k: v for k, v in (json.loads(SALE_TEXT) | changes).items() if k not in dropped}
    text = canonical_json(body)
    try:
        event = parse_foreign(text, body_hash(text)).body
    except RemoteEventError as error:
        assert str(error)  # a sentence, which HQ records as a problem
        return
    assert all(
        isinstance(value, str)
        for value in (event.kind, event.uuid, event.terminal, event.epoch, event.at)
    )
    assert isinstance(event.seq, int) and event.seq >= 1
    assert isinstance(event.actor, str) and isinstance(event.branch, str)
    assert isinstance(event.data, dict)
    assert event.doc is None or all(isinstance(part, str) for part in event.doc)
    assert event.unit is None or all(isinstance(part, str) for part in event.unit)
    assert event.unit_prev is None or isinstance(event.unit_prev, str)
    for fields in (event.after, event.before):
        assert isinstance(fields, dict)
        assert all(isinstance(flag, str) for flag in fields.get("flags", []))


@pytest.mark.parametrize(
    "change",
    [
        {"data": None},
        {"kind": ["sell"]},
        {"serial": 969},
        {"set": False},
        {"doc": [True]},
        {"unit_prev": {}},
        {"set": {"flags": "stolen"}},
    ],
)
def test_hq_records_a_misshapen_event_as_a_problem_and_stores_the_others(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    central = Central(SqliteBackend(tmp_path / "hq.db"))
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    t1.receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
    t2.receive("PO-2", "Acme", "LAP", ["LX-2"], actor="bob")
    rows = outbox(t1, 0, 100)
    bad = json.loads(rows[-1][1]) | change | {"seq": len(rows) + 1, "prev": rows[-1][2]}
    bad["uuid"] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
    text = canonical_json(bad)
    sent = [(b, h) for _, b, h in rows] + [(text, body_hash(text))]
    report = central.ingest(
        [_batch(t1, sent), _batch(t2, [(b, h) for _, b, h in outbox(t2, 0, 9)])]
    )
    # HQ's protocol check refuses it, naming the terminal and the seq.
    assert any(f"terminal T1 seq {len(rows) + 1}" in p for p in report.problems)
    acks = central.acks([(t1.terminal, t1.epoch), (t2.terminal, t2.epoch)])
    assert {a.terminal: a.seq for a in acks} == {"T1": len(rows), "T2": len(outbox(t2, 0, 100))}
    assert central.verify().ok


def _batch(ledger: Ledger, events: list[tuple[str, str]]) -> EventBatch:
    return EventBatch(
        terminal=ledger.terminal,
        epoch=ledger.epoch,
        branch=ledger.branch,
        first=1,
        last=len(events),
        events=[WireEvent(hash=h, body=b) for b, h in events],
    )
