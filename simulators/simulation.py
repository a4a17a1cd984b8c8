"""A terminal's devices, simulated in their own process, for `posd doctor` and `posd run`.

    simulation = Simulation(Path("/run/user/1000/posd-simulation"))
    simulation.start()          # devices up, posd.toml and a stocked ledger written
    simulation.serve()          # answers controls until stop() (or SIGTERM)

The devices are those of `SimulatedLane`, each on its real transport: a serial scanner
on a pty, an Epson-style pole display on a pty, an ESC/POS printer on a loopback TCP
socket (and a pty). The folder gets a configuration that points posd at them
(`posd.toml`), a ledger with a few products in stock, and `control.sock`, a Unix socket
that takes one JSON request a line (`{"do": "scan", "text": "LX-0001"}`) and answers
one JSON line. `posd simulate scan LX-0001`, `paper-out`, `unplug scanner`, … send them.

The lane light, buzzer and button are gpiozero's mock pins, which live inside one
process: each `posd run` or `posd doctor` drives mock pins of its own, so the GPIO
driver runs for real, but this process cannot see the light or press the button.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.ledger import Ledger
from simulators.lane import SimulatedLane

CONTROL = "control.sock"
STATE = "simulation.json"
DEVICES = ("scanner", "display", "printer")
# A few products, so that a lane on this simulation has something to sell.
PRODUCTS = (
    # code, name, GTIN, price in cents, warranty months, serials in stock
    ("LAP-X1", "Laptop X1", "4006381333931", 129900, 24, ("LX-0001", "LX-0002", "LX-0003")),
    ("DRL-18", "Drill 18V", "5901234123457", 8950, 36, ("DR-7731", "DR-7732")),
)
ATTENDANT_BADGE = "BADGE-0042"


class SimulationError(RuntimeError):
    """A control that cannot be carried out (an unknown device, an unplugged scanner)."""


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Simulation:
    """Simulated devices for one terminal, the files that point posd at them, and the
    controls that play the world outside."""

    def __init__(self, folder: Path, *, mode: str = "cashier", printer: str = "network") -> None:
        self.folder = folder
        self.api_port = free_port()
        attendants = [{"name": "Mia", "badge": ATTENDANT_BADGE}]
        self.lane = SimulatedLane(
            folder,
            mode=mode,
            printer_transport=printer,
            attendants=attendants if mode == "self_checkout" else None,
            api_port=self.api_port,
        )
        self.config_path = folder / "posd.toml"
        self.control_path = folder / CONTROL
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    # -- starting and stopping ----------------------------------------------------------

    def start(self) -> None:
        """Stock a ledger (when there is none), write the configuration, and listen for
        controls."""
        if not self.lane.ledger_path.exists():
            stock(self.lane.ledger_path, self.lane.terminal, self.lane.branch)
        self.lane.write_config(self.config_path, gpio=True)
        self.config_path.chmod(0o640)  # as `posd provision` writes it; the doctor checks
        self.control_path.unlink(missing_ok=True)
        handle = self.handle

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    self.wfile.write(json.dumps(answer(handle, line)).encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(str(self.control_path), Handler)
        self._server.daemon_threads = True
        (self.folder / STATE).write_text(json.dumps(self.describe(), indent=2) + "\n")

    def serve(self) -> None:
        """Answer controls until `stop()`."""
        assert self._server is not None, "start() first"
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        """Stop answering (from another thread or a signal handler)."""
        if self._server is not None:
            threading.Thread(target=self._server.shutdown, daemon=True).start()

    def close(self) -> None:
        """Take every device away and remove the control socket; the ledger and the
        configuration stay for the next run."""
        if self._server is not None:
            self._server.server_close()
        self.lane.close()
        for name in (CONTROL, STATE):
            (self.folder / name).unlink(missing_ok=True)

    # -- what it is ---------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        lane = self.lane
        return {
            "pid": os.getpid(),
            "folder": str(self.folder),
            "config": str(self.config_path),
            "ledger": str(lane.ledger_path),
            "control": str(self.control_path),
            "terminal": lane.terminal,
            "branch": lane.branch,
            "mode": lane.mode,
            "api": f"http://127.0.0.1:{self.api_port}/",
            "scanner": {"kind": "serial", "port": lane.scanner.port, "terminator": "CR"},
            "display": {"model": "epson", "port": lane.display.path},
            "printer": {
                "transport": lane.printer_transport,
                "address": "{}:{}".format(*lane.printer.address),
                "port": lane.printer.path,
            },
            "gpio": "gpiozero mock pins inside each posd process (not shared with this one)",
            "stock": {code: list(serials) for code, _, _, _, _, serials in PRODUCTS},
        }

    def status(self) -> dict[str, Any]:
        lane = self.lane
        receipts = lane.printer.receipts
        last = receipts[-1] if receipts else None
        return {
            **self.describe(),
            "plugged": {
                "scanner": lane.scanner.plugged_in,
                "display": lane.display.plugged,
                "printer": lane.printer.plugged,
            },
            "glass": list(lane.glass),
            "printer_online": lane.printer.online,
            "receipts": len(receipts),
            "last_receipt": None
            if last is None
            else {"text": last.text, "barcodes": [b.data for b in last.barcodes]},
        }

    # -- the world outside --------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out one control; `{"ok": True, ...}` or SimulationError."""
        what = request.get("do")
        controls: dict[str, Callable[[], str]] = {
            "paper-out": self._printer("paper_out", "the printer is out of paper"),
            "paper-in": self._printer("paper_in", "paper is back in the printer"),
            "cover-open": self._printer("cover_open", "the printer's cover is open"),
            "cover-close": self._printer("cover_close", "the printer's cover is closed"),
        }
        if what == "status":
            return {"ok": True, **self.status()}
        if what == "scan":
            return {"ok": True, "said": self.scan(str(request.get("text", "")))}
        if what in ("unplug", "replug"):
            return {"ok": True, "said": self.plug(str(request.get("device")), what == "replug")}
        if isinstance(what, str) and what in controls:
            return {"ok": True, "said": controls[what]()}
        raise SimulationError(f"no such control {what!r}")

    def scan(self, text: str) -> str:
        if not text or "\r" in text or "\n" in text:
            raise SimulationError("give one barcode: some text, without line breaks")
        if not self.lane.scanner.plugged_in:
            raise SimulationError("the scanner is unplugged: posd simulate replug scanner")
        self.lane.scanner.scan(text)
        return f"scanned {text!r}"

    def plug(self, device: str, back: bool) -> str:
        if device not in DEVICES:
            raise SimulationError(f"no device {device!r}; devices: {', '.join(DEVICES)}")
        target = getattr(self.lane, device)
        plugged = self.status()["plugged"][device]
        if back and not plugged:
            target.replug()
        elif not back and plugged:
            target.unplug()
        return f"{device} {'plugged in' if back else 'unplugged'}"

    def _printer(self, method: str, said: str) -> Callable[[], str]:
        def control() -> str:
            getattr(self.lane.printer, method)()
            return said

        return control


def answer(handle: Callable[[dict[str, Any]], dict[str, Any]], line: bytes) -> dict[str, Any]:
    """One control request (a JSON line) carried out; never an exception."""
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise SimulationError('send one JSON object a line, e.g. {"do": "status"}')
        return handle(request)
    except (ValueError, SimulationError, OSError) as error:
        return {"ok": False, "error": str(error)}


def ask(folder: Path, request: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """Send one control to the simulation running in `folder`; its answer.
    ConnectionError when none is running there."""
    path = folder / CONTROL
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout_s)
        try:
            connection.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise ConnectionError(
                f"no simulation is running in {folder} (start one with: posd simulate)"
            ) from error
        connection.sendall(json.dumps(request).encode() + b"\n")
        with connection.makefile("rb") as replies:
            reply: dict[str, Any] = json.loads(replies.readline())
    return reply


def stock(path: Path, terminal: str, branch: str) -> None:
    """A new ledger at `path` with `PRODUCTS` received and in stock."""
    with Ledger.create(path, terminal=terminal, branch=branch) as ledger:
        for code, name, gtin, price, warranty, serials in PRODUCTS:
            ledger.define_product(
                code, name, actor="simulation", gtin=gtin, warranty_months=warranty,
                price_cents=price,
            )  # fmt: skip
            ledger.receive(f"PO-{code}", "Simulated Supplies", code, list(serials),
                           actor="simulation")  # fmt: skip
        ledger.define_product("CABLE", "USB cable", actor="simulation", gtin="4012345678901",
                              serial_tracked=False, price_cents=1500)  # fmt: skip


def running(folder: Path) -> bool:
    """Whether a simulation answers in `folder`."""
    with contextlib.suppress(ConnectionError, OSError, ValueError):
        return bool(ask(folder, {"do": "status"}, timeout_s=2.0).get("ok"))
    return False
