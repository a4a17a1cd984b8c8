"""Stock counts at the lane: scan every unit on the shelves, read at once what the ledger
makes of each, close the count, read the report, settle its differences. The rules as
tables first, then a whole count on a simulated lane."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.rules.lane.types import (
    Beep,
    CloseCount,
    Command,
    CommandName,
    CountScan,
    Light,
    Mode,
    OpenCount,
)
from daemon.rules.units import State
from simulators.lane import SimulatedLane
from tests.lane_fixtures import CASHIER, LAPTOP, SELF, TABLET, Driven, gtin, label, rejected, unit
from tests.lane_sim import LAPTOP_EAN, MAX_PIN, MIA_BADGE, MIA_PIN, max_, mia, run_lane

# ------------------------------------------------------------------------ the rules


def _counting(cfg: Any = CASHIER, argument: str = "") -> Driven:
    lane = Driven(cfg)
    lane.feed(Command(CommandName.COUNT, argument))
    return lane


def test_count_opens_a_count_in_the_ledger_and_says_so() -> None:
    lane = Driven(CASHIER)
    effects = lane.feed(Command(CommandName.COUNT, "LAP-X1"))
    assert isinstance(lane.ops[0], OpenCount) and lane.ops[0].argument == "LAP-X1"
    assert lane.state.mode is Mode.COUNTING and lane.state.document == "C-T-001-0001"
    assert lane.state.count_product == "LAP-X1"
    assert effects.display == ("COUNT C-T-001-0001", "SCAN EVERY UNIT")


# (what the ledger had, what it said of the scan) -> what the employee sees and hears
VERDICTS = [
    (unit("LX-1"), "expected", ("Laptop X1", "EXPECTED"), Light.GREEN, Beep.ACCEPT),
    (
        unit("LX-1", State.SOLD, invoice="INV-1"),
        "unexpected: the ledger has it sold at branch NORTH on invoice INV-1",
        ("Laptop X1", "UNEXPECTED SOLD"),
        Light.RED,
        Beep.REJECT,
    ),
    (
        unit("LX-1", branch="SOUTH"),
        "unexpected: the ledger has it in stock at branch SOUTH",
        ("Laptop X1", "UNEXPECTED AT SOUTH"),
        Light.RED,
        Beep.REJECT,
    ),
    (
        unit("LX-1", State.IN_TRANSIT, dest="SOUTH"),
        "unexpected: the ledger has it in transit from branch NORTH to branch SOUTH",
        ("Laptop X1", "UNEXPECTED IN TRANSI"),
        Light.RED,
        Beep.REJECT,
    ),
    (unit("LX-1"), "scanned twice", ("Laptop X1", "SCANNED TWICE"), Light.AMBER, Beep.REJECT),
    (None, "not in the ledger", ("LX-1", "UNKNOWN SERIAL"), Light.RED, Beep.REJECT),
]


@pytest.mark.parametrize(("found", "said", "display", "light", "beep"), VERDICTS)
def test_each_scan_shows_what_the_ledger_makes_of_it(found, said, display, light, beep) -> None:
    lane = _counting()
    lane.verdicts.append(said)
    effects = lane.scan(label("LX-1", *([found] if found else [])))
    scan = lane.ops[-1]
    assert isinstance(scan, CountScan) and scan.count == "C-T-001-0001"
    assert (scan.product, scan.serial) == ("LAP-X1" if found else "?", "LX-1")
    assert effects.display == display
    assert (effects.light, effects.beep) == (light, beep)
    assert said in effects.verdict.message  # the kiosk reads the ledger's own words
    assert lane.state.counted == 1 and lane.state.mode is Mode.COUNTING


def test_a_product_barcode_says_whose_serials_follow() -> None:
    lane = _counting()
    ambiguous = label("SN-7", unit("SN-7"), unit("SN-7", product=TABLET))
    lane.scan(ambiguous)
    assert lane.last_code == "ambiguous_serial" and not lane.ops[1:]
    effects = lane.scan(gtin(LAPTOP))
    assert effects.display == ("COUNT Laptop X1", "SCANNED            0")
    lane.scan(ambiguous)
    lane.scan(label("NEW-1"))  # unknown to the ledger: counted as a laptop
    assert [(op.product, op.serial) for op in lane.ops[1:]] == [
        ("LAP-X1", "SN-7"),
        ("LAP-X1", "NEW-1"),
    ]


def test_a_count_of_one_product_takes_no_other() -> None:
    lane = _counting(argument="LAP-X1")
    lane.scan(label("SN-7", unit("SN-7", product=TABLET)))
    assert lane.last_code == "not_in_count" and not lane.ops[1:]


def test_done_closes_the_count_and_shows_its_figures() -> None:
    lane = _counting()
    lane.scan(label("LX-1", unit("LX-1")))
    lane.verdicts.append("expected")
    effects = lane.feed(Command(CommandName.DONE))
    assert isinstance(lane.ops[-1], CloseCount)
    assert effects.display == ("FOUND 0/0", "MISS 0 UNEXP 0 DBL 0")
    assert lane.state.mode is Mode.IDLE and lane.state.last_count == "C-T-001-0001"


def test_cancel_leaves_the_count_open_to_go_on_with() -> None:
    lane = _counting()
    lane.scan(label("LX-1", unit("LX-1")))
    effects = lane.feed(Command(CommandName.CANCEL))
    assert lane.state.mode is Mode.IDLE and not isinstance(lane.ops[-1], CloseCount)
    assert "COUNT:C-T-001-0001 goes on with it" in effects.verdict.message


def test_at_a_self_checkout_an_attendant_starts_it_and_nothing_in_it_locks() -> None:
    lane = Driven(SELF)
    lane.feed(Command(CommandName.COUNT))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED
    lane.scan(label("BADGE-0042"))
    assert lane.state.mode is Mode.COUNTING
    for scanned in (label("SN-7", unit("SN-7"), unit("SN-7", product=TABLET)), rejected()):
        lane.scan(scanned)
        assert lane.state.mode is Mode.COUNTING


def test_a_count_the_ledger_will_not_open_is_said_so() -> None:
    lane = Driven(CASHIER)
    lane.feed(
        Command(CommandName.COUNT, "NOPE"), refuse=(("unknown_product", "no product 'NOPE'"),)
    )
    assert lane.state.mode is Mode.IDLE and lane.last_code == "unknown_product"


# ------------------------------------------------------------- a count on a real lane

# The laptops the ledger has on this branch's shelves (in stock or quarantined): all
# but SN-7 are found; LX-0003 is scanned twice; LX-0015 (the ledger has it at SOUTH)
# and LX-0010 (sold) are found here; LX-0999 is unknown.
SHELF = [
    ("LX-0001", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0002", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0003", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0004", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0003", ("Laptop X1", "SCANNED TWICE"), "amber"),
    ("LX-0005", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0006", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0011", ("Laptop X1", "EXPECTED"), "green"),  # quarantined, on the shelf
    ("LX-0012", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0013", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0014", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0017", ("Laptop X1", "EXPECTED"), "green"),
    ("LX-0015", ("Laptop X1", "UNEXPECTED AT SOUTH"), "red"),
    ("LX-0010", ("Laptop X1", "UNEXPECTED SOLD"), "red"),
    ("LX-0999", ("LX-0999", "UNKNOWN SERIAL"), "red"),
]


def test_a_count_with_missing_unexpected_and_doubly_scanned_units(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.command("COUNT", "LAP-X1")
        assert sim.glass == ("COUNT C-T-001-0001", "SCAN EVERY UNIT")
        for serial, display, light in SHELF:
            await sim.scan(serial)
            assert sim.glass == display, serial
            assert sim.lane.state.light.value == light, serial
        event = await sim.command("DONE")
        assert event["verdict"]["code"] == "count_closed"
        assert sim.glass == ("FOUND 11/12", "MISS 1 UNEXP 3 DBL 1")
        async with aiohttp.ClientSession() as session:
            report = await _get(session, sim, "/api/count")
            assert report == await _get(session, sim, "/api/counts/C-T-001-0001")
            assert (report["expected"], report["found"]) == (12, 11)
            assert [u["serial"] for u in report["missing"]] == ["SN-7"]
            assert {u["serial"]: u["note"] for u in report["unexpected"]} == {
                "LX-0015": "the ledger has it in stock at branch SOUTH",
                "LX-0010": "the ledger has it sold at branch NORTH on invoice INV-OLD",
            }
            assert [u["serial"] for u in report["duplicates"]] == ["LX-0003"]
            assert [u["serial"] for u in report["unknown"]] == ["LX-0999"]
            # Settling the differences takes a manager.
            body = {"count": "C-T-001-0001", "product": "LAP-X1", "serial": "SN-7"}
            status, reply = await _post(session, sim, "/api/count/resolve", body | {"pin": MIA_PIN})
            assert status == 403 and "not a manager's" in reply["error"]
            status, reply = await _post(session, sim, "/api/count/resolve", body | {"pin": MAX_PIN})
            assert status == 200 and "approved by Max" in reply["message"]
            moved = body | {"serial": "LX-0015", "pin": MAX_PIN}
            status, reply = await _post(session, sim, "/api/count/resolve", moved)
            assert status == 200
            sold = body | {"serial": "LX-0010", "pin": MAX_PIN}
            status, reply = await _post(session, sim, "/api/count/resolve", sold)
            assert status == 409 and "LX-0010" in reply["error"]
        units = await sim.lane.ledger.call(
            lambda led: {s: led.unit("LAP-X1", s) for s in ("SN-7", "LX-0015", "LX-0010")}
        )
        assert units["SN-7"].state is State.LOST
        assert (units["LX-0015"].state, units["LX-0015"].branch) == (State.IN_STOCK, "NORTH")
        assert units["LX-0010"].state is State.SOLD
        closed = await sim.lane.ledger.call(
            lambda led: led.db.execute(
                "SELECT e.body FROM events e JOIN documents d ON d.id = e.doc_id"
                " WHERE d.number = 'C-T-001-0001' AND e.kind = 'count_close'"
            ).fetchone()
        )
        figures = json.loads(closed[0])["data"]
        assert (figures["found"], figures["missing"], figures["duplicates"]) == (11, 1, 1)
        lost = await sim.lane.ledger.call(
            lambda led: led.db.execute(
                "SELECT json_extract(body, '$.data.manager') FROM events WHERE kind = 'mark_lost'"
            ).fetchall()
        )
        assert lost == [("Max",)]

    run_lane(tmp_path, template_dir, play, attendants=[mia()], managers=[max_()])


def test_a_count_goes_on_after_cancel_and_the_kiosk_starts_it_too(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        async with aiohttp.ClientSession() as session:
            status, _ = await _get_status(session, sim, "/api/count")
            assert status == 404  # no count yet
            await _post(session, sim, "/api/commands", {"command": "count"})
            await sim.scan(LAPTOP_EAN)
            await sim.scan("LX-0001")
            await _post(session, sim, "/api/commands", {"command": "cancel"})
            assert sim.lane.state.mode is Mode.IDLE
            _, reply = await _post(
                session, sim, "/api/commands", {"command": "count", "argument": "C-T-001-0001"}
            )
            assert reply["lane"]["count"] == {
                "number": "C-T-001-0001",
                "product": None,
                "scanned": 1,
            }
            await sim.scan("LX-0001")
            assert sim.glass == ("Laptop X1", "SCANNED TWICE")
            report = await _get(session, sim, "/api/count")
            assert [u["serial"] for u in report["duplicates"]] == ["LX-0001"]

    run_lane(tmp_path, template_dir, play, attendants=[mia()], managers=[max_()])


def test_a_self_checkout_counts_once_an_attendant_has_started_it(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.command("COUNT")
        await sim.scan(MIA_BADGE)
        assert sim.lane.state.mode is Mode.COUNTING
        await sim.scan("LX-0002")
        assert sim.glass == ("Laptop X1", "EXPECTED")

    run_lane(tmp_path, template_dir, play, mode="self_checkout", attendants=[mia()])


def _url(sim: SimulatedLane, path: str) -> str:
    assert sim.daemon is not None
    return f"http://127.0.0.1:{sim.daemon.api_port}{path}"


async def _get_status(
    session: aiohttp.ClientSession, sim: SimulatedLane, path: str
) -> tuple[int, dict[str, Any]]:
    async with session.get(_url(sim, path)) as response:
        return response.status, await response.json()


async def _get(session: aiohttp.ClientSession, sim: SimulatedLane, path: str) -> dict[str, Any]:
    status, reply = await _get_status(session, sim, path)
    assert status == 200, reply
    report: dict[str, Any] = reply["report"]
    return report


async def _post(
    session: aiohttp.ClientSession, sim: SimulatedLane, path: str, body: Any
) -> tuple[int, dict[str, Any]]:
    async with session.post(_url(sim, path), json=body) as response:
        return response.status, await response.json()
