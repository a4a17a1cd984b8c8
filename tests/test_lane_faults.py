"""What goes wrong at a real lane: the printer runs out of paper mid-sale, the display's
cable is pulled, the disk fills up, the power goes. Nothing is lost or half-written, and
the lane says what happened.

The power-cut and full-disk tests run `posd run --config` in its own process, on the
simulated devices of this one, and kill it with SIGKILL or cap its file sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import tty
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.drivers.base import open_serial
from daemon.lane.outputs import DisplayOutput
from daemon.ledger import Ledger
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.rules.lane.types import DeviceChanged
from simulators.display import DisplayDecoder
from simulators.lane import PosdProcess, SimulatedLane, wait_until
from tests.lane_sim import run_lane, stocked_copy

WELCOME = ("WELCOME", "PLEASE SCAN AN ITEM")
PAGE_SIZE, WAL_HEADER, WAL_FRAME_HEADER = 16384, 32, 24
TWO_LAPTOPS = ("Laptop X1    1299.00", "TOTAL        2598.00")


# ------------------------------------------------------------- in-process faults


def test_printer_out_of_paper_mid_sale_prints_the_receipt_once_paper_is_in(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        sim.printer.paper_out()
        event = await sim.command("TENDER", "CARD")
        assert event["verdict"]["code"] == "sale_complete"
        await wait_until(lambda: sim.lane.state.receipt_waiting is not None, "the print result")
        await sim.settled()
        # The sale is in the ledger; the customer and the cashier are told about the receipt.
        sold = await sim.lane.ledger.call(lambda led: led.unit("LAP-X1", "LX-0001"))
        assert sold is not None and sold.state.value == "sold"
        assert sim.glass == ("THANK YOU", "RECEIPT TO FOLLOW")
        assert "paper out" in sim.lane.state.prompt and "REPRINT" in sim.lane.state.prompt
        assert "paper out" in sim.lane.snapshot()["devices"]["printer"]
        assert sim.printer.receipts == []
        sim.printer.paper_in()  # the receipt owed prints by itself, once
        await wait_until(lambda: sim.printer.receipts, "the receipt")
        await wait_until(lambda: sim.lane.state.receipt_waiting is None, "the print result")
        (receipt,) = sim.printer.receipts  # printed once, as the original
        assert "T-001-000001" in receipt.text and "REPRINT" not in receipt.text
        assert "printer" not in sim.lane.snapshot()["devices"]
        await sim.command("REPRINT")  # a copy on request is marked as one
        await wait_until(lambda: len(sim.printer.receipts) == 2, "the copy")
        assert "REPRINT" in sim.printer.receipts[-1].text

    run_lane(tmp_path, template_dir, play)


def test_display_unplugged_mid_sale(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        sim.display.unplug()
        await sim.scan("LX-0002")  # the sale goes on without the display
        await wait_until(lambda: "display" in sim.lane.state.devices, "the display fault")
        assert sim.lane.snapshot()["display_missing"]
        assert sim.lane.state.basket is not None and len(sim.lane.state.basket.lines) == 2
        assert sim.gpio.light_colour() == "green"  # the light never waited for the display
        sim.display.replug()  # back with its power-on text; posd repaints
        await wait_until(lambda: sim.glass == TWO_LAPTOPS, "the display to be repainted")
        await wait_until(lambda: "display" not in sim.lane.state.devices, "the display back")

    run_lane(tmp_path, template_dir, play)


class _StalledPort:
    """A display port whose far end stops reading (flow control, a wedged display): a
    pty whose device end the test reads only when it says so."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.glass = DisplayDecoder("epson")

    def read_all(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self.master, 65536):
                self.glass.feed(data)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def test_a_display_that_stops_taking_data_never_holds_up_the_lane() -> None:
    async def play() -> None:
        port, reports = _StalledPort(), []
        output = DisplayOutput(
            lambda: open_serial(port.path, 9600, 0.3),
            "epson",
            report=reports.append,
            write_timeout_s=0.3,
        )
        task = asyncio.get_running_loop().create_task(output.run())
        try:
            await wait_until(lambda: output.lines is not None or output.settled, "the port open")
            # Fill the port: each update rewrites both lines, until the kernel holds no more.
            texts = [(f"LINE {n:015d}", f"TOTAL {n:014d}") for n in range(4000)]
            shown = 0
            while output.settled:
                output.show(texts[shown])
                shown += 1
            # `show` came back with bytes still owed: it did not wait for the wire.
            assert output.missing is None and not output.settled
            output.show(("NEWEST", "WINS"))  # replaces whatever was still to come
            port.read_all()  # the display takes data again
            await wait_until(lambda: (port.read_all(), output.settled)[1], "the rest written")
            port.read_all()
            assert port.glass.lines == ("NEWEST".ljust(20), "WINS".ljust(20))
            assert not reports
            # Now it stops for good: past its write deadline it is reported missing.
            while output.settled:
                output.show(texts[shown % len(texts)])
                shown += 1
            await wait_until(lambda: reports, "the display reported missing")
            lost = reports[0]
            assert isinstance(lost, DeviceChanged) and (lost.device, lost.working) == (
                "display",
                False,
            )
            assert "no room to write within 0.3 s" in lost.message  # then it is reopened
        finally:
            output.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            output.close()
            port.close()

    asyncio.run(play())


class _NoDescriptor:
    """A port that can only be written (no file descriptor): the driver's thread writes."""

    def __init__(self, port: Any) -> None:
        self._port = port

    def write(self, data: bytes) -> int | None:
        written: int | None = self._port.write(data)
        return written

    def close(self) -> None:
        self._port.close()


def test_a_display_port_without_a_descriptor_is_written_on_the_drivers_thread() -> None:
    async def play() -> None:
        port = _StalledPort()
        output = DisplayOutput(
            lambda: _NoDescriptor(open_serial(port.path, 9600, 0.3)), "epson", report=print
        )
        task = asyncio.get_running_loop().create_task(output.run())
        try:
            output.show(("Laptop X1    1299.00", "TOTAL        1299.00"))
            await wait_until(lambda: (port.read_all(), output.lines)[1] is not None, "a write")
            await wait_until(lambda: output.settled, "the write done")
            port.read_all()
            assert port.glass.lines == ("Laptop X1    1299.00", "TOTAL        1299.00")
        finally:
            output.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            output.close()
            port.close()

    asyncio.run(play())


# ----------------------------------------------------------- the daemon's own process


def _glass(sim: SimulatedLane, wanted: tuple[str, str], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sim.glass == wanted:
            return True
        time.sleep(0.01)
    return sim.glass == wanted


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return condition()


def _invoice_in_ledger(path: Path, invoice: str) -> bool:
    with sqlite3.connect(path) as db:
        row = db.execute(
            "SELECT 1 FROM documents WHERE type = 'invoice' AND number = ?", [invoice]
        ).fetchone()
    return row is not None


def _states(path: Path, *serials: str) -> list[str]:
    ledger = Ledger.open(path)
    try:
        found = [ledger.unit("LAP-X1", serial) for serial in serials]
        return [unit.state.value if unit else "missing" for unit in found]
    finally:
        ledger.close()


def _consistent(path: Path) -> None:
    ledger = Ledger.open(path)
    try:
        assert verify_chain(ledger).ok
        assert verify_projection(ledger) is None
    finally:
        ledger.close()


@pytest.fixture
def lane(tmp_path: Path, template_dir: Path) -> SimulatedLane:
    sim = SimulatedLane(tmp_path / "lane")
    stocked_copy(sim.folder, template_dir)
    yield sim
    sim.close()


@pytest.fixture
def config(lane: SimulatedLane) -> Path:
    return lane.write_config(lane.folder / "posd.toml")


def test_power_cut_with_a_basket_open_loses_the_basket_and_says_so(
    lane: SimulatedLane, config: Path
) -> None:
    posd = PosdProcess(config).start()
    try:
        assert _glass(lane, WELCOME)
        lane.scanner.scan("LX-0001")
        lane.scanner.scan("LX-0002")
        assert _glass(lane, TWO_LAPTOPS)
    finally:
        posd.kill()
    posd = PosdProcess(config).start()
    try:
        assert _glass(lane, ("LAST SALE NOT SAVED", "PLEASE SCAN AGAIN")), lane.glass
    finally:
        output = posd.stop()
    assert posd.returncode == 0, output  # SIGTERM: a clean stop
    assert "stopping" in output
    assert not _invoice_in_ledger(lane.ledger_path, "T-001-000001")
    assert _states(lane.ledger_path, "LX-0001", "LX-0002") == ["in_stock", "in_stock"]
    _consistent(lane.ledger_path)


@pytest.mark.parametrize("wait_for_commit", [True, False], ids=["after commit", "any moment"])
def test_power_cut_during_a_sale_leaves_it_wholly_there_or_wholly_absent(
    lane: SimulatedLane, config: Path, wait_for_commit: bool
) -> None:
    lane.printer.paper_out()  # the receipt never prints, so the restart must say "saved"
    posd = PosdProcess(config).start()
    try:
        lane.scanner.scan("LX-0001")
        lane.scanner.scan("LX-0002")
        assert _glass(lane, TWO_LAPTOPS)
        lane.scanner.scan("#CMD:TENDER:CARD")
        if wait_for_commit:
            assert _until(lambda: _invoice_in_ledger(lane.ledger_path, "T-001-000001"))
    finally:
        posd.kill()
    saved = _invoice_in_ledger(lane.ledger_path, "T-001-000001")
    states = _states(lane.ledger_path, "LX-0001", "LX-0002")
    assert states == (["sold", "sold"] if saved else ["in_stock", "in_stock"])
    posd = PosdProcess(config).start()
    try:
        if saved:
            wanted = ("LAST SALE SAVED", "T-001-000001 2598.00")
        else:
            wanted = ("LAST SALE NOT SAVED", "PLEASE SCAN AGAIN")
        assert _glass(lane, wanted), (saved, lane.glass)
    finally:
        posd.stop()
    _consistent(lane.ledger_path)


def test_a_full_disk_takes_the_lane_out_of_service_and_the_ledger_stays_whole(
    lane: SimulatedLane, config: Path
) -> None:
    # No file may grow past six pages: the write-ahead log has room for a few journal
    # entries (one page each), not for the many pages of a sale.
    limit = WAL_HEADER + 6 * (WAL_FRAME_HEADER + PAGE_SIZE)
    posd = PosdProcess(config, file_size_limit=limit).start()
    try:
        lane.scanner.scan("LX-0001")
        lane.scanner.scan("LX-0002")
        lane.scanner.scan("#CMD:TENDER:CARD")
        closed = ("LANE CLOSED", "OUT OF SERVICE")
        assert _glass(lane, closed), (lane.glass, posd.output)
        lane.scanner.scan("LX-0003")  # ignored from now on
        time.sleep(0.2)
        assert lane.glass == closed
        assert posd.returncode is None  # still running: the display says why
    finally:
        output = posd.stop()
    # The log names the cause. (A write past RLIMIT_FSIZE fails with EFBIG, which SQLite
    # reports as an I/O error; a really full disk gives ENOSPC, "database or disk is full".)
    assert "lane out of service: the ledger cannot be" in output
    assert not _invoice_in_ledger(lane.ledger_path, "T-001-000001")
    assert _states(lane.ledger_path, "LX-0001", "LX-0002") == ["in_stock", "in_stock"]
    _consistent(lane.ledger_path)
    posd = PosdProcess(config).start()  # space again: the lane is back, and says what it lost
    try:
        assert _glass(lane, ("LAST SALE NOT SAVED", "PLEASE SCAN AGAIN")), lane.glass
    finally:
        posd.stop()
