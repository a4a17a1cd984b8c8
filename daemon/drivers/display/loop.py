"""The customer display written from the event loop itself, without a thread.

    writer = LoopWriter(fd, EPSON, "cp437", write_timeout_s=0.5, lost=on_lost)
    writer.show(("Laptop X1    1299.00", "TOTAL        1299.00"))

A verdict is on its way to the glass the moment the lane decides it: the bytes are
planned by the display driver (`plan_update`, only the cells that changed) and handed
to the port's file descriptor, which is non-blocking, so the loop never waits on the
wire. What the kernel cannot take at once (a display that is slow to drain, or stopped
by flow control) is written when the port has room again (`loop.add_writer`); if that
takes longer than `write_timeout_s`, the display is reported lost, exactly as a write
overrunning its deadline on the driver's thread is. While a remainder waits, newer
lines replace older ones: the next write goes straight to the newest text.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from daemon.drivers.display.glass import CommandSet, Cursor, Screen, fit_line, plan_update

# The one place bytes leave for the display.
_write: Callable[[int, bytes], int] = os.write


class LoopWriter:
    """One open display port, written on the event loop. `lost(reason)` is called once
    when the port fails or stays full past the deadline; the writer is dead after it."""

    def __init__(
        self,
        fd: int,
        command_set: CommandSet,
        code_table: str,
        *,
        write_timeout_s: float,
        lost: Callable[[str], None],
    ) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._command_set = command_set
        self._code_table = code_table
        self._write_timeout_s = write_timeout_s
        self._lost = lost
        self._loop = asyncio.get_running_loop()
        self._shown: Screen | None = None  # None: unknown, the next update repaints all
        self._cursor: Cursor = None
        self._rest = b""  # planned bytes the port has not taken yet
        self._next: tuple[str, str] | None = None  # lines asked for while `_rest` waits
        self._deadline: asyncio.TimerHandle | None = None
        self.dead = False
        self.bytes_written = 0

    @property
    def settled(self) -> bool:
        """Every byte asked for has been handed to the port (or the port is gone)."""
        return self.dead or not self._rest

    @property
    def lines(self) -> tuple[str, str] | None:
        """What the writer has put on the glass, or None when it does not know."""
        shown = self._shown
        if shown is None:
            return None
        return shown[0].decode(self._code_table), shown[1].decode(self._code_table)

    def show(self, lines: tuple[str, str]) -> None:
        """Put `lines` on the glass: now, or as soon as earlier bytes have gone."""
        if self.dead:
            return
        if self._rest:
            self._next = lines
            return
        new = (fit_line(lines[0], self._code_table), fit_line(lines[1], self._code_table))
        data, cursor = plan_update(
            self._command_set, self._shown, new, self._cursor, self._code_table
        )
        self._shown, self._cursor = new, cursor
        if data:
            self._send(data)

    def close(self) -> None:
        """Stop writing (the caller closes the port)."""
        self._stop_waiting()
        self.dead = True

    def _send(self, data: bytes) -> None:
        try:
            sent = _write(self._fd, data)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._fail(f"the port refused a write ({error})")
            return
        self.bytes_written += sent
        if sent < len(data):
            self._rest = data[sent:]
            self._loop.add_writer(self._fd, self._drain)
            self._deadline = self._loop.call_later(self._write_timeout_s, self._overran)

    def _drain(self) -> None:
        try:
            sent = _write(self._fd, self._rest)
        except BlockingIOError:
            return
        except OSError as error:
            self._fail(f"the port refused a write ({error})")
            return
        self.bytes_written += sent
        self._rest = self._rest[sent:]
        if self._rest:
            return
        self._stop_waiting()
        following, self._next = self._next, None
        if following is not None:
            self.show(following)

    def _overran(self) -> None:
        self._deadline = None
        self._fail(f"no room to write within {self._write_timeout_s:g} s")

    def _fail(self, reason: str) -> None:
        if self.dead:
            return
        self.close()
        self._shown = None
        self._rest = b""
        self._lost(
            f"{self._command_set.name} display stopped taking data ({reason}); check its cable"
        )

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._loop.remove_writer(self._fd)
