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
