"""Helpers for the EPCIS tests: the official standards' files, GS1's reference event
hash, and a ledger whose history has every kind of unit event."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from daemon.epcis.identifiers import Places
from daemon.epcis.writer import DocumentWriter
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.history import Selection, history, product_gtins
from daemon.rules.units import Flag, Op, State
from tests.ledger_fixtures import FixedClock, make_ledger

ROOT = Path(__file__).resolve().parent.parent
GTIN = "4006381333931"
GLN = "4012345000009"


def standards_dir() -> Path:
    """The published standards' files: POSD_STANDARDS_DIR, or `shared/standards` beside
    the checkout (where CI lays them)."""
    return Path(os.environ.get("POSD_STANDARDS_DIR") or ROOT.parent / "shared" / "standards")


def epcis_standard(name: str) -> Path:
    path = standards_dir() / "epcis" / name
    if not path.exists():
        pytest.skip(
            f"the official EPCIS file {name} is not at {path}: set POSD_STANDARDS_DIR to the"
            " folder of published standards (with epcis/ in it)"
        )
    return path


@cache
def _schema() -> Any:
    return json.loads(epcis_standard("EPCIS-JSON-Schema.json").read_text())


def schema_errors(document: Any) -> list[str]:
    """What the official EPCIS 2.0 JSON schema finds wrong (formats checked too)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(
        _schema(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(document)]


@cache
def _epcis_context() -> Any:
    # The EPCIS 2.0 context as the reference implementation ships it: no network.
    folder = resources.files("epcis_event_hash_generator")
    for entry in folder.iterdir():
        if entry.name.startswith("e532647e") and entry.name.endswith(".jsonld"):
            return json.loads(entry.read_text())
    raise AssertionError("the reference implementation ships no EPCIS 2.0 context")


def reference_hashes(document: Any) -> list[str]:
    """GS1's reference implementation's event hashes for every event of `document`."""
    from epcis_event_hash_generator import hash_generator, json_to_py
    from pyld import jsonld

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        return {
            "contentType": "application/ld+json",
            "contextUrl": None,
            "documentUrl": url,
            "document": _epcis_context(),
        }

    jsonld.set_document_loader(loader)
    events = json_to_py.event_list_from_epcis_document_json(json.loads(json.dumps(document)))
    return list(hash_generator.epcis_hashes_from_events(events))


def export(ledger: Ledger, places: Places | None = None, **selection: Any) -> dict[str, Any]:
    """The ledger's EPCIS document, parsed."""
    out = io.StringIO()
    writer = DocumentWriter(
        out, places or Places(), product_gtins(ledger).get, created="2026-12-01T10:00:00.000Z"
    )
    for event in history(ledger, Selection(**selection)):
        writer.add(event)
    writer.close()
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def events_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = document["epcisBody"]["eventList"]
    return events


def full_history(path: Path | None = None) -> Ledger:
    """A ledger where every kind of unit event happened at least once."""
    clock = FixedClock()
    ledger = make_ledger(path, clock=clock, branch="NORTH")
    ledger.define_product("DRL", "Drill", actor="setup", gtin=GTIN, warranty_months=12)
    ledger.receive(
        "PO-1",
        "Acme",
        "DRL",
        ["D-1", "D/2", "D:3", "D-4", "D-5", "D-6"],
        actor="ann",
        lot="L42",
        expiry=date(2028, 1, 31),
    )
    ledger.receive("PO-2", "Acme", "LAP", ["LX-1", "LX-2", "LX-3", "LX-4"], actor="ann")
    clock.advance(hours=1)
    ledger.sell(
        "INV-1", "Dana", [SaleLine("DRL", "D-1", 9900), SaleLine("LAP", "LX-1", 1)], actor="bob"
    )
    ledger.return_unit(
        "INV-1", "LAP", "LX-1", actor="bob", condition="boxed", disposition=State.IN_STOCK
    )
    ledger.transfer_out("TR-1", "SOUTH", [UnitRef("LAP", "LX-2")], actor="ann")
    ledger.transfer_in("TR-1", [UnitRef("LAP", "LX-2")], actor="sam", branch="SOUTH")
    ledger.repair_open(
        "RP-1",
        UnitRef("DRL", "D-1"),
        actor="tess",
        technician="tess",
        intake_condition="scratched",
        fault="no power",
    )
    ledger.repair_step("RP-1", "qc_passed", actor="tess", diagnosis="switch")
    ledger.repair_close("RP-1", actor="tess", outcome="repaired")
    ledger.replace(
        "RPL-1",
        UnitRef("DRL", "D-1"),
        UnitRef("DRL", "D/2"),
        actor="bob",
        old_disposition=State.RETURNED_TO_SUPPLIER,
    )
    ledger.move(Op.QUARANTINE, [UnitRef("LAP", "LX-3")], actor="ann", reason="dented")
    ledger.move(Op.RELEASE, [UnitRef("LAP", "LX-3")], actor="ann", reason="fine")
    ledger.move(Op.WRITE_OFF, [UnitRef("DRL", "D-4")], actor="ann", reason="broken", manager="Mia")
    ledger.move(Op.MARK_LOST, [UnitRef("DRL", "D-5")], actor="ann", reason="gone")
    ledger.move(Op.MARK_FOUND, [UnitRef("DRL", "D-5")], actor="ann", reason="back")
    ledger.set_flag([UnitRef("LAP", "LX-4")], Flag.STOLEN, actor="ann", reason="police")
    ledger.set_flag([UnitRef("LAP", "LX-4")], Flag.STOLEN, actor="ann", reason="ok", on=False)
    ledger.set_flag([UnitRef("LAP", "LX-4")], Flag.ON_HOLD, actor="ann", reason="audit")
    outcome = ledger.move(Op.QUARANTINE, [UnitRef("DRL", "D-6")], actor="ann", reason="oops")
    ledger.correct(outcome.events[0], actor="ann", manager="Mia", reason="wrong unit")
    return ledger


def units_of(ledger: Ledger) -> Iterator[tuple[Any, ...]]:
    """Every unit as (product, serial, state, lot, expiry), sorted."""
    rows = ledger.db.execute(
        "SELECT p.code, u.serial, u.state, u.lot, u.expiry FROM units u"
        " JOIN products p ON p.id = u.product_id ORDER BY p.code, u.serial"
    ).fetchall()
    return iter(rows)
