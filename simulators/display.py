"""A simulated 2x20 pole display on a real pseudo-terminal.

The driver opens ``display.path`` with pyserial exactly as it would open
``/dev/serial/by-id/...``; a background reader decodes what arrives, per command set,
into what a customer would read on the glass (``display.lines``).

    with SimulatedDisplay("epson", link=tmp_path / "pole") as display:
        port = serial.Serial(display.path)
        ...
        display.unplug()   # the cable is pulled: writes fail
        display.replug()   # back, showing its power-on text, at the same path

This module also holds ``PtyPort``, the device end of a pty that the printer simulator
uses too.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

COLUMNS = 20
ROWS = 2


class PtyPort:
    """The device end of a pseudo-terminal, behind an optional stable symlink.

    ``on_data`` is called on the reader thread with every chunk the host writes;
    ``send`` writes back towards the host.
    """

    def __init__(
        self, on_data: Callable[[bytes], None], link: str | os.PathLike[str] | None = None
    ) -> None:
        self._on_data = on_data
        self._link = Path(link) if link is not None else None
        self._master: int | None = None
        self._slave: int | None = None
        self._tty_name = ""
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def path(self) -> str:
        """The path the driver opens: the symlink when one was asked for."""
        return str(self._link) if self._link is not None else self._tty_name

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def plug(self) -> None:
        if self.plugged:
            return
        master, slave = os.openpty()
        tty.setraw(slave)  # a UART does not echo or translate line ends
        self._master, self._slave = master, slave
        self._tty_name = os.ttyname(slave)
        if self._link is not None:
            staging = self._link.with_name(self._link.name + ".new")
            staging.unlink(missing_ok=True)
            staging.symlink_to(self._tty_name)
            staging.replace(self._link)
        self._stop = threading.Event()
        self._reader = threading.Thread(
            target=self._read_loop, args=(master, self._stop), name="pty-reader", daemon=True
        )
        self._reader.start()

    def unplug(self) -> None:
        """Pull the cable: the pty goes away, so the host's writes fail from now on."""
        if not self.plugged:
            return
        self._stop.set()
        if self._reader is not None:
            self._reader.join()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        if self._link is not None:
            self._link.unlink(missing_ok=True)

    def send(self, data: bytes) -> None:
        if self._master is not None:
            os.write(self._master, data)

    def _read_loop(self, master: int, stop: threading.Event) -> None:
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if data:
                self._on_data(data)


class _Glass:
    """Two rows of cells and a cursor that move the way an overwrite-mode display does."""

    def __init__(self, lines: tuple[str, str]) -> None:
        self.rows = [list(line.ljust(COLUMNS)[:COLUMNS]) for line in lines]
        self.row = 0
        self.column = 0
        self.codec = "cp437"

    def clear(self) -> None:
        self.rows = [[" "] * COLUMNS for _ in range(ROWS)]
        self.home()

    def home(self) -> None:
        self.row, self.column = 0, 0

    def clear_line(self) -> None:
        self.rows[self.row] = [" "] * COLUMNS
        self.column = 0

    def goto(self, column: int, row: int) -> None:
        """1-based, as on the wire; out-of-range requests are ignored, as displays do."""
        if 1 <= column <= COLUMNS and 1 <= row <= ROWS:
            self.row, self.column = row - 1, column - 1

    def right(self) -> None:
        self.column += 1
        if self.column == COLUMNS:
            self.row, self.column = (self.row + 1) % ROWS, 0

    def left(self) -> None:
        if self.column == 0:
            self.row, self.column = (self.row + 1) % ROWS, COLUMNS - 1
        else:
            self.column -= 1

    def down(self) -> None:
        self.row = (self.row + 1) % ROWS

    def put(self, byte: int) -> None:
        self.rows[self.row][self.column] = bytes([byte]).decode(self.codec, errors="replace")
        self.right()

    def write_line(self, row: int, text: bytes) -> None:
        self.rows[row] = list(text.decode(self.codec, errors="replace").ljust(COLUMNS)[:COLUMNS])

    @property
    def lines(self) -> tuple[str, str]:
        return ("".join(self.rows[0]), "".join(self.rows[1]))


# Each decoder looks at the start of the buffer and returns how many bytes the command
# there took (0 = incomplete, wait for more). Unknown commands are recorded, not guessed.

_EPSON_CODE_TABLES = {0: "cp437", 2: "cp850", 16: "cp1252", 19: "cp858"}
_EPSON_US_ARGS = {
    b"$": 2,
    b"C": 1,
    b"X": 1,
    b"E": 1,
    b"r": 1,
    b".": 1,
    b",": 1,
    b";": 1,
    b"#": 2,
    b"\x01": 0,
    b"\x02": 0,
    b"\x03": 0,
    b"\n": 0,
    b"\r": 0,
    b"B": 0,
    b"@": 0,
}
_EPSON_ESC_ARGS = {b"@": 0, b"t": 1, b"R": 1, b"=": 1, b"%": 1, b"?": 1}
_CD5220_ESC_ARGS = {
    b"@": 0,
    b"\x11": 0,
    b"\x12": 0,
    b"\x13": 0,
    b"l": 2,
    b"[": 1,
    b"_": 1,
    b"*": 1,
    b"f": 1,
    b"c": 1,
    b"=": 1,
    b"W": 4,
    b"%": 1,
    b"?": 1,
}


def _common_control(glass: _Glass, byte: int) -> bool:
    actions: dict[int, Callable[[], None]] = {
        0x0C: glass.clear,
        0x18: glass.clear_line,
        0x0B: glass.home,
        0x0D: lambda: setattr(glass, "column", 0),
        0x0A: glass.down,
        0x08: glass.left,
        0x09: glass.right,
    }
    action = actions.get(byte)
    if action is None:
        return False
    action()
    return True


def _fixed(buffer: bytes, prefix_length: int, arg_count: int | None) -> int:
    """Length of a command of known argument count, 0 if it has not all arrived."""
    if arg_count is None:
        return 0
    needed = prefix_length + arg_count
    return needed if len(buffer) >= needed else 0


class _EpsonDecoder:
    def __init__(self, glass: _Glass, unknown: list[bytes]) -> None:
        self.glass, self.unknown = glass, unknown

    def step(self, buffer: bytes) -> int:
        first = buffer[0]
        if first >= 0x20:
            self.glass.put(first)
            return 1
        if first in (0x1B, 0x1F):
            if len(buffer) < 2:
                return 0
            table = _EPSON_ESC_ARGS if first == 0x1B else _EPSON_US_ARGS
            key = buffer[1:2]
            if key not in table:
                self.unknown.append(buffer[:2])
                return 2
            length = _fixed(buffer, 2, table[key])
            if length:
                self._command(bytes([first]) + key, buffer[2:length])
            return length
        if not _common_control(self.glass, first):
            self.unknown.append(buffer[:1])
        return 1

    def _command(self, name: bytes, args: bytes) -> None:
        glass = self.glass
        if name == b"\x1b@":
            glass.clear()
            glass.codec = "cp437"
        elif name == b"\x1bt":
            glass.codec = _EPSON_CODE_TABLES.get(args[0], "cp437")
        elif name == b"\x1f$":
            glass.goto(args[0], args[1])
        elif name == b"\x1f\n":
            glass.down()  # two rows: up and down land on the same row
        elif name == b"\x1f\r":
            glass.column = COLUMNS - 1
        elif name == b"\x1fB":
            glass.row = ROWS - 1


class _Cd5220Decoder:
    def __init__(self, glass: _Glass, unknown: list[bytes]) -> None:
        self.glass, self.unknown = glass, unknown
        glass.codec = "cp437"  # what the usual glyph ROM shows above 0x7F

    def step(self, buffer: bytes) -> int:
        first = buffer[0]
        if first >= 0x20:
            self.glass.put(first)
            return 1
        if first == 0x1B:
            if len(buffer) < 2:
                return 0
            key = buffer[1:2]
            if key == b"Q":  # ESC Q A|B|D text CR: a whole line at once
                end = buffer.find(b"\r", 3)
                if end < 0:
                    return 0
                which, text = buffer[2], buffer[3:end]
                if which in (ord("A"), ord("B")):
                    self.glass.write_line(which - ord("A"), text)
                return end + 1
            if key not in _CD5220_ESC_ARGS:
                self.unknown.append(buffer[:2])
                return 2
            length = _fixed(buffer, 2, _CD5220_ESC_ARGS[key])
            if length:
                self._command(key, buffer[2:length])
            return length
        if not _common_control(self.glass, first):
            self.unknown.append(buffer[:1])
        return 1

    def _command(self, key: bytes, args: bytes) -> None:
        glass = self.glass
        if key == b"@":
            glass.clear()
        elif key == b"l":
            glass.goto(args[0], args[1])
        elif key == b"[":
            moves: dict[bytes, Callable[[], None]] = {
                b"D": glass.left,
                b"C": glass.right,
                b"A": glass.down,
                b"B": glass.down,
                b"H": glass.home,
                b"L": lambda: setattr(glass, "column", 0),
                b"R": lambda: setattr(glass, "column", COLUMNS - 1),
                b"K": lambda: setattr(glass, "row", ROWS - 1),
            }
            move = moves.get(args)
            if move is None:
                self.unknown.append(b"\x1b[" + args)
            else:
                move()


class _Decoder(Protocol):
    def step(self, buffer: bytes) -> int: ...


_DECODERS: dict[str, Callable[[_Glass, list[bytes]], _Decoder]] = {
    "epson": _EpsonDecoder,
    "cd5220": _Cd5220Decoder,
}


class DisplayDecoder:
    """Turns a byte stream for one display model back into the two lines on the glass."""

    def __init__(self, model: str, lines: tuple[str, str] = ("", "")) -> None:
        if model not in _DECODERS:
            raise ValueError(f"display model {model!r} is unknown; use one of {sorted(_DECODERS)}")
        self.unknown_commands: list[bytes] = []
        self._glass = _Glass(lines)
        self._decoder = _DECODERS[model](self._glass, self.unknown_commands)
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data
        while buffer:
            used = self._decoder.step(buffer)
            if used == 0:
                break
            buffer = buffer[used:]
        self._buffer = buffer

    @property
    def lines(self) -> tuple[str, str]:
        """The two lines a customer reads, each exactly 20 characters."""
        return self._glass.lines


class SimulatedDisplay:
    """A pole display of the given model (``epson`` or ``cd5220``) on a pty.

    ``link``: a path the test chooses; it always points at the current pty, so the
    driver reopens the same path after ``replug()``, as with ``/dev/serial/by-id``.
    ``power_on``: what the glass shows when the display is (re)plugged.
    """

    def __init__(
        self,
        model: str = "epson",
        link: str | os.PathLike[str] | None = None,
        power_on: tuple[str, str] = ("CUSTOMER DISPLAY", "READY"),
    ) -> None:
        self.model = model
        self.power_on = power_on
        self._decoder = DisplayDecoder(model, power_on)
        self._changed = threading.Condition()
        self._bytes_received = 0
        self._port = PtyPort(self._receive, link)

    def __enter__(self) -> SimulatedDisplay:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        self._port.plug()

    def close(self) -> None:
        self._port.unplug()

    @property
    def path(self) -> str:
        return self._port.path

    @property
    def lines(self) -> tuple[str, str]:
        """The two lines a customer reads, each exactly 20 characters."""
        with self._changed:
            return self._decoder.lines

    @property
    def unknown_commands(self) -> list[bytes]:
        """Bytes this model would not understand; a correct driver leaves this empty."""
        with self._changed:
            return list(self._decoder.unknown_commands)

    @property
    def bytes_received(self) -> int:
        with self._changed:
            return self._bytes_received

    def wait_for_bytes(self, count: int, timeout: float = 2.0) -> bool:
        """Wait until ``count`` bytes in total (since start) have arrived and been decoded."""
        with self._changed:
            return self._changed.wait_for(lambda: self._bytes_received >= count, timeout)

    @property
    def plugged(self) -> bool:
        return self._port.plugged

    def unplug(self) -> None:
        self._port.unplug()

    def replug(self) -> None:
        """Plug back in: a new pty at the same ``link``, showing the power-on text."""
        with self._changed:
            self._decoder = DisplayDecoder(self.model, self.power_on)
        self._port.plug()

    def _receive(self, data: bytes) -> None:
        with self._changed:
            self._bytes_received += len(data)
            self._decoder.feed(data)
            self._changed.notify_all()
