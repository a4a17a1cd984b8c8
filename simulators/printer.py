"""A simulated ESC/POS receipt printer on a real pty and a real loopback TCP socket.

The driver connects with python-escpos's own classes, as it would to real hardware:

    with SimulatedPrinter(link=tmp_path / "printer") as printer:
        Serial(devfile=printer.path, timeout=0.3)                 # the serial port
        Network(*printer.address, timeout=0.3)                    # the 9100-style socket

What arrives is decoded back into receipts (``printer.receipts[-1].text``,
``.barcodes``); DLE EOT status requests are answered. Test controls play the world
outside: ``paper_out()``, ``cover_open()``, ``stop_answering()``, ``unplug()``.
While the printer is offline (no paper, cover open) it prints nothing it receives.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple

from escpos.capabilities import get_profile
from escpos.codepages import CodePages

from simulators.display import PtyPort


def code_page_table(model: str) -> dict[int, str]:
    """ESC t number -> the 128 characters at 0x80..0xFF, for an escpos printer model."""
    table: dict[int, str] = {}
    for name, number in get_profile(model).get_code_pages().items():
        try:
            encoding = CodePages.get_encoding(name)
        except KeyError:
            continue
        if "data" in encoding:
            table[int(number)] = "".join(encoding["data"])
        elif "python_encode" in encoding:
            table[int(number)] = bytes(range(0x80, 0x100)).decode(
                encoding["python_encode"], errors="replace"
            )
    return table


SYMBOLOGIES = {
    0: "UPC-A",
    1: "UPC-E",
    2: "EAN13",
    3: "EAN8",
    4: "CODE39",
    5: "ITF",
    6: "CODABAR",
    65: "UPC-A",
    66: "UPC-E",
    67: "EAN13",
    68: "EAN8",
    69: "CODE39",
    70: "ITF",
    71: "CODABAR",
    72: "CODE93",
    73: "CODE128",
    74: "GS1-128",
}

# Commands with a fixed number of argument bytes after the two-byte prefix.
_FIXED_ARGS = {
    b"\x1b@": 0,
    b"\x1b!": 1,
    b"\x1b-": 1,
    b"\x1bE": 1,
    b"\x1bG": 1,
    b"\x1bM": 1,
    b"\x1ba": 1,
    b"\x1bd": 1,
    b"\x1bt": 1,
    b"\x1bp": 3,
    b"\x1b2": 0,
    b"\x1b3": 1,
    b"\x1b{": 1,
    b"\x1bV": 1,
    b"\x1bR": 1,
    b"\x1bJ": 1,
    b"\x1bc": 2,
    b"\x1b=": 1,
    b"\x1b$": 2,
    b"\x1br": 1,
    b"\x1b ": 1,
    b"\x1bi": 0,
    b"\x1bm": 0,
    b"\x1d!": 1,
    b"\x1dB": 1,
    b"\x1db": 1,
    b"\x1dh": 1,
    b"\x1dw": 1,
    b"\x1df": 1,
    b"\x1dH": 1,
    b"\x1dL": 2,
    b"\x1dW": 2,
    b"\x1da": 1,
    b"\x1dr": 1,
    b"\x1dP": 2,
    b"\x10\x04": 1,
    b"\x10\x05": 1,
    b"\x10\x14": 3,
    b"\x1c.": 0,
    b"\x1c&": 0,
}


class Barcode(NamedTuple):
    symbology: str
    data: str


@dataclass
class PrintedReceipt:
    """One receipt as it came out of the printer, up to the cut."""

    lines: list[str] = field(default_factory=list)
    barcodes: list[Barcode] = field(default_factory=list)
    images: int = 0  # raster or column images (e.g. a barcode drawn by software)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip("\n")


def _code128_text(data: bytes) -> str:
    """CODE128 data as escpos sends it ({A/{B/{C pick the code set) back to text."""
    text, code_set, i = [], "B", 0
    while i < len(data):
        if data[i] == ord("{") and i + 1 < len(data):
            selector = chr(data[i + 1])
            i += 2
            if selector in "ABC":
                code_set = selector
            elif selector == "{":
                text.append("{")
            continue
        text.append(f"{data[i]:02d}" if code_set == "C" else chr(data[i]))
        i += 1
    return "".join(text)


class _Stream:
    """One connection's byte stream: its own parse state and receipt in progress."""

    def __init__(self, printer: SimulatedPrinter, reply: Callable[[bytes], None]) -> None:
        self.printer = printer
        self.reply = reply
        self.buffer = b""
        self.code_page = printer.code_pages.get(0, "")
        self.line = ""
        self.receipt = PrintedReceipt()

    def _char(self, byte: int) -> str:
        if byte < 0x80 or not self.code_page:
            return chr(byte) if byte < 0x80 else "\ufffd"
        return self.code_page[byte - 0x80]

    def feed(self, data: bytes) -> None:
        buffer = self.buffer + data
        while buffer:
            used = self._step(buffer)
            if used == 0:
                break
            buffer = buffer[used:]
        self.buffer = buffer

    def _step(self, buffer: bytes) -> int:
        first = buffer[0]
        if first >= 0x20:
            if self.printer.online:
                self.line += self._char(first)
            return 1
        if first == 0x0A:
            self._end_line()
            return 1
        if first in (0x0D, 0x00):
            return 1
        if first == 0x09:
            self.line += " " * (8 - len(self.line) % 8)
            return 1
        if first not in (0x1B, 0x1D, 0x10, 0x1C):
            self.printer._unknown(buffer[:1])
            return 1
        if len(buffer) < 2:
            return 0
        prefix = buffer[:2]
        if prefix == b"\x1dk":
            return self._barcode(buffer)
        if prefix == b"\x1dV":
            return self._cut(buffer)
        if prefix in (b"\x1dv", b"\x1b*", b"\x1d("):
            return self._block(buffer)
        if prefix not in _FIXED_ARGS:
            self.printer._unknown(prefix)
            return 2
        length = 2 + _FIXED_ARGS[prefix]
        if len(buffer) < length:
            return 0
        self._command(prefix, buffer[2:length])
        return length

    def _command(self, prefix: bytes, args: bytes) -> None:
        if prefix == b"\x1b@":
            # A printer without a cutter has no cut between receipts; the next job's
            # reset is where one receipt ends.
            self._finish_receipt()
            self.code_page = self.printer.code_pages.get(0, "")
        elif prefix == b"\x1bt":
            self.code_page = self.printer.code_pages.get(args[0], "")
        elif prefix == b"\x1bd":
            self._end_line()
            for _ in range(args[0] - 1):
                self._end_line()
        elif prefix == b"\x1bp":
            self.printer._kick()
        elif prefix == b"\x10\x04":
            answer = self.printer._status_byte(args[0])
            if answer is not None:
                self.reply(bytes([answer]))

    def _barcode(self, buffer: bytes) -> int:
        if len(buffer) < 3:
            return 0
        kind = buffer[2]
        if kind < 0x20:  # function A: data up to NUL
            end = buffer.find(b"\x00", 3)
            if end < 0:
                return 0
            data, used = buffer[3:end], end + 1
        else:  # function B: a length byte, then data
            if len(buffer) < 4 or len(buffer) < 4 + buffer[3]:
                return 0
            data, used = buffer[4 : 4 + buffer[3]], 4 + buffer[3]
        symbology = SYMBOLOGIES.get(kind, f"type {kind}")
        text = _code128_text(data) if symbology == "CODE128" else data.decode("ascii", "replace")
        if self.printer.online:
            self.receipt.barcodes.append(Barcode(symbology, text))
        return used

    def _cut(self, buffer: bytes) -> int:
        if len(buffer) < 3:
            return 0
        length = 4 if buffer[2] in (65, 66, 97, 98, 103, 104) else 3
        if len(buffer) < length:
            return 0
        self._finish_receipt()
        return length

    def _block(self, buffer: bytes) -> int:
        """Images and other length-prefixed blocks: skipped whole, never read as text."""
        prefix = buffer[:2]
        if prefix == b"\x1dv":  # GS v 0 m xL xH yL yH data
            if len(buffer) < 8:
                return 0
            x, y = buffer[4] + 256 * buffer[5], buffer[6] + 256 * buffer[7]
            length, image = 8 + x * y, True
        elif prefix == b"\x1b*":  # ESC * m nL nH data
            if len(buffer) < 5:
                return 0
            columns = buffer[3] + 256 * buffer[4]
            length, image = 5 + columns * (3 if buffer[2] >= 32 else 1), True
        else:  # GS ( fn pL pH data
            if len(buffer) < 5:
                return 0
            length, image = 5 + buffer[3] + 256 * buffer[4], False
        if len(buffer) < length:
            return 0
        if image and self.printer.online:
            self.receipt.images += 1
        return length

    def finish(self) -> None:
        self._finish_receipt()

    def _finish_receipt(self) -> None:
        if self.line:
            self._end_line()
        while self.receipt.lines and not self.receipt.lines[-1]:
            self.receipt.lines.pop()  # the blank paper fed out for the cutter
        if self.printer.online and (self.receipt.lines or self.receipt.barcodes):
            self.printer._printed(self.receipt)
        self.receipt = PrintedReceipt()

    def _end_line(self) -> None:
        if self.printer.online:
            self.receipt.lines.append(self.line.rstrip())
        self.line = ""


def decode_receipts(data: bytes, model: str = "default") -> list[PrintedReceipt]:
    """What a printer of this escpos ``model`` would print for ``data``."""
    printer = SimulatedPrinter(model=model)
    stream = _Stream(printer, lambda answer: None)
    stream.feed(data)
    stream.finish()
    return printer.receipts


class SimulatedPrinter:
    """An ESC/POS receipt printer reachable on a pty (``path``) and on TCP (``address``).

    ``model`` is a python-escpos profile name; it decides which code page each
    ``ESC t n`` selects.
    """

    def __init__(
        self,
        link: str | os.PathLike[str] | None = None,
        tcp_port: int = 0,
        model: str = "default",
    ) -> None:
        self.code_pages = code_page_table(model)
        self._lock = threading.Condition()
        self._receipts: list[PrintedReceipt] = []
        self._unknown_commands: list[bytes] = []
        self.drawer_kicks = 0
        self.status_requests = 0
        self._paper = True
        self._cover_closed = True
        self._answering = True
        self._tcp_port = tcp_port
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._pty_stream = _Stream(self, self._send_pty)
        self._port = PtyPort(self._receive_pty, link)

    def __enter__(self) -> SimulatedPrinter:
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
        self._listen()

    def close(self) -> None:
        self.unplug()

    # where the driver connects

    @property
    def path(self) -> str:
        """The serial device (a stable symlink when ``link`` was given)."""
        return self._port.path

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of the network interface."""
        return ("127.0.0.1", self._tcp_port)

    # what came out

    @property
    def receipts(self) -> list[PrintedReceipt]:
        with self._lock:
            return list(self._receipts)

    @property
    def unknown_commands(self) -> list[bytes]:
        with self._lock:
            return list(self._unknown_commands)

    def wait_for_receipts(self, count: int, timeout: float = 2.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: len(self._receipts) >= count, timeout)

    def wait_for_kicks(self, count: int, timeout: float = 2.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self.drawer_kicks >= count, timeout)

    # the world outside

    @property
    def online(self) -> bool:
        return self._paper and self._cover_closed

    def paper_out(self) -> None:
        self._paper = False

    def paper_in(self) -> None:
        self._paper = True

    def cover_open(self) -> None:
        self._cover_closed = False

    def cover_close(self) -> None:
        self._cover_closed = True

    def stop_answering(self) -> None:
        """Take data but ignore status requests, like a wedged printer board."""
        self._answering = False

    def start_answering(self) -> None:
        self._answering = True

    @property
    def plugged(self) -> bool:
        return self._port.plugged

    def unplug(self) -> None:
        """Both interfaces go away: serial writes fail, TCP connections drop."""
        self._port.unplug()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # shutdown wakes the thread in accept()
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def replug(self) -> None:
        self._pty_stream = _Stream(self, self._send_pty)
        self._port.plug()
        self._listen()

    # internals

    def _status_byte(self, request: int) -> int | None:
        with self._lock:
            self.status_requests += 1
        if not self._answering:
            return None
        byte = 0x12
        if request == 1 and not self.online:
            byte |= 0x08
        elif request == 2:
            byte |= (0x04 if not self._cover_closed else 0) | (0x20 if not self._paper else 0)
        elif request == 4 and not self._paper:
            byte |= 0x60
        return byte

    def _printed(self, receipt: PrintedReceipt) -> None:
        with self._lock:
            self._receipts.append(receipt)
            self._lock.notify_all()

    def _kick(self) -> None:
        with self._lock:
            self.drawer_kicks += 1
            self._lock.notify_all()

    def _unknown(self, command: bytes) -> None:
        with self._lock:
            self._unknown_commands.append(command)

    def _receive_pty(self, data: bytes) -> None:
        self._pty_stream.feed(data)

    def _send_pty(self, data: bytes) -> None:
        self._port.send(data)

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._tcp_port))
        listener.listen()
        self._tcp_port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(
            target=self._accept, args=(listener,), daemon=True, name="printer-accept"
        ).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # unplugged
            with self._lock:
                self._connections.append(connection)
            threading.Thread(
                target=self._serve, args=(connection,), daemon=True, name="printer-tcp"
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        def reply(data: bytes) -> None:
            with contextlib.suppress(OSError):  # the host hung up; nobody to answer
                connection.sendall(data)

        stream = _Stream(self, reply)
        while True:
            try:
                data = connection.recv(4096)
            except OSError:
                return
            if not data:
                return
            stream.feed(data)
