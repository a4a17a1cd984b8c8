"""A whole lane on simulated devices: posd as it runs on a terminal, with nothing attached.

The scanner is a pty at a stable-looking link (`SimulatedSerialScanner`), the pole
display another (`SimulatedDisplay`), the receipt printer a loopback TCP socket (or
its pty) (`SimulatedPrinter`), the lights, buzzer and button gpiozero's MockFactory
(`SimulatedGpio`). The daemon is told about them only through its configuration:

    lane = SimulatedLane(tmp_path, mode="cashier")
    stock(lane.ledger_path, ...)                  # a ledger for the lane to work on
    daemon = await lane.start()                   # posd, in this event loop
    await lane.scan("LX-0001")                    # typed by the scanner, decided
    lane.display.lines, lane.gpio.light_colour(), lane.printer.receipts[-1].text
    await lane.stop()

`lane.write_config(path)` writes the same configuration as TOML, for `posd run
--config` in a separate process (the power-cut tests kill that process).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.config.model import parse_config
from daemon.drivers.keymap import KeyboardLayout
from daemon.drivers.scanner import ReadingScanner
from daemon.drivers.scanner_evdev import EvdevScanner
from daemon.lane.loop import Lane
from daemon.lane.run import Daemon, start
from daemon.rules.lane.types import Command, CommandName
from simulators.display import SimulatedDisplay
from simulators.gpio import LanePins, SimulatedGpio
from simulators.printer import SimulatedPrinter
from simulators.scanner import SimulatedSerialScanner, SimulatedWedgeScanner

TERMINAL = "T-001"
# Inputs whose event is the answer to what a person did (not a printer or device report).
_DECISIONS = ("scan", "command", "release", "ledger", "scanner")
BRANCH = "NORTH"


class SimulatedLane:
    """Simulated devices for one lane, and the configuration that points posd at them."""

    def __init__(
        self,
        folder: Path,
        *,
        mode: str = "cashier",
        attendants: list[dict[str, str]] | None = None,
        managers: list[dict[str, str]] | None = None,
        printer_transport: str = "network",
        lane: dict[str, Any] | None = None,
        terminal: str = TERMINAL,
        branch: str = BRANCH,
        wedge: bool = False,
        screen: dict[str, Any] | None = None,
        api_port: int = 0,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.ledger_path = folder / "ledger.db"
        self.mode = mode
        self.attendants = attendants or []
        self.managers = managers or []
        self.printer_transport = printer_transport
        self.lane_section = lane or {}
        self.screen_section = screen or {}
        self.api_port = api_port  # 0: any free port (a test in this process asks the daemon)
        self.terminal = terminal
        self.branch = branch
        self.scanner = SimulatedSerialScanner(folder / "scanner")
        # A second scanner, a keyboard wedge: kernel key events through a pipe, read by
        # the daemon's evdev driver (a pipe is no input device, so the test attaches it).
        self.wedge = SimulatedWedgeScanner() if wedge else None
        self.display = SimulatedDisplay("epson", link=folder / "display")
        self.display.start()
        self.printer = SimulatedPrinter(link=folder / "printer")
        self.printer.start()
        self.gpio = SimulatedGpio(LanePins())
        self.daemon: Daemon | None = None

    # -- configuration ----------------------------------------------------------------

    def config(self, *, gpio: bool = True) -> dict[str, Any]:
        """The lane's configuration, as the TOML file would hold it."""
        pins = self.gpio.pins
        printer: dict[str, Any] = (
            {
                "transport": "network",
                "host": self.printer.address[0],
                "port": self.printer.address[1],
            }
            if self.printer_transport == "network"
            else {"transport": "serial", "port": self.printer.path}
        )
        printer.update({"timeout_s": 5.0, "status_timeout_s": 1.0})
        config: dict[str, Any] = {
            "terminal": {
                "id": self.terminal,
                "branch": self.branch,
                "mode": self.mode,
                "store_name": "Simulated Store",
            },
            "ledger": {"path": str(self.ledger_path)},
            "scanners": [
                {"kind": "serial", "port": self.scanner.port, "name": "scanner", "terminator": "CR"}
            ],
            "display": {"port": self.display.path, "model": "epson", "reconnect_s": 0.1},
            "printer": printer,
            "api": {"host": "127.0.0.1", "port": self.api_port},
            "attendants": self.attendants,
            "managers": self.managers,
            "lane": self.lane_section,
            "screen": self.screen_section,
        }
        if gpio:
            config["gpio"] = {
                "pin_factory": "mock",
                "pins": {
                    "green": pins.green,
                    "amber": pins.amber,
                    "red": pins.red,
                    "buzzer": pins.buzzer,
                    "drawer": pins.drawer,
                    "button": pins.button,
                },
            }
        return config

    def write_config(self, path: Path, *, gpio: bool = False) -> Path:
        """Write the configuration as TOML (GPIO off by default: another process cannot
        share this process's MockFactory)."""
        path.write_text(to_toml(self.config(gpio=gpio)), encoding="utf-8")
        return path

    # -- running posd in this event loop ------------------------------------------------

    async def start(self) -> Daemon:
        self.daemon = await start(parse_config(self.config()), factory=self.gpio.factory)
        if self.wedge is not None:
            reader = EvdevScanner(self.wedge.open, KeyboardLayout("us"), source="wedge")
            task = asyncio.get_running_loop().create_task(_read(reader, self.daemon.lane))
            self.daemon.tasks.append(task)
        await self.settled()
        return self.daemon

    async def stop(self) -> None:
        if self.daemon is not None:
            await self.daemon.stop()
            self.daemon = None

    def close(self) -> None:
        for device in (self.scanner, self.display, self.printer, self.wedge):
            if device is not None:
                device.close()
        self.gpio.factory.close()

    @property
    def lane(self) -> Lane:
        assert self.daemon is not None, "start() the lane first"
        return self.daemon.lane

    # -- playing the world outside ----------------------------------------------------

    async def scan(self, text: str, *, by: str = "scanner") -> dict[str, Any]:
        """The scanner (`by="wedge"`: the keyboard wedge) reads `text`; returns the lane's
        event for it (the ledger's answer, when the scan started a ledger operation) once
        it is decided and shown."""
        device = self.wedge if by == "wedge" else self.scanner
        assert device is not None, "make the lane with wedge=True to scan with the wedge"
        events = self.lane.subscribe()
        try:
            before = self.lane.taken
            device.scan(text)
            await wait_until(lambda: self.lane.taken > before, f"the lane to take scan {text!r}")
            await self.settled()
        finally:
            self.lane.unsubscribe(events)
        decided: dict[str, Any] = {}
        while not events.empty():
            event = events.get_nowait()
            if event is not None and event["input"]["kind"] in _DECISIONS:
                decided = event
        return decided

    async def command(self, name: str, argument: str = "") -> dict[str, Any]:
        """A cashier command from the kiosk."""
        event = await self.lane.ask(Command(CommandName(name.upper()), argument, "api"))
        await self.settled()
        return event

    async def settled(self) -> None:
        """Wait until the lane is idle and the glass shows what the lane last asked for."""
        await wait_until(lambda: self.lane.idle, "the lane to finish its input")
        display = self.lane.outputs.display
        if display is not None and display.missing is None and self.display.lines is not None:
            wanted = tuple(line.ljust(20)[:20] for line in self.lane.state.display)
            await wait_until(
                lambda: self.display.lines == wanted, f"the display to show {wanted}", soft=True
            )

    @property
    def glass(self) -> tuple[str, str]:
        """The two display lines as a customer reads them, trailing spaces dropped."""
        first, second = self.display.lines
        return first.rstrip(), second.rstrip()


async def _read(scanner: ReadingScanner, lane: Lane) -> None:
    async for item in scanner.scans():
        lane.submit(item)


async def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = 5.0, *, soft: bool = False
) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            if soft:
                return False
            raise TimeoutError(f"gave up waiting {timeout_s:g} s for {what}")
        await asyncio.sleep(0.005)
    return True


def to_toml(data: dict[str, Any]) -> str:
    """Enough TOML for a lane configuration: tables, arrays of tables, scalars, lists."""
    lines: list[str] = []

    def value(item: Any) -> str:
        if isinstance(item, bool):
            return "true" if item else "false"
        if isinstance(item, int | float):
            return repr(item)
        if isinstance(item, list):
            return "[" + ", ".join(value(v) for v in item) + "]"
        return json.dumps(str(item))

    def table(prefix: str, body: dict[str, Any], header: str) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict) and not _tables(v)}
        if header:
            lines.append(header)
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        lines.append("")
        for key, item in body.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(item, dict):
                table(name, item, f"[{name}]")
            elif _tables(item):
                for entry in item:
                    table(name, entry, f"[[{name}]]")

    table("", data, "")
    return "\n".join(lines)


def _tables(item: Any) -> bool:
    return isinstance(item, list) and bool(item) and all(isinstance(v, dict) for v in item)


class PosdProcess:
    """`posd run --config` in its own process, as systemd starts it: `start()` returns
    once the daemon has said READY=1 on its notify socket; `kill()` is a power cut.

    `file_size_limit` caps the size of any file the daemon writes (RLIMIT_FSIZE): past
    it a write fails as it does on a full disk.
    """

    def __init__(self, config: Path, *, file_size_limit: int | None = None) -> None:
        self.config = config
        self.file_size_limit = file_size_limit
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_after_s: float | None = None
        self._log = config.with_suffix(".log")  # what the daemon printed

    def start(self, timeout_s: float = 20.0) -> PosdProcess:
        with tempfile.TemporaryDirectory(prefix="posd-notify-") as folder:
            address = str(Path(folder) / "notify")
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
                listener.bind(address)
                listener.settimeout(0.1)
                env = dict(os.environ, NOTIFY_SOCKET=address)
                started = time.monotonic()
                command = [sys.executable, "-c", _LAUNCH, str(self.config)]
                command.append(str(self.file_size_limit or 0))
                with self._log.open("ab") as log:  # the child keeps its own copy
                    self.process = subprocess.Popen(
                        command, env=env, stdout=log, stderr=subprocess.STDOUT
                    )
                while time.monotonic() - started < timeout_s:
                    try:
                        message = listener.recv(4096).decode()
                    except TimeoutError:
                        if self.process.poll() is not None:
                            break
                        continue
                    if "READY=1" in message.split("\n"):
                        self.ready_after_s = time.monotonic() - started
                        return self
        output = self.stop()
        raise RuntimeError(f"posd did not become ready:\n{output}")

    def kill(self) -> None:
        """Power cut: SIGKILL, no chance to finish anything."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 10.0) -> str:
        """SIGTERM, as systemd stops it; the daemon's output."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.output

    @property
    def output(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()


# The child: cap file sizes if asked (ignoring SIGXFSZ, so an oversized write fails with
# EFBIG instead of killing the process), then run `posd run --config`.
_LAUNCH = """
import resource, signal, sys
limit = int(sys.argv[2])
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = ["posd", "run", "--config", sys.argv[1]]
from daemon.cli import main
main()
"""
