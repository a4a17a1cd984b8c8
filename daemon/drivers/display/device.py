"""A customer pole display written from its own thread: two lines of twenty characters.

Give ``CustomerDisplay`` its transport (anything with ``write(bytes)``, normally a
``serial.Serial`` opened on a ``/dev/serial/by-id/...`` path) and the display's command
set from ``COMMAND_SETS``. ``show(line1, line2)`` sends only the cells that changed,
reached by the cheapest cursor moves the command set offers, so a verdict reaches the
glass in a few milliseconds of line time at 9600 baud. Every write runs on the
display's own ``DeviceWorker`` with a deadline.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from typing import Protocol

from daemon.drivers.base import DeviceTimeout, DeviceWorker, DisplayMissing
from daemon.drivers.display.glass import (
    EPSON,
    CommandSet,
    Cursor,
    Screen,
    command_set,
    fit_line,
    plan_update,
)

BITS_PER_BYTE = 10  # 8N1 framing: start bit, eight data bits, stop bit


class Transport(Protocol):
    """The one thing a display needs from its connection."""

    def write(self, data: bytes, /) -> int | None: ...


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
