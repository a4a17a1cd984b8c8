"""posd export epcis: every unit event as an EPCIS 2.0 ObjectEvent that the official
schema accepts, with GS1's event hash as its id, filtered, streamed."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.epcis.eventhash import event_hash, prehash
from daemon.epcis.identifiers import Places
from daemon.epcis.mapping import CONTEXT, PREFIXES
from daemon.epcis.writer import DocumentWriter, with_event_id
from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger, SaleLine
from daemon.ledger.history import Selection, history, product_gtins
from daemon.ledger.importer import import_csv
from daemon.rules.serials import SerialError, check_serial
from tests.epcis_fixtures import (
    GLN,
    GTIN,
    epcis_standard,
    events_of,
    export,
    full_history,
    reference_hashes,
    schema_errors,
)
from tests.ledger_fixtures import make_ledger
from tests.test_fuzz_values import argv_for, bounded, command_of
from tests.test_hq_ingest import batches


@pytest.fixture(scope="module")
def chain() -> tuple[Ledger, dict[str, object]]:
    ledger = full_history()
    return ledger, export(ledger, Places({"NORTH": GLN}))


def test_a_whole_history_validates_against_the_official_schema(chain: tuple) -> None:
    _, document = chain
    assert schema_errors(document) == []
    kinds = Counter(e["posd:kind"] for e in events_of(document))
    # Every unit event is there; products, plain items and the like are not.
    assert set(kinds) == {
        "receive", "sell", "return", "transfer_out", "transfer_in", "repair_open",
        "repair_step", "repair_close", "replace_old", "replace_new", "quarantine",
        "release", "write_off", "mark_lost", "mark_found", "flag", "unflag", "correction",
    }  # fmt: skip


def test_event_ids_are_the_gs1_reference_hash_of_posds_events(chain: tuple) -> None:
    _, document = chain
    assert reference_hashes(document) == [e["eventID"] for e in events_of(document)]


def test_event_hash_of_the_standards_example_matches_the_reference() -> None:
    document = json.loads(epcis_standard("example-ObjectEvent-DigitalLink.jsonld").read_text())
    prefixes = {k: v for c in document["@context"] if isinstance(c, dict) for k, v in c.items()}
    ours = [event_hash(e, prefixes) for e in events_of(document)]
    assert ours == reference_hashes(document)
    # The example's SGLN read point is hashed as its canonical Digital Link.
    assert "readPointid=https://id.gs1.org/414/0614141073467/254/1234" in prehash(
        events_of(document)[0], prefixes
    )


def _is_serial(text: str) -> bool:
    try:
        check_serial(text)
    except SerialError:
        return False
    return text.strip() == text


_SERIAL = st.text(
    st.sampled_from("ABCXYZ019-_./:") | st.characters(categories=["Lu", "Nd"]), min_size=1,
    max_size=24,
).filter(_is_serial)  # fmt: skip


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    serials=st.lists(_SERIAL, min_size=1, max_size=4, unique_by=lambda s: s.upper()),
    lot=st.none() | st.text(st.sampled_from("AB01.-/ "), min_size=1, max_size=10).map(str.strip),
    millis=st.integers(0, 86_400_000 * 365),
    gtin=st.booleans(),
    gln=st.booleans(),
)
def test_event_hash_matches_the_reference_on_generated_events(
    serials: list[str], lot: str | None, millis: int, gtin: bool, gln: bool
) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.ledger_fixtures import FixedClock

    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis))
    ledger = make_ledger(clock=clock, branch="NORTH")
    ledger.define_product("DRL", "Drill", actor="setup", gtin=GTIN if gtin else None)
    ledger.receive("PO-1", "Acme", "DRL", serials, actor="ann", lot=lot or None,
                   expiry=date(2030, 2, 28))  # fmt: skip
    ledger.sell("INV-1", "Dana", [SaleLine("DRL", serials[0], 100)], actor="bob")
    document = export(ledger, Places({"NORTH": GLN} if gln else {}))
    assert schema_errors(document) == []
    assert reference_hashes(document) == [e["eventID"] for e in events_of(document)]


def test_the_mapping_a_trading_partner_reads(chain: tuple) -> None:
    _, document = chain
    by_kind: dict[str, list[dict]] = {}
    for event in events_of(document):
        by_kind.setdefault(event["posd:kind"], []).append(event)
    first = by_kind["receive"][0]
    assert first["epcList"] == [f"https://id.gs1.org/01/0{GTIN}/21/D-1"]
    assert (first["action"], first["bizStep"], first["disposition"]) == (
        "ADD", "receiving", "in_progress"
    )  # fmt: skip
    assert first["ilmd"] == {"cbvmda:lotNumber": "L42", "cbvmda:itemExpirationDate": "2028-01-31"}
    assert first["readPoint"] == {"id": f"https://id.gs1.org/414/{GLN}/254/T1"}
    assert first["bizLocation"] == {"id": f"https://id.gs1.org/414/{GLN}"}
    assert first["bizTransactionList"] == [{"type": "po", "bizTransaction": "urn:posd:po:PO-1"}]
    # A product without a GTIN: posd's own URI; a serial with / or : stays one component.
    assert by_kind["receive"][6]["epcList"] == ["urn:posd:unit:LAP:LX-1"]
    assert by_kind["receive"][1]["epcList"] == [f"https://id.gs1.org/01/0{GTIN}/21/D%2F2"]
    sale = by_kind["sell"][0]
    assert (sale["bizStep"], sale["disposition"], sale["action"]) == (
        "retail_selling", "retail_sold", "OBSERVE"
    )  # fmt: skip
    assert "bizLocation" not in sale and "ilmd" not in sale
    assert {"type": "inv", "bizTransaction": "urn:posd:invoice:INV-1"} in sale["bizTransactionList"]
    shipped = by_kind["transfer_out"][0]
    assert (shipped["bizStep"], shipped["disposition"]) == ("shipping", "in_transit")
    assert shipped["destinationList"] == [
        {"type": "location", "destination": "urn:posd:branch:SOUTH"}
    ]
    assert by_kind["transfer_in"][0]["readPoint"]["id"] == "urn:posd:terminal:T1"
    assert by_kind["write_off"][0]["bizStep"] == "destroying"
    assert by_kind["write_off"][0]["disposition"] == "destroyed"
    assert by_kind["flag"][0]["persistentDisposition"] == {"set": ["stolen"]}
    assert by_kind["unflag"][0]["persistentDisposition"] == {"unset": ["stolen"]}
    old, new = by_kind["replace_old"][0], by_kind["replace_new"][0]
    assert old["posd:replacedBy"] == new["epcList"][0]
    assert new["posd:replaces"] == old["epcList"][0]
    correction = by_kind["correction"][0]
    assert correction["posd:corrects"] == by_kind["quarantine"][-1]["posd:event"]
    assert correction["disposition"] == "sellable_accessible"


def test_filters_by_unit_product_branch_time_and_sequence(chain: tuple) -> None:
    ledger, _ = chain
    one = events_of(export(ledger, product="LAP", serial="lx-1"))
    assert [e["posd:kind"] for e in one] == ["receive", "sell", "return"]
    assert {e["epcList"][0] for e in one} == {"urn:posd:unit:LAP:LX-1"}
    south = events_of(export(ledger, branch="SOUTH"))
    assert [e["posd:kind"] for e in south] == ["transfer_in"]
    later = events_of(export(ledger, since="2026-11-23T09:30:00.000Z"))
    assert "receive" not in {e["posd:kind"] for e in later} and later
    early = events_of(export(ledger, until="2026-11-23T09:30:00.000Z"))
    assert {e["posd:kind"] for e in early} == {"receive"}
    window = [e.seq for e in history(ledger, Selection(from_seq=10, to_seq=12))]
    assert window == [10, 11, 12]


def _stocked(units: int) -> Ledger:
    ledger = make_ledger()
    ledger.define_product("DRL", "Drill", actor="setup", gtin=GTIN)
    rows = "serial,product,po,supplier,branch,cost,lot,expiry\n" + "".join(
        f"S{n:07d},DRL,PO-1,Acme,B1,1.00,L{n % 7},2030-01-01\n" for n in range(units)
    )
    import io

    import_csv(ledger, io.StringIO(rows), actor="ann")
    return ledger


def _peak_export_bytes(ledger: Ledger) -> int:
    with open(os.devnull, "w") as sink:
        tracemalloc.start()
        try:
            writer = DocumentWriter(sink, Places(), product_gtins(ledger).get, created="x")
            for event in history(ledger, Selection()):
                writer.add(event)
            writer.close()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.slow
def test_export_memory_does_not_grow_with_the_ledger() -> None:
    small = _peak_export_bytes(_stocked(4_000))
    large = _peak_export_bytes(_stocked(20_000))
    # Five times the events: the same peak (one slice of the log at a time), give or take.
    assert large < small * 1.3, (small, large)


def _cli(*args: str, db: Path) -> object:
    return CliRunner().invoke(build(), ["--db", str(db), *args], env={"POSD_ACTOR": "ann"})


def test_command_line_writes_a_whole_file_and_says_what_it_did(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    full_history(db).close()
    out = tmp_path / "units.jsonld"
    result = _cli("export", "epcis", "--out", str(out), "--gln", f"NORTH={GLN}", "--json", db=db)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    document = json.loads(out.read_text())
    assert summary["written"] == len(events_of(document)) == 30
    assert document["@context"] == CONTEXT and schema_errors(document) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    bad = _cli("export", "epcis", "--gln", "NORTH=4012345000008", db=db)
    assert bad.exit_code == 2 and "check digit" in bad.output
    bad_time = _cli("export", "epcis", "--since", "yesterday", db=db)
    assert bad_time.exit_code == 2 and "is not a date or time" in bad_time.output
    assert _cli("export", "epcis", "--help", db=db).exit_code == 0


def test_hq_exports_the_whole_chain_or_one_branch(tmp_path: Path) -> None:
    db = tmp_path / "hq.db"
    central = Central(SqliteBackend(db))
    north = make_ledger(tmp_path / "t1.db", terminal="T1", branch="NORTH")
    south = make_ledger(tmp_path / "t2.db", terminal="T2", branch="SOUTH")
    north.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2"], actor="ann")
    south.receive("PO-2", "Acme", "LAP", ["LX-7"], actor="sue")
    south.sell("INV-9", "Eve", [SaleLine("LAP", "LX-7", 100)], actor="sue")
    central.ingest(batches(north))
    central.ingest(batches(south))
    central.close()
    whole = CliRunner().invoke(build(), ["hq", "--db", str(db), "export", "epcis"])
    assert whole.exit_code == 0, whole.output
    document = json.loads(whole.stdout)
    assert schema_errors(document) == []
    points = Counter(e["readPoint"]["id"] for e in events_of(document))
    assert points == {"urn:posd:terminal:T1": 2, "urn:posd:terminal:T2": 2}
    one = CliRunner().invoke(
        build(), ["hq", "--db", str(db), "export", "epcis", "--branch", "SOUTH"]
    )
    assert [e["posd:kind"] for e in events_of(json.loads(one.stdout))] == ["receive", "sell"]
    missing = CliRunner().invoke(
        build(), ["hq", "--db", str(tmp_path / "no.db"), "export", "epcis"]
    )
    assert missing.exit_code == 1 and "no HQ database" in missing.output
    assert not (tmp_path / "no.db").exists()


def test_an_event_carries_its_hash_first_and_the_hash_ignores_it() -> None:
    event = {"type": "ObjectEvent", "eventTime": "2026-01-01T00:00:00Z",
             "eventTimeZoneOffset": "+00:00", "epcList": [], "action": "OBSERVE"}  # fmt: skip
    stamped = with_event_id(event)
    assert next(iter(stamped)) == "eventID"
    assert event_hash(stamped, PREFIXES) == stamped["eventID"]


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    from tests.mqtt_broker import fresh_pg_database

    yield from fresh_pg_database()


def test_hq_on_postgresql_exports_the_same_document(pg_dsn: str, tmp_path: Path) -> None:
    from daemon.hq.pg import PgBackend

    central = Central(PgBackend(pg_dsn))
    north = make_ledger(tmp_path / "t1.db", terminal="T1", branch="NORTH")
    north.define_product("DRL", "Drill", actor="setup", gtin=GTIN)
    north.receive("PO-1", "Acme", "DRL", ["D-1", "D/2"], actor="ann", lot="L1")
    north.sell("INV-1", "Dana", [SaleLine("DRL", "D/2", 100)], actor="bob")
    central.ingest(batches(north))
    central.close()
    result = CliRunner().invoke(
        build(), ["hq", "--pg", pg_dsn, "export", "epcis", "--gln", f"NORTH={GLN}"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert schema_errors(document) == []
    mine = [e for e in events_of(export(north, Places({"NORTH": GLN})))]
    assert [e["eventID"] for e in events_of(document)] == [e["eventID"] for e in mine]


def test_the_terminals_configured_gln_names_its_branch(tmp_path: Path) -> None:
    from daemon.config.model import ConfigFileError, load_config

    example = (Path(__file__).parent.parent / "systemd" / "posd.toml.example").read_text()
    config = tmp_path / "posd.toml"
    config.write_text(example.replace(f'# gln = "{GLN}"', f'gln = "{GLN}"'))
    assert load_config(config).terminal.gln == GLN
    db = tmp_path / "ledger.db"
    make_ledger(db, branch="BR-017").receive("PO-1", "Acme", "LAP", ["LX-1"], actor="ann")
    result = _cli("export", "epcis", "--config", str(config), db=db)
    assert result.exit_code == 0, result.output
    (event,) = events_of(json.loads(result.stdout))
    assert event["bizLocation"] == {"id": f"https://id.gs1.org/414/{GLN}"}
    config.write_text(example.replace(f'# gln = "{GLN}"', 'gln = "4012345000008"'))
    with pytest.raises(ConfigFileError, match=r"terminal\.gln"):
        load_config(config)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_no_value_on_the_export_command_line_gives_a_traceback(data: st.DataObject) -> None:
    import tempfile

    argv = ["export", "epcis", *argv_for(command_of(("export", "epcis")), data.draw)]
    assume(not any("\x00" in arg for arg in argv))  # execve cannot pass a NUL in an argument
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)  # `--out` writes where it is told: here, a folder of the test's
        try:
            db = Path(folder) / "ledger.db"
            full_history(db).close()
            with bounded():
                result = CliRunner().invoke(build(), ["--db", str(db), *argv])
        finally:
            os.chdir(here)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"posd {argv!r} raised") from result.exception
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), (argv, result.exit_code, result.output)
