"""Lane figures at `units` units in the ledger (default 1,000,000), measured not asserted.

- `scan_to_verdict_p99_ms` (target <= 1): from the moment the kernel `input_event`
  records of a scan, up to its last key event, are written into the pipe the evdev
  scanner driver reads, to the moment the verdict's bytes have been written to the
  customer display's transport (a pty, at the end of the display driver's write). In
  between: key decoding, barcode parsing, the ledger look-up, the lane's rules, the
  journal entry and the display driver on its own thread. One asyncio loop, as in
  `posd run`. Nine scans in ten are units in stock (added to the basket), one in ten a
  serial the ledger does not know (refused); the basket is cancelled every 40 scans.
- `scan_to_verdict_floor_median_ms`: `daemon.bench.floors.ScanFloor` on the same loop,
  in turn with each scan: the serial written into a pipe, looked up, a journal row
  committed at synchronous=NORMAL, two display lines written to a pty.
  `scan_to_verdict_ratio` (goal <= 1.5): the two medians divided.
- `sqlite_floor_p99_ms`: a bare indexed look-up of one serial (`SELECT id FROM units
  WHERE serial_key = ?`) on the same connection, same run, same kind of random serials.
- `ready_s` (goal <= 1): `posd run --config` as its own process, from the start of
  the process to READY=1 on its notify socket (interpreter start included), as every
  start after the first is; `ready_first_s` the first start on a new state folder.
- `rss_mb` (target <= 80): that process's resident memory after 300 scans through its
  serial scanner; `rss_peak_mb` its high-water mark. It is configured as a terminal is:
  an evdev scanner (unplugged; its keyboard layout loaded) and a serial one, display,
  printer, GPIO (mock pins) and the kiosk API. `rss_ratio` (goal <= 1.2): `rss_mb` to
  `rss_floor_mb`, a Python that imports only the design card's packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evdev import ecodes

from daemon.bench.floors import ScanFloor, imports_rss_mb
from daemon.bench.ledger import PRODUCTS, fill, percentile, serial_for
from daemon.config.model import parse_config
from daemon.drivers.base import open_serial
from daemon.drivers.display import loop as display_loop
from daemon.drivers.keymap import KeyboardLayout
from daemon.drivers.scanner_evdev import INPUT_EVENT, EvdevScanner
from daemon.lane.outputs import DisplayOutput
from daemon.lane.run import Daemon, start
from daemon.rules.lane.types import Command, CommandName
from daemon.rules.serials import serial_key

SAMPLES = 2000
WARMUP = 200
BASKET_SIZE = 40
TERMINAL, BRANCH = "BENCH", "B1"  # what daemon.bench.ledger.fill creates


def run(units: int = 1_000_000, workdir: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = Path(tmp)
        ledger, _ = fill(folder / "bench.db", units)
        for number, (code, name, _) in enumerate(PRODUCTS):
            # Prices, so that every accepted scan changes the total on the display.
            ledger.define_product(code, name, actor="bench", price_cents=1000 + number * 7)
        ledger.close()
        figures = asyncio.run(_scan_path(folder, units))
        figures.update(_daemon_process(folder, units))
        figures["lane_units"] = units
        return figures


# ------------------------------------------------------------------- scan to verdict


class _Pty:
    def __init__(self, link: Path) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        link.symlink_to(os.ttyname(self.slave))
        self.link = link

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.master, 65536):
                pass

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _TimedPort:
    """The display's serial port, noting when each write has been handed over."""

    def __init__(
        self, port: Any, stamps: list[int], wake: asyncio.Event, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._port = port
        self._stamps = stamps
        self._wake = wake
        self._loop = loop

    def write(self, data: bytes) -> int | None:
        written: int | None = self._port.write(data)
        self._stamps.append(time.perf_counter_ns())
        self._loop.call_soon_threadsafe(self._wake.set)
        return written

    def fileno(self) -> int:
        # A port with a descriptor is written from the event loop (the display driver's
        # `LoopWriter`), as posd run writes a real serial display: timed by
        # `_timed_loop_writes`.
        return int(self._port.fileno())

    def close(self) -> None:
        self._port.close()


@contextlib.contextmanager
def _timed_loop_writes(stamps: list[int], wake: asyncio.Event) -> Iterator[None]:
    """Stamp each write the loop makes to the display's descriptor."""
    original = display_loop._write

    def timed(fd: int, data: bytes) -> int:
        written = original(fd, data)
        stamps.append(time.perf_counter_ns())
        wake.set()
        return written

    display_loop._write = timed
    try:
        yield
    finally:
        display_loop._write = original


def _key_records(layout: KeyboardLayout, text: str) -> bytes:
    events = [*layout.key_events_for(text), (ecodes.KEY_ENTER, 1), (ecodes.KEY_ENTER, 0)]
    out = []
    for index, (code, value) in enumerate(events):
        micros = index * 1000  # a scanner types about one key event per millisecond
        out.append(INPUT_EVENT.pack(100, micros, ecodes.EV_MSC, ecodes.MSC_SCAN, code))
        out.append(INPUT_EVENT.pack(100, micros, ecodes.EV_KEY, code, value))
        out.append(INPUT_EVENT.pack(100, micros, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
    return b"".join(out)


async def _scan_path(folder: Path, units: int) -> dict[str, float]:
    config = parse_config(
        {
            "terminal": {"id": TERMINAL, "branch": BRANCH},
            "ledger": {"path": str(folder / "bench.db")},
            "api": {"port": 0},
        }
    )
    daemon = await start(config)
    display_pty = _Pty(folder / "display")
    floor_pty = _Pty(folder / "display-floor")
    read_fd, write_fd = os.pipe()
    stamps: list[int] = []
    floor_stamps: list[int] = []
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()
    display = DisplayOutput(
        lambda: _TimedPort(open_serial(str(display_pty.link)), stamps, wake, loop),
        "epson",
        report=daemon.lane.submit,
    )
    daemon.outputs.display = display
    floor_display = os.open(floor_pty.link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    floor = ScanFloor(folder / "bench.db", floor_display, floor_stamps, wake.set)
    floor.start(loop)
    layout = KeyboardLayout("us")
    scanner = EvdevScanner(lambda: os.dup(read_fd), layout, source="bench")
    gc.freeze()  # as `posd run` does once started
    daemon.tasks.append(loop.create_task(display.run()))
    daemon.tasks.append(loop.create_task(_feed(scanner, daemon)))

    async def timed(fd: int, data: bytes, stamps: list[int]) -> float:
        """Milliseconds from writing `data` into pipe `fd` to the first display write."""
        wake.clear()
        before = len(stamps)
        started = time.perf_counter_ns()
        os.write(fd, data)
        while len(stamps) <= before:
            await asyncio.wait_for(wake.wait(), 5)
            wake.clear()
        return (stamps[before] - started) / 1e6

    try:
        with _timed_loop_writes(stamps, wake):
            await _settle(daemon, display_pty)
            rng = random.Random(11)
            samples: list[float] = []
            floor_samples: list[float] = []
            refused_last = False  # two refusals in a row show the same text: nothing to send
            for index in range(WARMUP + SAMPLES):
                if index % BASKET_SIZE == BASKET_SIZE - 1:
                    await daemon.lane.ask(Command(CommandName.CANCEL))
                    await _settle(daemon, display_pty)
                if rng.random() < 0.1 and not refused_last:
                    serial = f"ZZ-{rng.randrange(10**9):09d}"  # not in the ledger: refused
                    refused_last = True
                else:
                    serial = serial_for(rng.randrange(units))[1]
                    refused_last = False
                records = _key_records(layout, serial)
                took = await timed(write_fd, records, stamps)
                await _settle(daemon, display_pty)
                floor_took = await timed(floor.write_fd, serial.encode() + b"\r", floor_stamps)
                floor_pty.drain()
                if index >= WARMUP:
                    samples.append(took)
                    floor_samples.append(floor_took)
            bare = _bare_selects(daemon, units, rng)
    finally:
        floor.stop(loop)
        os.close(floor_display)
        await daemon.stop()
        os.close(write_fd)
        os.close(read_fd)
        display_pty.close()
        floor_pty.close()
    median = statistics.median(samples)
    floor_median = statistics.median(floor_samples)
    return {
        "scan_to_verdict_p99_ms": round(percentile(samples, 0.99), 3),
        "scan_to_verdict_median_ms": round(median, 3),
        "scan_to_verdict_floor_median_ms": round(floor_median, 3),
        "scan_to_verdict_floor_p99_ms": round(percentile(floor_samples, 0.99), 3),
        "scan_to_verdict_ratio": round(median / floor_median, 2),
        "sqlite_floor_p99_ms": round(percentile(bare, 0.99), 4),
        "sqlite_floor_median_ms": round(percentile(bare, 0.5), 4),
    }


async def _feed(scanner: EvdevScanner, daemon: Daemon) -> None:
    async for item in scanner.scans():
        daemon.lane.submit(item)


async def _settle(daemon: Daemon, display: _Pty) -> None:
    while not daemon.lane.idle:
        await asyncio.sleep(0.0005)
    display.drain()


def _bare_selects(daemon: Daemon, units: int, rng: random.Random) -> list[float]:
    keys = [serial_key(serial_for(rng.randrange(units))[1]) for _ in range(SAMPLES)]
    samples = []
    for key in keys:
        started = time.perf_counter_ns()
        daemon.ledger.floor(key)
        samples.append((time.perf_counter_ns() - started) / 1e6)
    return samples


# ------------------------------------------------------------- the daemon's process

_CONFIG = """
[terminal]
id = "{terminal}"
branch = "{branch}"

[ledger]
path = "{ledger}"

[logging]
level = "warning"

[[scanners]]
kind = "evdev"
device = "/dev/input/by-id/posd-bench-scanner-not-attached"
layout = "us"

[[scanners]]
kind = "serial"
port = "{scanner}"

[display]
port = "{display}"

[printer]
transport = "file"
path = "{printer}"

[gpio]
pin_factory = "mock"
pins = {{ green = 17, amber = 27, red = 22, buzzer = 18, drawer = 23, button = 24 }}

[api]
port = 0
"""


def _daemon_process(folder: Path, units: int) -> dict[str, float]:
    scanner, display = _Pty(folder / "scanner"), _Pty(folder / "display-2")
    config = folder / "posd.toml"
    config.write_text(
        _CONFIG.format(
            terminal=TERMINAL,
            branch=BRANCH,
            ledger=folder / "bench.db",
            scanner=scanner.link,
            display=display.link,
            printer=folder / "receipts.bin",
        )
    )
    try:
        # The first start pickles python-escpos's capabilities into the state folder;
        # every later one (each boot of a terminal) reads the pickle: that one is timed.
        process, first_ready_s = _start_daemon(folder, config)
        _stop(process)
        process, ready_s = _start_daemon(folder, config)
        try:
            rng = random.Random(5)
            for _ in range(300):
                serial = serial_for(rng.randrange(units))[1]
                os.write(scanner.master, serial.encode() + b"\r")
                time.sleep(0.002)
                display.drain()
            time.sleep(0.5)
            display.drain()
            rss, peak = _memory(process.pid)
        finally:
            _stop(process)
    finally:
        scanner.close()
        display.close()
    floor_rss = imports_rss_mb()
    return {
        "ready_s": round(ready_s, 3),
        "ready_first_s": round(first_ready_s, 3),
        "rss_mb": rss,
        "rss_peak_mb": peak,
        "rss_floor_mb": floor_rss,
        "rss_ratio": round(rss / floor_rss, 2),
    }


def _start_daemon(folder: Path, config: Path) -> tuple[subprocess.Popen[bytes], float]:
    """`posd run` in its own process; it and the seconds until it said READY=1."""
    notify = folder / "notify"
    notify.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(notify))
        listener.settimeout(30)
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from daemon.cli import main; main()",
                "run",
                "--config",
                str(config),
            ],
            env=dict(os.environ, NOTIFY_SOCKET=str(notify)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while "READY=1" not in listener.recv(4096).decode().split("\n"):
                pass
        except BaseException:
            _stop(process)
            raise
        return process, time.monotonic() - started


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=20)


def _memory(pid: int) -> tuple[float, float]:
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields["VmRSS"], fields["VmHWM"]


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
