"""The lane's outputs: pole display, light, buzzer, cash drawer, receipt printer.

Each device works on its own thread with a deadline (the drivers' `DeviceWorker`), or
on the event loop without ever blocking it, so a display with a pulled cable or a
printer with its cover open never holds up the others or the lane. Calls here return
at once; what a device could not do comes back to the lane as an input
(`DeviceChanged`, `Printed`) through `report`.

A display port with a file descriptor (a serial port) is written on the event loop
itself, the moment the lane decides (the display driver's `LoopWriter`: non-blocking,
with a deadline for what the port cannot take at once); any other transport is written
on the display driver's thread. The display shows the latest lines the lane asked for:
if the lane moves on while an update is on the wire, the next update goes straight to
the newest text. When the
display stops taking data, or its port's stable name disappears (the cable is pulled),
its port is reopened every `reconnect_s` and the glass is repainted once it is back.

The printer is asked how it is now and then (`PrinterOutput.watch`): every few seconds
while it is well, twice a second while it is missing or owes a receipt. When it is
back, what it owes prints, each receipt once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from daemon.drivers.base import DeviceWorker, DisplayMissing
from daemon.drivers.display import CustomerDisplay, LoopWriter, Transport, command_set
from daemon.drivers.gpio import Buzzer, CashDrawer, Colour, LaneLight
from daemon.drivers.printer import (
    JobState,
    PrinterState,
    PrinterStatus,
    PrintJob,
    Receipt,
    ReceiptPrinter,
)
from daemon.errors import DeviceError
from daemon.rules.lane.types import Beep, DeviceChanged, Input, Light, Printed, ReceiptSpec

log = logging.getLogger(__name__)
Report = Callable[[Input], None]
GPIO_TIMEOUT_S = 0.5
OPEN_TIMEOUT_S = 2.0
HEALTHY_POLL_S = 2.0  # how often a printer that is well is asked how it is
TROUBLE_POLL_S = 0.5  # ... and one that is missing or owes a receipt
QUICK_FAILURE_S = 0.1  # an "unknown" this quick is a broken link, not a silent printer
# What the driver says of a connection that cannot read a status back (a USB
# printer's file): such a printer is only tried again, never asked.
_NO_STATUS = "cannot report status"


class Background:
    """Fire-and-forget tasks, kept referenced until they finish, cancelled on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def start(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class DisplayOutput:
    """The customer display, reopened through `open_transport` whenever it goes away."""

    def __init__(
        self,
        open_transport: Callable[[], Transport],
        model: str,
        *,
        report: Report,
        code_table: str | None = None,
        write_timeout_s: float = 0.5,
        reconnect_s: float = 1.0,
        present: Callable[[], bool] | None = None,
    ) -> None:
        self._open_transport = open_transport
        # Whether the port's stable name is there (a /dev/serial/by-id link goes when
        # the cable is pulled): looked at every `reconnect_s`, never by writing.
        self._present = present
        self._model = model
        self._code_table = code_table
        self._write_timeout_s = write_timeout_s
        self._reconnect_s = reconnect_s
        self._report = report
        self._display: CustomerDisplay | None = None  # a port without a descriptor
        self._writer: LoopWriter | None = None  # a port with one: written on the loop
        self._transport: Transport | None = None
        self._opener = DeviceWorker("display-open")
        self._wanted: tuple[str, str] | None = None
        self._wake = asyncio.Event()
        self._writing = False
        self._stopped = False
        self.missing: str | None = None
        self.bytes_written = 0

    def show(self, lines: tuple[str, str]) -> None:
        self._wanted = lines
        writer = self._writer
        if writer is not None and not writer.dead:
            writer.show(lines)  # at once, on the loop; it never waits on the wire
        else:
            self._wake.set()

    @property
    def settled(self) -> bool:
        """Nothing waits to be written (or the display is missing)."""
        if self.missing is not None:
            return True
        if self._writer is not None:
            return self._writer.settled and not self._wake.is_set()
        return not (self._wake.is_set() or self._writing)

    @property
    def lines(self) -> tuple[str, str] | None:
        if self._writer is not None:
            return self._writer.lines
        return self._display.lines if self._display is not None else None

    async def run(self) -> None:
        """Write what the lane wants shown, until `stop()` (or cancellation)."""
        while not self._stopped:
            if self.missing is not None or (self._display is None and self._writer is None):
                await self._connect()
            if not await self._woken():
                continue
            self._wake.clear()
            lines = self._wanted
            if lines is None or self._stopped or self.missing is not None:
                continue
            if self._writer is not None:
                self._writer.show(lines)
                continue
            self._writing = True
            try:
                assert self._display is not None
                cost = await self._display.show_async(*lines)
                self.bytes_written += cost.byte_count
            except DisplayMissing as error:
                self._lost(str(error))
            finally:
                self._writing = False

    async def _woken(self) -> bool:
        """Wait for something to show; False when `reconnect_s` passed first and the
        port was looked at instead (and found gone, perhaps)."""
        if self._present is None:
            await self._wake.wait()
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), self._reconnect_s)
        except TimeoutError:
            if self.missing is None and not self._present():
                self._lost("its port is gone (cable pulled?); it is reopened when it is back")
            return False
        return True

    def stop(self) -> None:
        """End `run`. Besides cancelling its task: on Python 3.11 `asyncio.wait_for` can
        swallow a cancellation that arrives as the awaited call finishes."""
        self._stopped = True
        self._wake.set()

    async def _connect(self) -> None:
        while not self._stopped:
            try:
                transport = await self._opener.call_async(OPEN_TIMEOUT_S, self._open_transport)
            except Exception as error:  # whatever the port does, the lane goes on
                self._lost(
                    f"cannot open the display ({error}); retrying every {self._reconnect_s:g} s"
                )
                await asyncio.sleep(self._reconnect_s)
                continue
            self._close_transport()
            self._transport = transport
            fileno = getattr(transport, "fileno", None)
            if callable(fileno):
                self._writer = LoopWriter(
                    int(fileno()),
                    command_set(self._model),
                    self._code_table or command_set(self._model).default_code_table,
                    write_timeout_s=self._write_timeout_s,
                    lost=self._writer_lost,
                )
            elif self._display is None:
                self._display = CustomerDisplay(
                    transport,
                    self._model,
                    code_table=self._code_table,
                    write_timeout_s=self._write_timeout_s,
                )
            else:
                self._display.reconnect(transport)
            if self.missing is not None:
                self.missing = None
                self._report(DeviceChanged("display", True))
            if self._wanted is not None:
                self._wake.set()  # repaint: the glass shows its power-on text
            return

    def _writer_lost(self, reason: str) -> None:
        self._lost(reason)
        self._wake.set()  # `run` reopens the port

    def _lost(self, reason: str) -> None:
        if self._writer is not None:
            self._writer.close()
        if self.missing is None:
            self.missing = reason
            self._report(DeviceChanged("display", False, reason))

    def _close_transport(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()  # before its descriptor is closed
            self.bytes_written += writer.bytes_written
        closer = getattr(self._transport, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):  # the port is already gone
                closer()

    def close(self) -> None:
        if self._display is not None:
            self._display.close()
        self._opener.close()
        self._close_transport()


_COLOURS = {
    Light.GREEN: Colour.GREEN,
    Light.AMBER: Colour.AMBER,
    Light.RED: Colour.RED,
    Light.RED_BLINKING: Colour.RED,
}


class GpioOutputs:
    """Light, buzzer and a GPIO cash drawer: whichever are fitted (None: not fitted)."""

    def __init__(
        self,
        *,
        light: LaneLight | None,
        buzzer: Buzzer | None,
        drawer: CashDrawer | None,
        report: Report,
        background: Background,
    ) -> None:
        self.light = light
        self.buzzer = buzzer
        self.drawer = drawer
        self._report = report
        self._background = background
        self._worker = DeviceWorker("gpio")

    def show(self, light: Light) -> None:
        lamp = self.light
        if lamp is None:
            return
        colour = _COLOURS[light]
        if light is Light.RED_BLINKING:
            self._call("light", lamp.blink, colour)
        else:
            self._call("light", lamp.show, colour)

    def beep(self, beep: Beep) -> None:
        buzzer = self.buzzer
        if buzzer is None:
            return
        actions = {
            Beep.ACCEPT: buzzer.accept,
            Beep.REJECT: buzzer.reject,
            Beep.ATTENDANT: buzzer.attendant,
            Beep.STOP: buzzer.stop,
        }
        self._call("buzzer", actions[beep])

    def open_drawer(self, kick_id: str) -> None:
        if self.drawer is not None:
            self._call("drawer", self.drawer.open, kick_id)

    def _call(self, device: str, fn: Callable[..., None], *args: Any) -> None:
        async def call() -> None:
            try:
                await self._worker.call_async(GPIO_TIMEOUT_S, fn, *args)
            except Exception as error:  # a pin that fails must not stop the lane
                self._report(DeviceChanged(device, False, str(error)))

        self._background.start(call(), f"gpio-{device}")

    def close(self) -> None:
        self._worker.close()
        for part in (self.light, self.buzzer, self.drawer):
            if part is not None:
                with contextlib.suppress(Exception):
                    part.close()


class PrinterOutput:
    """Receipts: printed once their sale is durable, queued (and reported) when they
    cannot be, and printed again on request, each request once."""

    def __init__(
        self,
        printer: ReceiptPrinter,
        make_receipt: Callable[[ReceiptSpec], Receipt],
        *,
        report: Report,
        background: Background,
        drawer_kick: bool = False,
    ) -> None:
        self.printer = printer
        self._make = make_receipt
        self._report = report
        self._background = background
        self._drawer_kick = drawer_kick
        self._trouble: str | None = None
        self._printing = 0  # attempts on the wire: no status question meanwhile
        self._failed = asyncio.Event()  # a receipt did not print: ask sooner

    def print(self, spec: ReceiptSpec) -> None:
        receipt = self._make(spec)
        self._background.start(
            self._outcome(spec.invoice, self.printer.print_receipt_async(receipt, spec.invoice)),
            f"print-{spec.invoice}",
        )

    def reprint(self, spec: ReceiptSpec, request: str) -> None:
        """Print `spec` again: a retry of its job if it never printed, else a copy marked
        REPRINT under the job id `request` (the same request prints once)."""
        try:
            job = self.printer.job(spec.invoice)
        except KeyError:
            job = None
        if job is not None and job.state is not JobState.PRINTED:
            work = self.printer.retry_async(spec.invoice)
        else:
            work = self.printer.reprint_async(self._make(spec), f"{spec.invoice}#{request}")
        self._background.start(self._outcome(spec.invoice, work), f"reprint-{spec.invoice}")

    def open_drawer(self, kick_id: str) -> bool:
        if not self._drawer_kick:
            return False

        async def kick() -> None:
            try:
                await self.printer.open_drawer_async(kick_id)
            except DeviceError as error:
                self._report(DeviceChanged("drawer", False, str(error)))

        self._background.start(kick(), "drawer-kick")
        return True

    async def watch(self) -> None:
        """Ask the printer how it is, for as long as the lane runs; print what it owes
        (each receipt once) as soon as it is back."""
        asks = True
        while True:
            await self._nap(TROUBLE_POLL_S if self._troubled() else HEALTHY_POLL_S)
            if self._printing or not (asks or self._owed()):
                continue
            status = await self._status()
            if status.state is PrinterState.UNKNOWN and _NO_STATUS in status.reason:
                asks = False  # it cannot tell: try what is owed and see
            if asks and status.state is not PrinterState.OK:
                self._set_trouble(str(status))
                continue
            if asks:
                self._set_trouble(None)
            for job in self._owed():
                work = self.printer.retry_async(job.id)
                invoice = job.receipt.invoice_number
                self._background.start(self._outcome(invoice, work), f"print-again-{job.id}")

    def _owed(self) -> list[PrintJob]:
        return [job for job in self.printer.waiting if job.state is JobState.FAILED]

    def _troubled(self) -> bool:
        return self._trouble is not None or bool(self._owed())

    async def _nap(self, seconds: float) -> None:
        """Sleep, unless a receipt fails to print meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._failed.wait(), seconds)
        self._failed.clear()

    async def _status(self) -> PrinterStatus:
        """How the printer is. A link the printer closed (unplugged, rebooted) fails
        quickly once or twice before the driver opens a new one, so a quick "unknown"
        is asked again at once; a slow one (a printer that keeps quiet) is not."""
        loop = asyncio.get_running_loop()
        for _ in range(3):
            started = loop.time()
            status = await self.printer.status_async()
            quick = loop.time() - started < QUICK_FAILURE_S
            if status.state is not PrinterState.UNKNOWN or _NO_STATUS in status.reason:
                break
            if not quick:
                break
        return status

    def _set_trouble(self, trouble: str | None) -> None:
        if trouble != self._trouble:
            self._trouble = trouble
            self._report(DeviceChanged("printer", trouble is None, trouble or ""))

    async def _outcome(self, invoice: str, work: Coroutine[Any, Any, Any]) -> None:
        self._printing += 1
        try:
            job = await work
        finally:
            self._printing -= 1
        if job.state is JobState.PRINTING:
            return  # another attempt at it is under way; that one reports
        ok = job.state is JobState.PRINTED
        self._set_trouble(None if ok else job.reason)
        if not ok:
            self._failed.set()
        # Last, so the cashier's prompt ends on what to do about the receipt.
        self._report(Printed(invoice, ok, job.reason))

    def close(self) -> None:
        self.printer.close()


@dataclass
class Outputs:
    """Whichever output devices this lane has (None: not fitted)."""

    display: DisplayOutput | None = None
    gpio: GpioOutputs | None = None
    printer: PrinterOutput | None = None
