"""The whole lane on the real devices of a terminal, as the simulated lane tests run it.

    POSD_HIL_LANE_CONFIG=/etc/posd/posd.toml   a lane configuration naming the real
                                               scanner(s), display, printer and GPIO
    POSD_HIL_INTERACTIVE=1                     also the tests that need a person at the
                                               lane (scanning a label, reading the glass)

The configuration's devices are used as they are; its ledger is not: each test works on
a fresh ledger in a temporary folder, stocked with laptops LX-0001..LX-0003 (LX-0003
already sold), so nothing is written to the terminal's own ledger. The kiosk API is
moved to a free port. Without POSD_HIL_LANE_CONFIG every test is skipped and says so.
"""

from __future__ import annotations

import asyncio
import os
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from daemon.config.model import parse_config
from daemon.drivers.scanner import Scan
from daemon.lane.run import Daemon, start
from daemon.ledger import Ledger, SaleLine
from daemon.rules.lane.types import Command, CommandName

T = TypeVar("T")
CONFIG = os.environ.get("POSD_HIL_LANE_CONFIG", "")
INTERACTIVE = os.environ.get("POSD_HIL_INTERACTIVE", "") == "1"

needs_lane = pytest.mark.skipif(
    not CONFIG,
    reason="no real lane named: set POSD_HIL_LANE_CONFIG=/etc/posd/posd.toml (a lane "
    "configuration naming the real scanner, display, printer and GPIO) to run",
)
needs_person = pytest.mark.skipif(
    not (CONFIG and INTERACTIVE),
    reason="needs a person at the lane: set POSD_HIL_LANE_CONFIG=... and POSD_HIL_INTERACTIVE=1",
)


def _lane(tmp_path: Path, body: Callable[[Daemon], Awaitable[T]]) -> T:
    data: dict[str, Any] = tomllib.loads(Path(CONFIG).read_text(encoding="utf-8"))
    terminal = data["terminal"]
    ledger_path = tmp_path / "ledger.db"
    ledger = Ledger.create(ledger_path, terminal=terminal["id"], branch=terminal["branch"])
    ledger.define_product(
        "LAP-X1", "Laptop X1", actor="hil", price_cents=129900, warranty_months=24
    )
    ledger.receive("PO-HIL", "HIL", "LAP-X1", ["LX-0001", "LX-0002", "LX-0003"], actor="hil")
    ledger.sell("INV-HIL", "HIL", [SaleLine("LAP-X1", "LX-0003", 129900)], actor="hil")
    ledger.close()
    data["ledger"] = {"path": str(ledger_path)}
    data["api"] = {"host": "127.0.0.1", "port": 0}
    data.pop("replication", None)
    config = parse_config(data, CONFIG)

    async def main() -> T:
        daemon = await start(config)
        try:
            return await body(daemon)
        finally:
            await daemon.stop()

    return asyncio.run(main())


async def _idle(daemon: Daemon, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not daemon.lane.idle:
        assert time.monotonic() < deadline, "the lane did not settle"
        await asyncio.sleep(0.01)


@needs_lane
def test_the_lane_starts_on_the_real_devices(tmp_path: Path) -> None:
    async def body(daemon: Daemon) -> None:
        await _idle(daemon)
        snapshot = daemon.lane.snapshot()
        assert snapshot["mode"] == "idle"
        if daemon.outputs.display is not None:
            assert snapshot["display_missing"] is None, snapshot["display_missing"]
            assert daemon.outputs.display.lines is not None  # WELCOME reached the glass

    _lane(tmp_path, body)


@needs_lane
def test_a_refusal_lights_red_and_a_sale_prints_its_receipt(tmp_path: Path) -> None:
    async def body(daemon: Daemon) -> None:
        lane = daemon.lane
        lane.submit(Command(CommandName.START))  # then the units, as the scanner would
        for serial in ("LX-0003", "LX-0001"):
            lane.submit(Scan(serial, None, "hil", time.monotonic()))
        await _idle(daemon)
        assert lane.state.basket is not None and len(lane.state.basket.lines) == 1
        event = await lane.ask(Command(CommandName.TENDER, "CARD"))
        assert event["verdict"]["code"] == "sale_complete"
        await _idle(daemon, 30)
        if daemon.outputs.printer is not None:
            job = daemon.outputs.printer.printer.job(lane.state.last_receipt.invoice)
            assert job.state.value == "printed", job.reason
        if daemon.outputs.gpio is not None and daemon.outputs.gpio.light is not None:
            assert daemon.outputs.gpio.light.colour is not None

    _lane(tmp_path, body)


@needs_person
def test_a_person_scans_a_label_and_the_lane_answers(tmp_path: Path) -> None:
    async def body(daemon: Daemon) -> None:
        lane = daemon.lane
        print("\n>>> scan a barcode that reads LX-0001 (Code 128) within 30 s")
        before = lane.taken
        deadline = time.monotonic() + 30
        while lane.taken == before:
            assert time.monotonic() < deadline, "nothing was scanned within 30 s"
            await asyncio.sleep(0.05)
        await _idle(daemon)
        assert lane.last["verdict"]["code"] == "unit_added", lane.last
        print(">>> the display should read 'Laptop X1    1299.00' / 'TOTAL        1299.00'")

    _lane(tmp_path, body)
