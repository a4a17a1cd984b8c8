"""Serial (RS-232, or USB in serial/CDC mode) barcode scanners, read through pyserial.

The port is named by a stable path — `/dev/serial/by-id/…` or a udev-made link —
because `/dev/ttyUSBn` and `/dev/ttyACMn` numbers move after a replug. Baud rate and
framing come from configuration; posd never writes to the port to find out what is on
it. Each scan ends with the configured terminator: CR, LF or CR LF. Any other CR or LF
stays in the scan text, where `barcode.parse` refuses it as a control character, so a
terminator set wrongly shows up as a clear refusal rather than scans split in two.

When the port disappears (cable pulled, scanner rebooted) the scanner reports
`disconnected`, keeps trying to reopen it every `reconnect_interval_s`, and reports
`reconnected` when it is back.

`SERIAL_SCANNER` registers the kind: its `[[scanners]]` section (`kind = "serial"`), how
the lane builds it, how `posd doctor` checks it and which attached ports `posd
provision` takes for one.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, Literal

import serial
from pydantic import Field

from daemon.config.devices import SerialBaud, StableDevice
from daemon.drivers.checks import CheckContext, Finding, Where
from daemon.drivers.registry import Attached, DeviceKind, Recognition
from daemon.drivers.scanner import (
    DEFAULT_CHAR_TIMEOUT_S,
    DEFAULT_MAX_SCAN_LENGTH,
    DEFAULT_RECONNECT_INTERVAL_S,
    SCANNER,
    Clock,
    OnTimeout,
    ReadingScanner,
    Reason,
    Scan,
    ScanAssembler,
    ScanEvent,
    ScannerConfigBase,
    ScanProblem,
    check_scanner,
    names_a_scanner,
    scanner_maker,
)

_UNSTABLE_PORT = re.compile(r"/dev/tty(USB|ACM)[0-9]+")
_PARITIES = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}


class Terminator(StrEnum):
    """The end-of-scan suffix the scanner is set to send."""

    CR = "CR"
    LF = "LF"
    CRLF = "CRLF"

    @property
    def text(self) -> str:
        return {"CR": "\r", "LF": "\n", "CRLF": "\r\n"}[self.value]


class SerialScanner(ReadingScanner):
    """A scanner on a serial port: bytes in, `Scan`/`ScanProblem` out.

    `open_port` makes the pyserial port (by default `serial.Serial`); it is called
    with the port path and framing each time the scanner (re)connects.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        terminator: Terminator | str = Terminator.CR,
        encoding: str = "utf-8",
        source: str | None = None,
        char_timeout_s: float = DEFAULT_CHAR_TIMEOUT_S,
        on_timeout: OnTimeout = OnTimeout.DISCARD,
        max_length: int = DEFAULT_MAX_SCAN_LENGTH,
        clock: Clock = time.monotonic,
        reconnect_interval_s: float = DEFAULT_RECONNECT_INTERVAL_S,
        open_port: Callable[..., Any] = serial.Serial,
    ) -> None:
        _check_port(port)
        self._settings = _framing(baudrate, bytesize, parity, stopbits)
        try:
            self._terminator = Terminator(str(terminator).upper())
        except ValueError:
            raise ValueError(
                f"terminator {terminator!r} is not known; use CR, LF or CRLF as set on the scanner"
            ) from None
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(
                f"encoding {encoding!r} is not known; use the scanner's character set, "
                "e.g. utf-8 or latin-1"
            ) from None
        assembler = ScanAssembler(
            source or port,
            char_timeout_s=char_timeout_s,
            on_timeout=on_timeout,
            max_length=max_length,
        )
        super().__init__(assembler, clock=clock, reconnect_interval_s=reconnect_interval_s)
        self._port_name = port
        self._encoding = encoding
        self._open_port = open_port
        self._port: Any = None
        self._new_text_decoder()

    def _new_text_decoder(self) -> None:
        # surrogateescape keeps bytes the encoding cannot read, so the scan can be
        # refused quoting them instead of guessing.
        self._text_decoder = codecs.getincrementaldecoder(self._encoding)("surrogateescape")
        self._held_cr = ""

    def _connect(self) -> int:
        self._port = self._open_port(
            port=self._port_name, timeout=0, exclusive=True, **self._settings
        )
        self._new_text_decoder()
        return int(self._port.fileno())

    def _disconnect(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(OSError):  # already gone with the device
                port.close()

    def _read(self) -> bytes | None:
        data: bytes = self._port.read(max(1, self._port.in_waiting))
        # pyserial raises when a ready port gives no data (a vanished device); an empty
        # result here only means a wakeup with nothing to read yet.
        return data or None

    def feed(self, data: bytes, now: float) -> Sequence[ScanEvent]:
        text = self._held_cr + self._text_decoder.decode(data)
        self._held_cr = ""
        if self._terminator is Terminator.CRLF and text.endswith("\r"):
            self._held_cr, text = "\r", text[:-1]  # its LF may be in the next read
        events: list[ScanEvent] = []
        pieces = text.split(self._terminator.text)
        for index, piece in enumerate(pieces):
            if piece:
                events.extend(self._assembler.typed(piece, now, now))
            if index < len(pieces) - 1:
                events.extend(self._assembler.ended(now, now))
        return [self._check_encoding(event) for event in events]

    def _check_encoding(self, event: ScanEvent) -> ScanEvent:
        if not isinstance(event, Scan) or not any("\udc80" <= ch <= "\udcff" for ch in event.text):
            return event
        raw = event.text.encode(self._encoding, "surrogateescape")
        return ScanProblem(
            Reason.UNDECODABLE,
            f"scanner {self.source} sent {raw!r}, which is not valid {self._encoding}; set the "
            "scanner's character set to match the configured encoding, then scan again",
            self.source,
        )


def _check_port(port: str) -> None:
    if _UNSTABLE_PORT.fullmatch(port):
        raise ValueError(
            f"serial port {port!r} is numbered by the kernel and moves after a replug; name it "
            "by its /dev/serial/by-id/… link (`ls -l /dev/serial/by-id/` lists them)"
        )


def _framing(baudrate: int, bytesize: int, parity: str, stopbits: float) -> dict[str, Any]:
    if baudrate not in serial.Serial.BAUDRATES:
        raise ValueError(
            f"baudrate {baudrate} is not a standard rate; use the scanner's setting, "
            "usually 9600 or 115200"
        )
    if bytesize not in serial.Serial.BYTESIZES:
        raise ValueError(f"bytesize {bytesize} must be one of 5, 6, 7 or 8 data bits")
    if parity.upper() not in _PARITIES:
        raise ValueError(f"parity {parity!r} must be one of N, E, O, M or S")
    if stopbits not in serial.Serial.STOPBITS:
        raise ValueError(f"stopbits {stopbits} must be 1, 1.5 or 2")
    return {
        "baudrate": baudrate,
        "bytesize": bytesize,
        "parity": _PARITIES[parity.upper()],
        "stopbits": stopbits,
    }


# ------------------------------------------------------------------ the device kind


class SerialScannerConfig(ScannerConfigBase):
    """A scanner on a serial port (RS-232, or USB in serial/CDC mode)."""

    kind: Literal["serial"]
    port: StableDevice
    baud: SerialBaud = 9600
    framing: str = Field(default="8N1", pattern=r"^[5-8][NEOMS](1|1\.5|2)$")
    terminator: Literal["CR", "LF", "CRLF"] = "CR"
    encoding: str = "utf-8"


def open_serial_scanner(section: SerialScannerConfig) -> SerialScanner:
    """The scanner a section names; its port is opened when it is read."""
    framing = section.framing
    return SerialScanner(
        section.port,
        baudrate=section.baud,
        bytesize=int(framing[0]),
        parity=framing[1],
        stopbits=float(framing[2:]) if "." in framing[2:] else int(framing[2:]),
        terminator=section.terminator,
        encoding=section.encoding,
        source=section.name or section.port,
        char_timeout_s=section.char_timeout_s,
        on_timeout=OnTimeout(section.on_timeout),
        max_length=section.max_length,
    )


def _check(section: SerialScannerConfig, context: CheckContext, where: Where) -> list[Finding]:
    port = section.port
    return check_scanner(
        context,
        where,
        lambda: open_serial_scanner(section),
        device=port,
        key="port",
        missing=lambda: None if os.path.exists(port) else f"{port} does not exist",
    )


def _recognise(attached: Attached) -> Recognition | None:
    if attached.node is None:
        if attached.name.startswith("/dev/serial/"):
            return Recognition("possible", "named as a serial port")
        return None
    if attached.node == "input":
        return None
    if attached.node == "printer":
        return Recognition("no", "a USB printer")
    maker = scanner_maker(attached.vendor)
    if maker is not None:
        return Recognition("likely", f"a serial port from {maker}, who make scanners")
    if names_a_scanner(attached.label):
        return Recognition("likely", "a serial port whose name says scanner")
    return Recognition(
        "possible",
        "a serial port: a scanner, pole display or printer (never probed; the "
        "configuration says which)",
    )


SERIAL_SCANNER: DeviceKind[SerialScannerConfig, ReadingScanner] = DeviceKind(
    name="serial",
    role=SCANNER,
    section=SerialScannerConfig,
    build=open_serial_scanner,
    check=_check,
    recognise=_recognise,
    path_key="port",
    label="serial",
    example="/dev/serial/by-id/…",
)
