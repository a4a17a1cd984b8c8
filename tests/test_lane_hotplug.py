"""Devices unplugged and plugged back while posd runs, each in the middle of a sale: the
lane says what is missing (display at rest, kiosk, STATUS, the service's status line)
and carries on by itself once the device is back: nothing scanned before is lost, a
receipt owed prints once, a display is repainted. No restart.

The devices are the simulators' real transports: the serial scanner's pty is closed and
a new one made behind the same link, the keyboard wedge's event pipe is closed and
remade, the printer's TCP listener and connections go away and come back on the same
port, the display's pty and link go away and come back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.lane.run import _device_status
from simulators.lane import SimulatedLane, wait_until
from tests.lane_sim import run_lane

WAIT_S = 15.0  # generous: a device is reopened every second or so
TWO_LAPTOPS = ("Laptop X1    1299.00", "TOTAL        2598.00")
WELCOME = ("WELCOME", "PLEASE SCAN AN ITEM")


async def _missing(sim: SimulatedLane, device: str) -> None:
    await wait_until(lambda: device in sim.lane.state.devices, f"{device} missing", WAIT_S)


async def _back(sim: SimulatedLane, device: str) -> None:
    await wait_until(lambda: device not in sim.lane.state.devices, f"{device} back", WAIT_S)


async def _sold(sim: SimulatedLane, *serials: str) -> None:
    """Pay, and check the ledger sold exactly these units on the receipt that printed."""
    event = await sim.command("TENDER", "CARD")
    assert event["verdict"]["code"] == "sale_complete"
    invoice = event["lane"]["last_receipt"]
    await wait_until(lambda: sim.printer.receipts, "the receipt", WAIT_S)
    text = sim.printer.receipts[-1].text
    assert invoice in text
    for serial in serials:
        assert f"S/N {serial}" in text
        unit = await sim.lane.ledger.call(lambda led, s=serial: led.unit("LAP-X1", s))
        assert unit is not None and unit.invoice == invoice


@pytest.mark.parametrize("scanner", ["scanner", "wedge"], ids=["serial pty", "evdev wedge"])
def test_a_scanner_unplugged_mid_sale(tmp_path: Path, template_dir: Path, scanner: str) -> None:
    async def play(sim: SimulatedLane) -> None:
        device = sim.wedge if scanner == "wedge" else sim.scanner
        assert device is not None
        await sim.scan("LX-0001", by=scanner)
        device.unplug()
        await _missing(sim, f"scanner {scanner}")
        status = await sim.command("STATUS")
        assert status["verdict"]["code"] == "devices_missing"
        assert sim.glass == ("MISSING", "SCANNER")
        device.replug()
        await _back(sim, f"scanner {scanner}")
        await sim.scan("LX-0002", by=scanner)
        assert sim.glass == TWO_LAPTOPS  # the scan before the unplug is still in the basket
        await _sold(sim, "LX-0001", "LX-0002")

    run_lane(tmp_path, template_dir, play, wedge=scanner == "wedge")


def test_a_scanner_gone_at_rest_says_so_on_the_display(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        told: list[dict[str, str]] = []
        sim.lane.on_devices = told.append
        sim.scanner.unplug()
        await _missing(sim, "scanner scanner")
        await sim.settled()
        assert sim.glass == ("CHECK SCANNER", "PLEASE WAIT")
        sim.scanner.replug()
        await _back(sim, "scanner scanner")
        await sim.settled()
        assert sim.glass == WELCOME
        assert [list(missing) for missing in told] == [["scanner scanner"], []]

    run_lane(tmp_path, template_dir, play)


def test_a_printer_unplugged_mid_sale_prints_the_receipt_owed_once_it_is_back(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        sim.printer.unplug()
        await sim.scan("LX-0002")
        event = await sim.command("TENDER", "CASH")
        assert event["verdict"]["code"] == "sale_complete"  # the sale does not wait
        await wait_until(lambda: sim.lane.state.receipt_waiting, "the failed print", WAIT_S)
        await sim.settled()
        assert sim.glass == ("THANK YOU", "RECEIPT TO FOLLOW")
        assert "printer" in sim.lane.snapshot()["devices"]
        sim.printer.replug()
        await wait_until(lambda: sim.printer.receipts, "the receipt owed", WAIT_S)
        await _back(sim, "printer")
        await wait_until(lambda: sim.lane.state.receipt_waiting is None, "printed", WAIT_S)
        # Printed once: it stays once while the printer is asked how it is a few times.
        asked = sim.printer.status_requests
        await wait_until(lambda: sim.printer.status_requests >= asked + 2, "more questions", WAIT_S)
        (receipt,) = sim.printer.receipts
        assert "T-001-000001" in receipt.text and "REPRINT" not in receipt.text
        assert "S/N LX-0001" in receipt.text and "S/N LX-0002" in receipt.text
        await sim.scan("LX-0003")  # the lane goes on: the next sale prints at once
        await _sold(sim, "LX-0003")

    run_lane(tmp_path, template_dir, play)


def test_a_printer_gone_between_sales_is_noticed_without_printing(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        sim.printer.unplug()
        await _missing(sim, "printer")
        await sim.settled()
        assert sim.glass == ("CHECK PRINTER", "PLEASE SCAN AN ITEM")
        sim.printer.replug()
        await _back(sim, "printer")
        assert sim.printer.receipts == []

    run_lane(tmp_path, template_dir, play)


def test_a_display_unplugged_mid_sale_is_noticed_without_a_write_and_repainted(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        await sim.scan("LX-0002")
        sim.display.unplug()  # nothing is written to it: its port's link is gone
        await _missing(sim, "display")
        assert sim.lane.snapshot()["display_missing"]
        sim.display.replug()  # back with its power-on text
        await wait_until(lambda: sim.glass == TWO_LAPTOPS, "the display repainted", WAIT_S)
        await _back(sim, "display")
        await _sold(sim, "LX-0001", "LX-0002")

    run_lane(tmp_path, template_dir, play)


class _Notifier:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def status(self, text: str) -> None:
        self.lines.append(text)


def test_the_service_status_line_names_what_is_missing() -> None:
    notifier = _Notifier()
    _device_status(notifier, "lane T-001 ready", {"printer": "unknown (cannot reach it)"})  # type: ignore[arg-type]
    _device_status(notifier, "lane T-001 ready", {})  # type: ignore[arg-type]
    assert notifier.lines == [
        "lane T-001 ready; missing: printer (unknown (cannot reach it))",
        "lane T-001 ready",
    ]
