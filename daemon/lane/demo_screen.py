"""`posd demo --screen`: a simulated self-checkout to walk up to, on its lane screen.

posd runs as on a terminal (in this process), on stand-in devices the kernel provides
(the scanner and pole display are pseudo-terminals, the receipt printer a file, the
lights mock pins) over a small stocked store. It serves the lane screen on loopback and
opens it in a browser when there is a desktop to show one on; otherwise it prints the
address. With no barcode scanner to hand, the screen shows a practice shelf: touching a
box, a serial number sticker or the attendant's badge "scans" it (through the kiosk
API's POST /api/scan, as any kiosk could). It runs until Ctrl-C, then says what the
ledger holds.

    posd demo --screen                 # the customer's screen (self-checkout)
    posd demo --screen --cashier       # the cashier's screen
    posd demo --screen --port 8765 --no-browser
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import webbrowser
from pathlib import Path
from typing import Any

import click

from daemon.config.model import parse_config
from daemon.config.pins import hash_pin
from daemon.lane.demo import Pty
from daemon.lane.run import start
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.rules.units import Flag

TERMINAL, BRANCH = "T-001", "NORTH"
LAPTOP_EAN, PHONE_EAN, CABLE_EAN = "4006381333931", "5012345678900", "4012345678901"
PHONE_IMEI = "356938035643809"
BADGE, PIN = "BADGE-0042", "4711"

# What lies on the practice shelf, in the order shown.
SHELF: tuple[dict[str, str], ...] = (
    {"label": "Laptop X1", "barcode": LAPTOP_EAN, "kind": "product"},
    {"label": "LX-0001", "barcode": "LX-0001", "kind": "serial"},
    {"label": "LX-0002", "barcode": "LX-0002", "kind": "serial"},
    {"label": "LX-0009", "barcode": "LX-0009", "kind": "serial"},  # sold already
    {"label": "LX-0008", "barcode": "LX-0008", "kind": "serial"},  # recalled
    {"label": "Phone S9", "barcode": PHONE_EAN, "kind": "product"},
    {"label": PHONE_IMEI, "barcode": PHONE_IMEI, "kind": "serial"},
    {"label": "USB cable", "barcode": CABLE_EAN, "kind": "product"},
    {"label": "Mia", "barcode": BADGE, "kind": "badge"},
)


def run_screen_demo(
    keep: str | None, *, port: int, cashier: bool = False, open_browser: bool = True
) -> int:
    with tempfile.TemporaryDirectory(prefix="posd-screen-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "scanner", "display"):
            (folder / name).unlink(missing_ok=True)
        stock_store(folder / "ledger.db")
        try:
            return asyncio.run(_serve(folder, port, cashier, open_browser))
        except OSError as error:  # the port is taken (another posd, another demo)
            raise click.ClickException(
                f"cannot serve the lane screen on port {port}: {error.strerror or error}; "
                "choose another with --port (0: any free port)"
            ) from None


def stock_store(path: Path) -> None:
    """A small store: laptops in stock (one sold, one recalled), a phone whose serial is
    masked on screen and receipt, and a cable with no serial."""
    ledger = Ledger.create(path, terminal=TERMINAL, branch=BRANCH)
    try:
        ledger.define_product(
            "LAP-X1", "Laptop X1", actor="office", gtin=LAPTOP_EAN, warranty_months=24,
            price_cents=129900,
        )  # fmt: skip
        ledger.define_product(
            "PHN-S9", "Phone S9", actor="office", gtin=PHONE_EAN, warranty_months=12,
            price_cents=79900, mask_serial=True,
        )  # fmt: skip
        ledger.define_product(
            "CABLE", "USB cable", actor="office", gtin=CABLE_EAN, serial_tracked=False,
            price_cents=1500,
        )  # fmt: skip
        laptops = [f"LX-{n:04d}" for n in range(1, 10)]
        ledger.receive("PO-1", "Acme", "LAP-X1", laptops, actor="office")
        ledger.receive("PO-2", "Phones Ltd", "PHN-S9", [PHONE_IMEI], actor="office")
        ledger.sell("INV-0", "Dana Smith", [SaleLine("LAP-X1", "LX-0009", 129900)], actor="bob")
        ledger.set_flag([UnitRef("LAP-X1", "LX-0008")], Flag.RECALLED, actor="hq", reason="RC-1")
    finally:
        ledger.close()


def _config(folder: Path, port: int, cashier: bool) -> dict[str, Any]:
    return {
        "terminal": {
            "id": TERMINAL,
            "branch": BRANCH,
            "mode": "cashier" if cashier else "self_checkout",
            "store_name": "posd demo store",
        },
        "ledger": {"path": str(folder / "ledger.db")},
        "scanners": [{"kind": "serial", "port": str(folder / "scanner"), "name": "scanner"}],
        "display": {"port": str(folder / "display"), "model": "epson"},
        "printer": {"transport": "file", "path": str(folder / "receipts.bin")},
        "gpio": {"pin_factory": "mock", "pins": {"green": 17, "amber": 27, "red": 22}},
        "api": {"port": port},
        "attendants": [{"name": "Mia", "badge": BADGE, "pin_hash": hash_pin(PIN)}],
        "screen": {"practice_items": list(SHELF), "idle_timeout_s": 20},
    }


async def _serve(folder: Path, port: int, cashier: bool, open_browser: bool) -> int:
    scanner, display = Pty(folder / "scanner"), Pty(folder / "display")
    loop = asyncio.get_running_loop()
    # Nobody reads the pole display's pty: empty it as the daemon writes, so the display
    # never looks unplugged.
    loop.add_reader(display.master, display.drain)
    try:
        daemon = await start(parse_config(_config(folder, port, cashier)))
    except BaseException:
        loop.remove_reader(display.master)
        scanner.close()
        display.close()
        raise
    url = f"http://127.0.0.1:{daemon.api_port}/"
    click.secho(f"posd: the lane screen of a simulated {_who(cashier)} is at {url}", bold=True)
    click.echo("  touch the items on the practice shelf to scan them; the attendant's badge")
    click.echo(f"  is on the shelf too (or her PIN: {PIN}). Ctrl-C stops the lane.")
    click.echo(f"READY {url}", err=True)  # one line a script can wait for
    if open_browser:
        _open(url, folder)
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stopping.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await daemon.stop()
        loop.remove_reader(display.master)
        scanner.close()
        display.close()
    _summary(folder / "ledger.db")
    return 0


def _who(cashier: bool) -> str:
    return "cashier's lane" if cashier else "self-checkout"


def _open(url: str, folder: Path) -> None:
    """Show the page in a window of its own when there is a desktop to show it on."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        click.echo(f"  no desktop here: open {url} in a browser on this machine")
        return
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if not webbrowser.open(url):
            click.echo(f"  open {url} in a browser")
        return
    profile = folder / "browser-profile"
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [chromium, f"--app={url}", "--no-first-run", f"--user-data-dir={profile}",
             "--window-size=1280,800"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def _summary(path: Path) -> None:
    """Where the shelf's units are now, from the ledger."""
    ledger = Ledger.open(path)
    try:
        shelf = [("LAP-X1", f"LX-{n:04d}") for n in (1, 2, 8, 9)] + [("PHN-S9", PHONE_IMEI)]
        units = [(serial, ledger.unit(product, serial)) for product, serial in shelf]
    finally:
        ledger.close()
    click.echo("\nposd: the shelf's units now")
    for serial, unit in units:
        click.echo(f"  {serial}: {unit.state.value if unit else 'missing'}")
