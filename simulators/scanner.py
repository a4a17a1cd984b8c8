"""Simulated barcode scanners on real kernel transports, with controls for tests.

`SimulatedWedgeScanner` writes the same binary `input_event` records the kernel
writes for a USB keyboard-wedge scanner into a pipe; the daemon's `EvdevScanner`
reads them through exactly the code that reads `/dev/input/…`. `SimulatedSerialScanner`
is a pseudo-terminal reached through a link the test names, which the daemon's
`SerialScanner` opens with pyserial like a `/dev/serial/by-id/…` port.

Beyond the transport, each has the controls a test needs to play the outside world:
`scan("SN-1", layout="de")`, `pause(seconds)`, `drop_events(n)`,
`send_syn_dropped()`, `unplug()` and `replug()`.
"""

from __future__ import annotations

import os
import tty
from pathlib import Path

from evdev import ecodes

from daemon.drivers.keymap import KeyboardLayout
from daemon.drivers.scanner_evdev import END_KEYS, INPUT_EVENT

# A realistic start for event timestamps (they are CLOCK_REALTIME on most kernels).
_START_TIME = 1_700_000_000.0


class ManualClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Unplugged(FileNotFoundError):
    """Raised by `open()` while a simulated scanner is unplugged, as a missing device is."""


class SimulatedWedgeScanner:
    """A keyboard-wedge scanner: kernel key events through a pipe.

    Pass `sim.open` to `EvdevScanner(open_device=...)`. Typing advances the event
    timestamps by `key_interval_s` per key event, as a real scanner's burst does.
    """

    def __init__(
        self,
        layout: str | KeyboardLayout = "us",
        *,
        end_key: str = "enter",
        key_interval_s: float = 0.002,
        clock: ManualClock | None = None,
    ) -> None:
        self._layouts: dict[str, KeyboardLayout] = {}
        self.layout = self._layout(layout)
        self.end_key = end_key
        self.key_interval_s = key_interval_s
        self.clock = clock
        self.caps_lock = False
        self._time = _START_TIME
        self._drop = 0
        self._dropped = 0
        self._read_fd = -1
        self._write_fd = -1
        self.replug()

    # transport

    @property
    def plugged_in(self) -> bool:
        return self._write_fd >= 0

    def open(self) -> int:
        """A descriptor to read this scanner's events from (what the daemon opens)."""
        if not self.plugged_in:
            raise Unplugged("simulated wedge scanner is unplugged")
        return os.dup(self._read_fd)

    def unplug(self) -> None:
        """Pull the cable: the reader sees end of input; `open` fails until `replug`."""
        for fd in (self._write_fd, self._read_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1

    def replug(self) -> None:
        """Plug the scanner back in (a fresh device, Caps Lock off)."""
        self.unplug()
        self._read_fd, self._write_fd = os.pipe()
        self.caps_lock = False

    def close(self) -> None:
        self.unplug()

    # controls

    def scan(self, text: str, *, layout: str | None = None, end_key: str | None = None) -> None:
        """Type `text` then the end-of-scan key, as the scanner does for one barcode."""
        self.type(text, layout=layout)
        self.press_end(end_key)

    def type(self, text: str, *, layout: str | None = None) -> None:
        """Type `text` with no end key, holding Shift/AltGr/Ctrl where the layout needs them."""
        keyboard = self._layout(layout) if layout is not None else self.layout
        for code, value in keyboard.key_events_for(text, caps_lock=self.caps_lock):
            self.key(code, value)

    def press_end(self, end_key: str | None = None) -> None:
        code = END_KEYS[end_key or self.end_key]
        self.key(code, 1)
        self.key(code, 0)

    def toggle_caps_lock(self) -> None:
        """Press and release Caps Lock on the scanner's keyboard."""
        self.key(ecodes.KEY_CAPSLOCK, 1)
        self.key(ecodes.KEY_CAPSLOCK, 0)
        self.caps_lock = not self.caps_lock

    def key(self, code: int, value: int) -> None:
        """One key event as the kernel reports it: MSC_SCAN, EV_KEY, SYN_REPORT."""
        self._tick(self.key_interval_s)
        if self._drop:
            self._drop -= 1
            self._dropped += 1
            if self._drop == 0:
                self.send_syn_dropped()
            return
        self._write(
            (ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70000 + code),
            (ecodes.EV_KEY, code, value),
            (ecodes.EV_SYN, ecodes.SYN_REPORT, 0),
        )

    def drop_events(self, count: int) -> None:
        """Lose the next `count` key events as an overflowing kernel buffer does, then
        report it with SYN_DROPPED."""
        self._drop = count

    def send_syn_dropped(self) -> None:
        self._write((ecodes.EV_SYN, ecodes.SYN_DROPPED, 0))

    def pause(self, seconds: float) -> None:
        """The scanner stops for `seconds` (no real waiting: timestamps move on)."""
        self._tick(seconds)

    def send_raw(self, data: bytes) -> None:
        """Write arbitrary bytes to the reader, e.g. a truncated record."""
        os.write(self._write_fd, data)

    @property
    def dropped(self) -> int:
        """How many key events `drop_events` has swallowed so far."""
        return self._dropped

    def _tick(self, seconds: float) -> None:
        self._time += seconds
        if self.clock is not None:
            self.clock.advance(seconds)

    def _write(self, *records: tuple[int, int, int]) -> None:
        if not self.plugged_in:
            raise Unplugged("simulated wedge scanner is unplugged; replug() it first")
        seconds = int(self._time)
        micros = round((self._time - seconds) * 1_000_000)
        data = b"".join(INPUT_EVENT.pack(seconds, micros, *record) for record in records)
        os.write(self._write_fd, data)

    def _layout(self, layout: str | KeyboardLayout) -> KeyboardLayout:
        if isinstance(layout, KeyboardLayout):
            self._layouts.setdefault(layout.name, layout)
            return layout
        if layout not in self._layouts:
            self._layouts[layout] = KeyboardLayout(layout)
        return self._layouts[layout]


class SimulatedSerialScanner:
    """A serial scanner on a pseudo-terminal, reached through the link at `port`.

    The link stands in for `/dev/serial/by-id/…`: `unplug()` closes the terminal and
    removes the link, `replug()` makes a new terminal and points the link at it, so the
    daemon's reconnect path runs for real.
    """

    def __init__(
        self,
        port: str | Path,
        *,
        terminator: str = "CR",
        encoding: str = "utf-8",
        clock: ManualClock | None = None,
    ) -> None:
        self.port = str(port)
        self.terminator = terminator
        self.encoding = encoding
        self.clock = clock
        self._controller = -1
        self._device = -1
        self.replug()

    @property
    def plugged_in(self) -> bool:
        return self._controller >= 0

    def scan(self, text: str, *, terminator: str | None = None) -> None:
        """Send one barcode followed by the terminator."""
        ending = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}[
            (terminator or self.terminator).upper()
        ]
        self.send(text.encode(self.encoding) + ending)

    def send(self, data: bytes) -> None:
        """Send raw bytes down the line."""
        if not self.plugged_in:
            raise Unplugged(f"simulated serial scanner at {self.port} is unplugged")
        os.write(self._controller, data)

    def pause(self, seconds: float) -> None:
        """The scanner stops for `seconds` on the shared manual clock."""
        if self.clock is None:
            raise RuntimeError("pause() needs the ManualClock the scanner under test reads")
        self.clock.advance(seconds)

    def unplug(self) -> None:
        for fd in (self._controller, self._device):
            if fd >= 0:
                os.close(fd)
        self._controller = self._device = -1
        link = Path(self.port)
        if link.is_symlink():
            link.unlink()

    def replug(self) -> None:
        self.unplug()
        self._controller, self._device = os.openpty()
        # Raw mode from the start, so nothing written before the daemon opens the port
        # is echoed or has CR turned into LF.
        tty.setraw(self._device)
        target = os.ttyname(self._device)
        temporary = Path(f"{self.port}.new")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(target)
        os.replace(temporary, self.port)

    def close(self) -> None:
        self.unplug()


__all__ = [
    "ManualClock",
    "SimulatedSerialScanner",
    "SimulatedWedgeScanner",
    "Unplugged",
]
