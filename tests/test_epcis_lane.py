"""Receiving at the lane after a supplier's notice: the product's barcode once, then one
scan per unit, nothing typed; lot and expiry come from the notice."""

from __future__ import annotations

from pathlib import Path

from daemon.ledger.expected import ExpectedUnit
from simulators.lane import SimulatedLane
from tests.lane_sim import LAPTOP_EAN, run_lane


def test_scanning_each_unit_once_receives_it_with_the_notices_lot_and_expiry(
    tmp_path: Path, template_dir: Path
) -> None:
    expected = [
        ExpectedUnit("PO-3001", "LAP-X1", serial, "Acme", "L-77", "2029-12-31")
        for serial in ("LX-0300", "LX-0301")
    ]

    async def play(sim: SimulatedLane) -> None:
        await sim.lane.ledger.call(lambda led: led.expect_units(expected))
        await sim.command("RECEIVE", "Acme")
        await sim.scan("PO-3001")
        await sim.scan(LAPTOP_EAN)
        for serial in ("LX-0300", "LX-0301"):
            event = await sim.scan(serial)
            assert event["verdict"]["code"] == "unit_received", event
        done = await sim.command("DONE", "")
        assert done["verdict"]["code"] == "received", done
        for serial in ("LX-0300", "LX-0301"):
            unit = await sim.lane.ledger.call(lambda led, s=serial: led.unit("LAP-X1", s))
            assert unit is not None
            assert (unit.state.value, unit.row["lot"], unit.row["expiry"]) == (
                "in_stock",
                "L-77",
                "2029-12-31",
            )
        left = await sim.lane.ledger.call(lambda led: led.expected("PO-3001"))
        assert left == []

    run_lane(tmp_path, template_dir, play)


def test_lot_and_expiry_in_a_units_gs1_code_reach_the_ledger_at_receipt() -> None:
    from daemon.lane.ops import perform
    from daemon.ledger.lookup import ScanLookup
    from daemon.rules.barcode import BarcodeOptions, parse
    from daemon.rules.lane.machine import plan_lookup
    from daemon.rules.lane.types import Command, CommandName, ReceiveUnits, Scanned
    from tests.lane_fixtures import CASHIER, Driven
    from tests.ledger_fixtures import make_ledger

    ledger = make_ledger()
    ledger.define_product("DRL", "Drill", actor="setup", gtin=LAPTOP_EAN)
    lane = Driven(CASHIER)
    options = BarcodeOptions(separators_sent=True)

    def scan(text: str) -> None:
        parsed = parse(text, options)
        facts = ScanLookup(ledger.db.conn).facts(plan_lookup(lane.state, parsed, lane.cfg))
        lane.feed(Scanned(parsed, facts))

    lane.feed(Command(CommandName.RECEIVE, "Acme"))
    scan("PO-9")
    for lot, serial in (("L-1", "D-1"), ("L-2", "D-2"), ("L-1", "D-3")):
        scan(f"010{LAPTOP_EAN}17290630" + f"10{lot}\x1d21{serial}")
        assert lane.last_code == "unit_received"
    lane.feed(Command(CommandName.DONE))
    (op,) = [op for op in lane.ops if isinstance(op, ReceiveUnits)]
    perform(ledger, "ann", op)
    got = [(r[1], r[3], r[4]) for r in ledger.db.execute(
        "SELECT p.code, u.serial, u.state, u.lot, u.expiry FROM units u"
        " JOIN products p ON p.id = u.product_id ORDER BY u.serial"
    ).fetchall()]  # fmt: skip
    assert got == [("D-1", "L-1", "2029-06-30"), ("D-2", "L-2", "2029-06-30"),
                   ("D-3", "L-1", "2029-06-30")]  # fmt: skip
