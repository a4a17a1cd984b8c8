"""Customer pole display: two lines of twenty characters on a serial line.

Give ``CustomerDisplay`` its transport (anything with ``write(bytes)``, normally a
``serial.Serial`` opened on a ``/dev/serial/by-id/...`` path) and the display's command
set from ``COMMAND_SETS``. ``show(line1, line2)`` sends only the cells that changed,
reached by the cheapest cursor moves the command set offers, so a verdict reaches the
glass in a few milliseconds of line time at 9600 baud.

This module also holds what every posd output driver shares: the ``DeviceError`` root
exception and ``DeviceWorker``, which runs one device's blocking calls on that device's
own thread with a deadline, so one hung device never stalls another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import queue
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import serial

from daemon.errors import DeviceError

COLUMNS = 20
ROWS = 2
BITS_PER_BYTE = 10  # 8N1 framing: start bit, eight data bits, stop bit

T = TypeVar("T")


class DeviceTimeout(DeviceError, TimeoutError):
    """A device call did not finish within its deadline."""


class DisplayMissing(DeviceError, ConnectionError):
    """The customer display did not take a write; it is unplugged, off or wedged."""


class Transport(Protocol):
    """The one thing a display needs from its connection."""

    def write(self, data: bytes, /) -> int | None: ...


# --------------------------------------------------------------------- worker thread


_Job = tuple[Callable[..., Any], tuple[Any, ...], "concurrent.futures.Future[Any]"]


class DeviceWorker:
    """Runs one device's blocking calls in order on one daemon thread, each with a deadline.

    When a call overruns its deadline the caller gets ``DeviceTimeout`` at once. A call
    still waiting behind it is cancelled, never run late; the stuck thread is abandoned
    (a daemon thread, so it never holds up shutdown) and the next call gets a fresh one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] | None = None

    def call(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the device thread and wait at most ``timeout_s`` for it."""
        future, jobs = self._submit(fn, args)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise self._overran(future, jobs, timeout_s) from None

    async def call_async(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """Like ``call`` but awaitable: the event loop keeps running while the device works."""
        future, jobs = self._submit(fn, args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            raise self._overran(future, jobs, timeout_s) from None

    def close(self) -> None:
        """Let the device thread finish its queued calls and end."""
        with self._lock:
            jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.put(None)

    def _submit(
        self, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> tuple[concurrent.futures.Future[T], queue.SimpleQueue[_Job | None]]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                thread = threading.Thread(
                    target=_run_jobs, args=(self._jobs,), name=self._name, daemon=True
                )
                thread.start()
            jobs = self._jobs
            jobs.put((fn, args, future))
        return future, jobs

    def _overran(
        self,
        future: concurrent.futures.Future[Any],
        jobs: queue.SimpleQueue[_Job | None],
        timeout_s: float,
    ) -> DeviceTimeout:
        future.cancel()  # succeeds only if it had not started
        with self._lock:
            if self._jobs is jobs:  # its thread is stuck: later calls get a fresh one
                self._jobs = None
                jobs.put(None)
        return DeviceTimeout(
            f"{self._name}: no answer within {timeout_s:g} s; check the cable and power"
        )


def _run_jobs(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        fn, args, future = job
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn(*args))
        except BaseException as error:  # handed to whoever waits on the future
            future.set_exception(error)


# -------------------------------------------------------------------- command sets


@dataclass(frozen=True)
class CommandSet:
    """The bytes one family of pole displays understands.

    Rows and columns are counted from 0 here; ``goto`` converts to the 1-based numbers
    both command sets put on the wire.
    """

    name: str
    init: bytes  # reset, overwrite mode, cursor hidden
    clear: bytes
    home: bytes
    carriage_return: bytes
    line_down: bytes  # lower line, same column
    cursor_left: bytes
    cursor_to: bytes  # followed by column and row bytes, both 1-based
    code_tables: Mapping[str, bytes]  # Python codec name -> bytes that select it
    default_code_table: str

    def goto(self, row: int, column: int) -> bytes:
        return self.cursor_to + bytes((column + 1, row + 1))

    def select_code_table(self, codec: str) -> bytes:
        try:
            return self.code_tables[codec]
        except KeyError:
            raise ValueError(
                f"code table {codec!r} is not offered by {self.name} displays; "
                f"choose one of {sorted(self.code_tables)}"
            ) from None


EPSON = CommandSet(
    name="epson",
    # ESC @ initialise, US MD1 overwrite mode, US C 0 hide the cursor
    init=b"\x1b@" + b"\x1f\x01" + b"\x1fC\x00",
    clear=b"\x0c",
    home=b"\x0b",
    carriage_return=b"\r",
    line_down=b"\n",
    cursor_left=b"\x08",
    cursor_to=b"\x1f$",  # US $ x y
    code_tables={"cp437": b"\x1bt\x00", "cp850": b"\x1bt\x02", "cp858": b"\x1bt\x13"},
    default_code_table="cp437",
)

CD5220 = CommandSet(
    name="cd5220",
    # ESC @ initialise, ESC DC1 overwrite mode, ESC _ 0 hide the cursor
    init=b"\x1b@" + b"\x1b\x11" + b"\x1b_\x00",
    clear=b"\x0c",
    home=b"\x0b",
    carriage_return=b"\r",
    line_down=b"\n",
    cursor_left=b"\x08",
    cursor_to=b"\x1bl",  # ESC l x y
    # CD5220 clones disagree on what sits above 0x7F, so only ASCII is trusted.
    code_tables={"ascii": b""},
    default_code_table="ascii",
)

COMMAND_SETS: Mapping[str, CommandSet] = {cs.name: cs for cs in (EPSON, CD5220)}


def command_set(name: str) -> CommandSet:
    """Look up a command set by the name used in configuration (``epson``, ``cd5220``)."""
    try:
        return COMMAND_SETS[name.lower()]
    except KeyError:
        raise ValueError(
            f"display model {name!r} is unknown; use one of {sorted(COMMAND_SETS)}"
        ) from None


# ----------------------------------------------------------------- text to glass

# Characters NFKD cannot take apart, spelled the way a shop would.
_FALLBACKS: Mapping[str, str] = {
    "\u20ac": "EUR",
    "\u00a3": "GBP",
    "\u00df": "ss",
    "\u00e6": "ae",
    "\u00c6": "AE",
    "\u00f8": "o",
    "\u00d8": "O",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u2022": "*",
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u00a0": " ",
}


def spell_out(char: str) -> str:
    """A readable stand-in for ``char`` on a device that cannot show it
    (``é`` -> ``e``, ``€`` -> ``EUR``, ``ﬁ`` -> ``fi``); ``?`` when there is none."""
    if char in _FALLBACKS:
        return _FALLBACKS[char]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base and base != char else "?"


def _glyph(char: str, codec: str) -> bytes:
    if unicodedata.category(char).startswith("C"):
        return b"?"  # a control character would be taken as a display command
    try:
        return char.encode(codec)
    except UnicodeEncodeError:
        pass
    return spell_out(char).encode(codec, errors="replace")


def fit_line(text: str, codec: str, width: int = COLUMNS) -> bytes:
    """``text`` as exactly ``width`` cells in ``codec``: kept where the code table has the
    character, spelled out readably where it does not (``é`` -> ``e``), padded with spaces
    or cut at the right edge."""
    cells = bytearray()
    for char in text:
        cells += _glyph(char, codec)
        if len(cells) >= width:
            break
    return bytes(cells[:width]).ljust(width, b" ")


# ------------------------------------------------------------------ update planner

Screen = tuple[bytes, bytes]
Cursor = tuple[int, int] | None  # (row, column); None when the display's cursor is unknown
BLANK: Screen = (b" " * COLUMNS, b" " * COLUMNS)


def _cheapest_move(cs: CommandSet, cursor: Cursor, row: int, column: int, new: Screen) -> bytes:
    """Bytes that bring the cursor to (row, column), possibly by rewriting cells of ``new``
    that are already on the glass: at one byte a cell that beats a four-byte jump."""
    options = [cs.goto(row, column)]
    if cursor is not None:
        at_row, at_column = cursor
        if at_row == row:
            if at_column <= column:
                options.append(new[row][at_column:column])
            else:
                options.append(cs.cursor_left * (at_column - column))
            options.append(cs.carriage_return + new[row][:column])
        elif at_row == row - 1:
            if at_column <= column:
                options.append(cs.line_down + new[row][at_column:column])
            else:
                options.append(cs.line_down + cs.cursor_left * (at_column - column))
            options.append(cs.line_down + cs.carriage_return + new[row][:column])
    if row == 0:
        options.append(cs.home + new[0][:column])
    return min(options, key=len)


def _changes(cs: CommandSet, old: Screen, new: Screen, cursor: Cursor) -> tuple[bytes, Cursor]:
    out = bytearray()
    for row in range(ROWS):
        column = 0
        while column < COLUMNS:
            if old[row][column] == new[row][column]:
                column += 1
                continue
            end = column
            while end < COLUMNS and old[row][end] != new[row][end]:
                end += 1
            out += _cheapest_move(cs, cursor, row, column, new)
            out += new[row][column:end]
            # Where the cursor goes after the last column differs between models.
            cursor = (row, end) if end < COLUMNS else None
            column = end
    return bytes(out), cursor


def plan_update(
    cs: CommandSet, old: Screen | None, new: Screen, cursor: Cursor, code_table: str
) -> tuple[bytes, Cursor]:
    """The shortest bytes (of those tried) that turn ``old`` into ``new`` on the glass,
    and where the cursor ends up. ``old=None`` means the glass is unknown: reset and
    repaint everything."""
    if old is None:
        # Where CLR leaves the cursor is not documented for every model: treat it as unknown.
        body, end = _changes(cs, BLANK, new, None)
        return cs.init + cs.select_code_table(code_table) + cs.clear + body, end
    diff, diff_end = _changes(cs, old, new, cursor)
    fresh, fresh_end = _changes(cs, BLANK, new, None)
    if len(cs.clear + fresh) < len(diff):
        return cs.clear + fresh, fresh_end
    return diff, diff_end


# ------------------------------------------------------------------------ device


class DisplayStatus(enum.Enum):
    READY = "ready"
    MISSING = "missing"


@dataclass(frozen=True)
class UpdateCost:
    """What one update cost on the wire."""

    byte_count: int
    baud: int = 9600

    @property
    def line_time_ms(self) -> float:
        return self.byte_count * BITS_PER_BYTE * 1000 / self.baud


class CustomerDisplay:
    """A 2x20 customer pole display.

    ``transport`` is the open connection; ``model`` a ``CommandSet`` or its name.
    Every write runs on the display's own thread and must finish within
    ``write_timeout_s``; a write that fails or overruns marks the display ``MISSING``
    and raises ``DisplayMissing``. Hand in a fresh transport with ``reconnect`` once the
    display is back; the next ``show`` repaints the whole glass.
    """

    def __init__(
        self,
        transport: Transport,
        model: CommandSet | str = EPSON,
        *,
        code_table: str | None = None,
        write_timeout_s: float = 0.5,
    ) -> None:
        self.command_set = command_set(model) if isinstance(model, str) else model
        self.code_table = code_table or self.command_set.default_code_table
        self.command_set.select_code_table(self.code_table)  # fail now, not on first show
        self.write_timeout_s = write_timeout_s
        self._worker = DeviceWorker(f"display-{self.command_set.name}")
        self._lock = threading.Lock()
        self._transport = transport
        self._connection = 0  # bumped whenever the link is lost or replaced
        self._status = DisplayStatus.READY
        self._shown: Screen | None = None
        self._cursor: Cursor = None
        self._last_byte_count = 0

    @property
    def status(self) -> DisplayStatus:
        return self._status

    @property
    def lines(self) -> tuple[str, str] | None:
        """What the driver believes is on the glass, or None when it does not know."""
        shown = self._shown
        if shown is None:
            return None
        codec = self.code_table
        return (shown[0].decode(codec), shown[1].decode(codec))

    def show(self, line1: str, line2: str = "") -> UpdateCost:
        """Put two lines on the glass, sending only what changed. Raises ``DisplayMissing``."""
        new, connection = self._prepare(line1, line2)
        try:
            return self._worker.call(self.write_timeout_s, self._update, new, connection)
        except DeviceTimeout as error:
            raise self._lose(connection, str(error)) from error

    async def show_async(self, line1: str, line2: str = "") -> UpdateCost:
        """``show`` for the event loop: awaits the write without blocking other work."""
        new, connection = self._prepare(line1, line2)
        try:
            return await self._worker.call_async(
                self.write_timeout_s, self._update, new, connection
            )
        except DeviceTimeout as error:
            raise self._lose(connection, str(error)) from error

    def last_update_cost(self, baud: int = 9600) -> UpdateCost:
        """Bytes the last ``show`` wrote and their line time at ``baud``."""
        return UpdateCost(self._last_byte_count, baud)

    def reconnect(self, transport: Transport) -> None:
        """Use a freshly opened transport; the next ``show`` repaints everything."""
        with self._lock:
            self._transport = transport
            self._connection += 1
            self._status = DisplayStatus.READY
            self._shown = None
            self._cursor = None

    def forget(self) -> None:
        """Assume nothing about the glass (e.g. after a power blip); repaint next time."""
        with self._lock:
            self._shown = None
            self._cursor = None

    def close(self) -> None:
        self._worker.close()

    def _prepare(self, line1: str, line2: str) -> tuple[Screen, int]:
        new = (fit_line(line1, self.code_table), fit_line(line2, self.code_table))
        with self._lock:
            if self._status is DisplayStatus.MISSING:
                raise DisplayMissing(
                    f"{self.command_set.name} display is missing; reconnect it before showing text"
                )
            return new, self._connection

    def _update(self, new: Screen, connection: int) -> UpdateCost:
        with self._lock:
            if connection != self._connection:
                raise DisplayMissing("the display was reconnected while this update waited")
            data, cursor = plan_update(
                self.command_set, self._shown, new, self._cursor, self.code_table
            )
            transport = self._transport
        if data:
            try:
                transport.write(data)
            except (OSError, ValueError) as error:
                raise self._lose(connection, str(error)) from error
        with self._lock:
            if connection == self._connection:
                self._shown, self._cursor = new, cursor
                self._last_byte_count = len(data)
        return UpdateCost(len(data))

    def _lose(self, connection: int, reason: str) -> DisplayMissing:
        with self._lock:
            if connection == self._connection:
                self._connection += 1
                self._status = DisplayStatus.MISSING
                self._shown = None
                self._cursor = None
        return DisplayMissing(
            f"{self.command_set.name} display stopped taking data ({reason}); "
            "check its cable, then reconnect"
        )


def open_serial(path: str, baudrate: int = 9600, write_timeout_s: float = 0.5) -> serial.Serial:
    """Open a display's serial port (use a ``/dev/serial/by-id`` path, never ttyUSBn)."""
    return serial.Serial(path, baudrate=baudrate, write_timeout=write_timeout_s)
