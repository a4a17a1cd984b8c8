"""A store's day at one lane, narrated: what `posd demo` (the README's main job) shows.

posd runs as it does on a terminal, in this process, on stand-in devices that the
kernel provides: the barcode scanner and the pole display are pseudo-terminals (a
serial scanner and an Epson-style display, found by the paths in the configuration),
the receipt printer is a file the ESC/POS bytes go to, and the lane light and buzzer
are gpiozero's mock pins. The walk-through types barcodes into the scanner's pty, then
shows what the customer read on the display, the light, and the receipt.

The story: a delivery is received; a laptop (serial), a drill (one GS1 DataMatrix) and
a cable (no serial) are sold; the same laptop is refused when it comes to the lane
again; a return refuses the wrong laptop and takes back the right one; a self-checkout
locks on a unit that may not be sold until an attendant's badge releases it. Each step
checks what it expects; the exit status is 1 if anything did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from daemon.config.model import parse_config
from daemon.lane.devices import receipt_header
from daemon.lane.receipt import receipt_text
from daemon.lane.run import Daemon, start
from daemon.ledger import Ledger
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.kinds import Kind
from daemon.ledger.queries import events_of
from daemon.rules.lane.types import Command, CommandName

TERMINAL, BRANCH = "T-001", "NORTH"
LAPTOP_EAN, DRILL_EAN, CABLE_EAN = "4006381333931", "5901234123457", "4012345678901"
DRILL_DATAMATRIX = "]d20105901234123457" + "21DR-7731"
BADGE = "BADGE-0042"


@dataclass
class Pty:
    """One end of a pseudo-terminal for the daemon, the other for the walk-through."""

    link: Path
    master: int = -1
    slave: int = -1

    def __post_init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # a serial line: no echo, CR stays CR
        os.set_blocking(self.master, False)
        self.link.symlink_to(os.ttyname(self.slave))

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def drain(self) -> int:
        """Read (and drop) what the daemon wrote; how many bytes."""
        total = 0
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.master, 4096):
                total += len(chunk)
        return total

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass
class Story:
    """The lane under narration, and what went other than expected."""

    daemon: Daemon
    scanner: Pty
    display: Pty
    receipts: Path
    failures: list[str] = field(default_factory=list)

    async def scan(self, text: str) -> dict[str, Any]:
        lane = self.daemon.lane
        events = lane.subscribe()
        before = lane.taken
        self.scanner.write(text.encode() + b"\r")
        await _until(lambda: lane.taken > before and lane.idle)
        lane.unsubscribe(events)
        decided: dict[str, Any] = {}
        while not events.empty():
            event = events.get_nowait()
            if event and event["input"]["kind"] in ("scan", "ledger", "release"):
                decided = event
        click.echo(f"  scan {text!r}")
        return self.show(decided)

    async def command(self, name: CommandName, argument: str = "") -> dict[str, Any]:
        event = await self.daemon.lane.ask(Command(name, argument, "kiosk"))
        await _until(lambda: self.daemon.lane.idle)
        click.echo(f"  kiosk: {name.value}" + (f" {argument}" if argument else ""))
        return self.show(event)

    def show(self, event: dict[str, Any]) -> dict[str, Any]:
        self.display.drain()
        lane = self.daemon.lane
        glass = self.glass
        light = lane.state.light.value
        verdict = event.get("verdict") or {}
        mark = {"accepted": "✔", "refused": "✘"}.get(verdict.get("outcome", ""), "•")
        colour = {"✔": "green", "✘": "red"}.get(mark)
        click.echo(f"     ┌{'─' * 20}┐")
        click.echo(f"     │{glass[0]:<20}│  light: {light}")
        click.echo(f"     │{glass[1]:<20}│  beep: {event.get('beep') or '-'}")
        click.echo(f"     └{'─' * 20}┘")
        if verdict:
            click.secho(f"     {mark} [{verdict['code']}] {verdict['message']}", fg=colour)
        return event

    @property
    def glass(self) -> tuple[str, str]:
        display = self.daemon.outputs.display
        lines = display.lines if display is not None else None
        return (lines[0].rstrip(), lines[1].rstrip()) if lines else ("", "")

    def expect(self, what: str, ok: bool) -> None:
        if not ok:
            self.failures.append(what)
            click.secho(f"     ✘ expected: {what}", fg="red", bold=True)


def _step(text: str) -> None:
    click.secho(f"\n▶ {text}", bold=True)


async def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the lane did not answer within 10 s")
        await asyncio.sleep(0.005)


def run_walkthrough(keep: str | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="posd-demo-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "scanner", "display"):
            (folder / name).unlink(missing_ok=True)
        return asyncio.run(_day(folder))


def _stock(path: Path) -> None:
    ledger = Ledger.create(path, terminal=TERMINAL, branch=BRANCH)
    try:
        ledger.define_product(
            "LAP-X1",
            "Laptop X1",
            actor="office",
            gtin=LAPTOP_EAN,
            warranty_months=24,
            price_cents=129900,
        )
        ledger.define_product(
            "DRL-18",
            "Drill 18V",
            actor="office",
            gtin=DRILL_EAN,
            warranty_months=36,
            price_cents=8950,
        )
        ledger.define_product(
            "CABLE",
            "USB cable",
            actor="office",
            gtin=CABLE_EAN,
            serial_tracked=False,
            price_cents=1500,
        )
    finally:
        ledger.close()


def _config(folder: Path, mode: str) -> dict[str, Any]:
    return {
        "terminal": {"id": TERMINAL, "branch": BRANCH, "mode": mode, "store_name": "Demo Store"},
        "ledger": {"path": str(folder / "ledger.db")},
        "scanners": [{"kind": "serial", "port": str(folder / "scanner"), "name": "scanner"}],
        "display": {"port": str(folder / "display"), "model": "epson"},
        "printer": {"transport": "file", "path": str(folder / "receipts.bin")},
        "gpio": {
            "pin_factory": "mock",
            "pins": {"green": 17, "amber": 27, "red": 22, "buzzer": 18, "button": 24},
        },
        "api": {"port": 0},
        "attendants": [{"name": "Mia", "badge": BADGE}],
    }


async def _open_lane(folder: Path, mode: str) -> Story:
    scanner, display = Pty(folder / "scanner"), Pty(folder / "display")
    daemon = await start(parse_config(_config(folder, mode)))
    story = Story(daemon, scanner, display, folder / "receipts.bin")
    await _until(lambda: daemon.lane.idle and story.glass[0] != "")
    return story


async def _close_lane(story: Story) -> None:
    await story.daemon.stop()
    story.scanner.close()
    story.display.close()


async def _day(folder: Path) -> int:
    _stock(folder / "ledger.db")
    click.secho("posd: one lane, simulated devices, a fresh ledger in " + str(folder), bold=True)
    click.echo("  scanner and pole display: pseudo-terminals; printer: a file; light: mock pins")
    story = await _open_lane(folder, "cashier")
    failures: list[str] = []
    try:
        await _cashier_lane(story)
    finally:
        failures += story.failures
        await _close_lane(story)
    for name in ("scanner", "display"):
        (folder / name).unlink(missing_ok=True)
    story = await _open_lane(folder, "self_checkout")
    try:
        await _self_checkout(story)
    finally:
        failures += story.failures
        await _close_lane(story)
    return _audit(folder / "ledger.db", failures)


async def _cashier_lane(s: Story) -> None:
    _step("A delivery arrives: receive it at the lane against purchase order PO-1001")
    await s.command(CommandName.RECEIVE, "Acme Distribution")
    await s.scan("PO-1001")
    await s.scan(LAPTOP_EAN)
    for serial in ("LX-0001", "LX-0002", "LX-0003"):
        await s.scan(serial)
    await s.scan(DRILL_DATAMATRIX)
    event = await s.command(CommandName.DONE)
    s.expect("4 units received", s.glass == ("RECEIVED 4 UNITS", "PO           PO-1001"))

    _step("A customer buys a laptop (by serial), a drill (one GS1 DataMatrix) and a cable")
    await s.scan("LX-0001")
    s.expect(
        "the laptop on the display", s.glass == ("Laptop X1    1299.00", "TOTAL        1299.00")
    )
    await s.scan(DRILL_DATAMATRIX)
    await s.scan(CABLE_EAN)
    s.expect("the total on the display", s.glass[1] == "TOTAL        1403.50")
    event = await s.command(CommandName.TENDER, "CASH:1500")
    code = (event.get("verdict") or {}).get("code")
    s.expect("the sale to be complete", code == "sale_complete")
    s.expect("change on the display", s.glass == ("THANK YOU", "CHANGE         96.50"))
    await _until(lambda: s.daemon.lane.background.busy is False)
    _print_receipt(s)

    _step("Someone brings laptop LX-0001 to the lane again: it is already sold")
    event = await s.scan("LX-0001")
    s.expect("an already-sold refusal", (event.get("verdict") or {}).get("code") == "already_sold")
    s.expect("ALREADY SOLD on the display", s.glass == ("Laptop X1", "ALREADY SOLD"))
    s.expect("a red light", s.daemon.lane.state.light.value == "red")

    _step("The customer returns the laptop on invoice T-001-000001 — but brings LX-0002")
    await s.command(CommandName.RETURN)
    await s.scan("T-001-000001")  # the barcode printed at the foot of the receipt
    event = await s.scan("LX-0002")
    s.expect("the wrong unit refused", (event.get("verdict") or {}).get("code") == "wrong_unit")
    _step("…then the laptop that invoice sold")
    event = await s.scan("LX-0001")
    s.expect("the return accepted", (event.get("verdict") or {}).get("code") == "return_accepted")
    s.expect("the refund on the display", s.glass == ("RETURN ACCEPTED", "REFUND       1299.00"))
    await s.command(CommandName.DONE)


async def _self_checkout(s: Story) -> None:
    _step("The same store's self-checkout lane: a customer scans LX-0001, back from a return")
    await s.scan("LX-0003")
    event = await s.scan("LX-0001")
    verdict = event.get("verdict") or {}
    s.expect(
        "the lane locked for an attendant", s.daemon.lane.state.mode.value == "attendant_needed"
    )
    s.expect("the unit refused as quarantined", verdict.get("code") == "quarantined")
    _step("Only an attendant can go on: Mia scans her badge, and the release is recorded")
    await s.scan(BADGE)
    s.expect(
        "the lane back in the sale", s.glass == ("Laptop X1    1299.00", "TOTAL        1299.00")
    )
    await s.command(CommandName.TENDER, "CARD")
    await _until(lambda: s.daemon.lane.background.busy is False)


def _print_receipt(s: Story) -> None:
    receipt = s.daemon.lane.state.last_receipt
    printer = s.daemon.outputs.printer
    sent = s.receipts.stat().st_size if s.receipts.exists() else 0
    s.expect("the receipt sent to the printer", sent > 0 and printer is not None)
    if receipt is None or printer is None:
        return
    click.echo(f"  receipt ({sent} bytes of ESC/POS to the printer), as printed:")
    for line in receipt_text(receipt, receipt_header(s.daemon.config)).splitlines():
        click.echo(f"     | {line}")


def _audit(path: Path, failures: list[str]) -> int:
    _step("What the ledger holds")
    ledger = Ledger.open(path)
    try:
        for serial in ("LX-0001", "LX-0002", "LX-0003"):
            unit = ledger.unit("LAP-X1", serial)
            click.echo(f"  {serial}: {unit.state.value if unit else 'missing'}")
        releases = [event.actor for event in events_of(ledger, Kind.LANE_RELEASE)]
        click.echo(f"  attendant releases recorded: {releases}")
        if releases != ["Mia"]:
            failures.append("Mia's release in the ledger")
        report = verify_chain(ledger)
        finding = report.finding or verify_projection(ledger)
    finally:
        ledger.close()
    if finding:
        click.secho(f"  ✘ {finding.message}", fg="red")
        failures.append("an intact ledger")
    else:
        click.secho(f"  ✔ {report.events} events verified; the hash chain is intact", fg="green")
    if failures:
        click.secho(f"\n✘ the walk-through did not go as expected: {failures}", fg="red", bold=True)
        return 1
    click.secho("\n✔ the lane did everything the story expects", fg="green", bold=True)
    return 0
