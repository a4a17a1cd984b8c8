"""posd import epcis: a supplier's advance ship notice registers each unit of a PO
(serial, lot, expiry), so receiving is one scan per unit; all or nothing; hostile
input is refused in words, never with a traceback."""

from __future__ import annotations

import json
from copy import deepcopy
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.epcis import asn
from daemon.epcis.asn import read_notice
from daemon.epcis.identifiers import Places
from daemon.ledger import Ledger, Refusal
from tests.epcis_fixtures import GTIN, export, units_of
from tests.ledger_fixtures import make_ledger

GTIN14 = "0" + GTIN


def notice(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-20T08:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def commissioning(*serials: str, lot: str = "L7", expiry: str = "2029-06-30") -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-11-01T08:00:00Z",
        "eventTimeZoneOffset": "+01:00",
        "epcList": [f"https://id.gs1.org/01/{GTIN14}/21/{s}" for s in serials],
        "action": "ADD",
        "bizStep": "commissioning",
        "ilmd": {"cbvmda:lotNumber": lot, "cbvmda:itemExpirationDate": expiry},
    }


def shipping(*epcs: str, po: str = "PO-7") -> dict[str, Any]:
    return {
        "eventID": "ni:///sha-256;00?ver=CBV2.0",
        "type": "ObjectEvent",
        "eventTime": "2026-11-20T08:00:00Z",
        "eventTimeZoneOffset": "+01:00",
        "epcList": list(epcs),
        "action": "OBSERVE",
        "bizStep": "urn:epcglobal:cbv:bizstep:shipping",
        "disposition": "in_transit",
        "bizTransactionList": [
            {"type": "po", "bizTransaction": f"urn:epcglobal:cbv:bt:4012345000009:{po}"}
        ],
    }


PACKING = {"type": "AggregationEvent", "eventTime": "2026-11-20T07:00:00Z",
           "eventTimeZoneOffset": "+01:00", "action": "ADD", "bizStep": "packing"}  # fmt: skip


def dl(serial: str) -> str:
    return f"https://id.gs1.org/01/{GTIN14}/21/{serial}"


@pytest.fixture
def ledger() -> Ledger:
    ledger = make_ledger()
    ledger.define_product("DRL", "Drill", actor="setup", gtin=GTIN)
    return ledger


def _lookup(ledger: Ledger) -> Any:
    from daemon.cli.epcis import product_of_gtin

    return lambda gtin: product_of_gtin(ledger, gtin)


def register(ledger: Ledger, document: Any, po: str | None = "PO-7") -> Any:
    data = json.dumps(document).encode()
    found = read_notice(data, po=po, supplier="Acme", product_of_gtin=_lookup(ledger))
    return found, ledger.expect_units(found.units)


def test_a_notice_makes_receiving_one_scan_per_unit(ledger: Ledger) -> None:
    document = notice(
        commissioning("S1", "S2", "S3"), PACKING, shipping(dl("S1"), dl("S2"), dl("S3"))
    )
    found, outcome = register(ledger, document)
    assert outcome.details["expected"] == 3
    assert dict(found.unused) == {"AggregationEvent packing": 1}
    assert [r["serial"] for r in ledger.expected("PO-7")] == ["S1", "S2", "S3"]
    _, again = register(ledger, document)  # the same notice twice: nothing new
    assert (again.details["expected"], again.details["already"]) == (0, 3)
    ledger.receive_expected("PO-7", ["s1", "S2"], actor="ann")  # serials only
    # The lane's receipt (product scanned, serial scanned) takes lot and expiry too.
    ledger.receive("PO-7", "Acme", "DRL", ["S3"], actor="ann")
    assert list(units_of(ledger)) == [
        ("DRL", "S1", "in_stock", "L7", "2029-06-30"),
        ("DRL", "S2", "in_stock", "L7", "2029-06-30"),
        ("DRL", "S3", "in_stock", "L7", "2029-06-30"),
    ]
    assert ledger.unit("DRL", "S1").row["supplier"] == "Acme"  # type: ignore[union-attr]
    assert ledger.expected("PO-7") == []
    with pytest.raises(Refusal, match="already in stock"):
        register(ledger, document)  # received units are not expected again


def test_receiving_refuses_a_serial_the_po_does_not_expect(ledger: Ledger) -> None:
    register(ledger, notice(shipping(dl("S1"))))
    with pytest.raises(Refusal) as refused:
        ledger.receive_expected("PO-7", ["S1", "S9"], actor="ann")
    assert [p.code for p in refused.value.problems] == ["not_expected"]
    assert "S9" in str(refused.value)
    assert list(units_of(ledger)) == []


def test_every_bad_event_is_named_and_nothing_is_registered(ledger: Ledger) -> None:
    document = notice(
        shipping(dl("S1")),
        shipping("https://id.gs1.org/01/09506000134352/21/X1"),  # no such product
        shipping("urn:epc:id:grai:4012345.00011.987"),  # no serialized unit
        shipping(dl("S2"), po="PO-8"),  # another PO
        commissioning("S1", expiry="2029-02-30"),  # no such day
        {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "receiving", "epcList": 7},
        "not an event",
    )
    with pytest.raises(Refusal) as refused:
        register(ledger, document)
    text = str(refused.value)
    for expected in (
        "event 2: no product has GTIN 09506000134352",
        "event 3: EPC 'urn:epc:id:grai:4012345.00011.987' names no serialized unit",
        "event 4 is for purchase order PO-8, not PO-7",
        "event 5: expiry '2029-02-30' is not a date",
        "event 6: epcList is not a list",
        "event 7 is not an object",
    ):
        assert expected in text
    assert ledger.expected() == []


def test_a_unit_already_in_stock_is_refused_with_where_it_is(ledger: Ledger) -> None:
    ledger.receive("PO-1", "Acme", "DRL", ["S1"], actor="ann")
    with pytest.raises(Refusal) as refused:
        register(ledger, notice(shipping(dl("S1"), dl("S2"))))
    assert "event 1" in str(refused.value) and "in stock" in str(refused.value)
    assert ledger.expected() == []


def test_export_then_import_on_a_fresh_ledger_gives_the_same_units(tmp_path: Path) -> None:
    source = make_ledger(branch="NORTH")
    source.define_product("DRL", "Drill", actor="setup", gtin=GTIN)
    serials = ["D-1", "D/2", "d:3", "Ω-4"]
    source.receive("PO-1", "Acme", "DRL", serials, actor="ann", lot="L42", expiry=date(2028, 1, 31))
    source.receive("PO-2", "Beta", "LAP", ["LX-1", "LX-2"], actor="ann", lot="B/7")
    document = export(source, Places({"NORTH": "4012345000009"}))
    target = make_ledger(branch="SOUTH")
    target.define_product("DRL", "Drill", actor="setup", gtin=GTIN)
    register(target, document, po=None)  # each event names its own PO
    for po in ("PO-1", "PO-2"):
        scans = [row["serial"] for row in target.expected(po)]
        target.receive_expected(po, scans, actor="sam")
    assert list(units_of(target)) == list(units_of(source))
    for unit in ("D/2", "LX-2"):
        product = "DRL" if unit.startswith("D") else "LAP"
        mine, theirs = target.unit(product, unit), source.unit(product, unit)
        assert mine is not None and theirs is not None
        assert (mine.row["po"], mine.row["supplier"]) == (theirs.row["po"], theirs.row["supplier"])


# -- hostile input ----------------------------------------------------------------


def _refused_or_read(ledger: Ledger, data: bytes) -> None:
    try:
        found = read_notice(data, po="PO-7", product_of_gtin=_lookup(ledger))
        ledger.expect_units(found.units)
    except Refusal as refusal:
        assert refusal.problems and all(p.message for p in refusal.problems)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_any_bytes_are_read_or_refused(ledger: Ledger, data: bytes) -> None:
    _refused_or_read(ledger, data)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=_JSON)
def test_any_json_is_read_or_refused(ledger: Ledger, value: Any) -> None:
    _refused_or_read(ledger, json.dumps(value).encode())


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


_VALID = notice(commissioning("S1", "S2"), PACKING, shipping(dl("S1"), dl("S2")))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=st.sampled_from(_paths(_VALID)[1:]), value=_JSON | st.text(max_size=200))
def test_a_valid_notice_with_any_field_changed_is_read_or_refused(
    ledger: Ledger, where: tuple[Any, ...], value: Any
) -> None:
    document = deepcopy(_VALID)
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = value
    _refused_or_read(ledger, json.dumps(document).encode())


def test_huge_and_deep_documents_are_refused(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(Refusal, match=r"not JSON|nested too deeply"):
        read_notice(deep, po="PO-7", product_of_gtin=_lookup(ledger))
    monkeypatch.setattr(asn, "MAX_NOTICE_BYTES", 1000)
    with pytest.raises(Refusal, match="the most is 1,000: split it"):
        read_notice(b" " * 1001, po="PO-7", product_of_gtin=_lookup(ledger))
    many = notice(shipping(*(dl(f"S{n}") for n in range(asn.MAX_UNITS + 1))))
    monkeypatch.setattr(asn, "MAX_NOTICE_BYTES", 10**9)
    long = notice(shipping(dl("S" * 1_000_000)))
    with pytest.raises(Refusal, match="is 1,000,040 characters; an EPC is at most 400"):
        read_notice(json.dumps(long).encode(), po="PO-7", product_of_gtin=_lookup(ledger))
    with pytest.raises(Refusal, match="at most 100,000 units"):
        read_notice(json.dumps(many).encode(), po="PO-7", product_of_gtin=_lookup(ledger))


def _cli(db: Path, *args: str) -> Any:
    return CliRunner().invoke(build(), ["--db", str(db), *args], env={"POSD_ACTOR": "ann"})


def test_command_line_import_list_and_receive(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    make_ledger(db).define_product("DRL", "Drill", actor="setup", gtin=GTIN)
    path = tmp_path / "asn.jsonld"
    path.write_text(json.dumps(notice(commissioning("S1"), PACKING, shipping(dl("S1")))))
    result = _cli(db, "import", "epcis", str(path), "--po", "PO-7", "--supplier", "Acme", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["expected"] == 1
    assert "S1" in _cli(db, "expected", "list", "--po", "PO-7").output
    received = _cli(db, "expected", "receive", "--po", "PO-7", "S1")
    assert received.exit_code == 0 and "received 1 expected unit" in received.output
    (tmp_path / "bad.jsonld").write_bytes(b'{"type": "EPCISDocument", "epcisBody": [')
    bad = _cli(db, "import", "epcis", str(tmp_path / "bad.jsonld"), "--po", "PO-7")
    assert bad.exit_code == 1 and "not JSON" in bad.output and "Traceback" not in bad.output
    # The CSV import is still `posd import FILE`.
    csv = tmp_path / "serials.csv"
    csv.write_text("serial,product,po,supplier,branch,cost\nS9,DRL,PO-9,Acme,B1,1.00\n")
    assert _cli(db, "import", str(csv)).exit_code == 0
    assert _cli(db, "import", "epcis", "--help").exit_code == 0


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=200) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_command_line_never_shows_a_traceback(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "ledger.db"
        make_ledger(db).close()
        (Path(folder) / "x.jsonld").write_bytes(data)
        result = _cli(db, "import", "epcis", str(Path(folder) / "x.jsonld"), "--po", "PO-7")
        assert result.exit_code in (0, 1), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
