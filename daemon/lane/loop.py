"""The lane: scans and commands in, verdicts out, one at a time on the event loop.

    lane = Lane(settings, ledger, outputs, options=barcode_options)
    lane.submit(scan)                 # from a scanner task (Scan or ScanProblem)
    reply = await lane.ask(Command(CommandName.TENDER, "CASH"))   # from the kiosk API
    await lane.run()                  # the one consumer, until stop()

For each input, in this order: parse the barcode, ask the ledger what the rules need
(`plan_lookup`), decide (`daemon.rules.lane.machine.step`, pure), store the input and the
decision in the lane's journal with its sequence number, and only then act: display,
light, buzzer, and a ledger operation whose answer is decided the same way before the
receipt prints. If the ledger cannot be written, the lane goes out of service, and
tries it again every `PROBE_S`: once a journal entry can be written, it is back
(`ServiceRestored`). Another program holding the ledger busy is not a fault: the input in
hand is refused "ledger busy, try again" (`Busy`) and nothing of it was done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from daemon.drivers.scanner import Reason, Scan, ScanProblem
from daemon.lane import logbook
from daemon.lane.ledger import LaneLedger, LedgerBusy, LedgerUnusable
from daemon.lane.outputs import Background, Outputs
from daemon.lane.snapshot import describe_input, snapshot
from daemon.ledger import LedgerError
from daemon.ledger.lane_log import Entry
from daemon.ledger.store import iso
from daemon.rules.barcode import BarcodeOptions, PlainLabel, parse
from daemon.rules.lane.machine import plan_command, plan_lookup, step
from daemon.rules.lane.types import (
    Busy,
    Command,
    Effects,
    Input,
    LaneSettings,
    LaneState,
    LedgerDone,
    LedgerOp,
    Mode,
    Now,
    Scanned,
    ScannerTrouble,
    ServiceFault,
    ServiceRestored,
    Tick,
)

log = logging.getLogger(__name__)
Item = Scan | ScanProblem | Input
PROBE_S = 2.0  # out of service: how often the ledger is tried again
_BY_A_PERSON = ("scan", "command", "release", "manager")


class Lane:
    def __init__(
        self,
        settings: LaneSettings,
        ledger: LaneLedger,
        outputs: Outputs,
        *,
        options: BarcodeOptions,
        state: LaneState,
        background: Background,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.outputs = outputs
        self.options = options
        self.state = state
        self.background = background
        self._monotonic = monotonic
        self._wall = wall
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[dict[str, Any]] | None]] = (
            asyncio.Queue()
        )
        self._busy = False
        self._answering = False
        self._tick: asyncio.TimerHandle | None = None
        self._probe: asyncio.TimerHandle | None = None
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.taken = 0  # inputs processed so far
        self.last: dict[str, Any] = {}  # the last published event
        # Called with the devices that are missing whenever that changes (e.g. to put
        # them in the service's status line).
        self.on_devices: Callable[[dict[str, str]], None] | None = None

    # -- what comes in ----------------------------------------------------------

    def submit(self, item: Item) -> None:
        """Queue an input; it is taken after everything queued before it."""
        self._queue.put_nowait((item, None))

    async def ask(self, item: Item, timeout_s: float = 30.0) -> dict[str, Any]:
        """Queue an input and wait until it (and any ledger operation it started) is done;
        the published event: its verdict and the lane's state after it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await asyncio.wait_for(future, timeout_s)

    async def run(self) -> None:
        """Take inputs one at a time, for ever (cancel the task to stop)."""
        while True:
            item, future = await self._queue.get()
            self._busy = True
            self._answering = future is not None
            try:
                event = await self._take(item)
            except Exception as error:  # a bug must not leave a kiosk call hanging
                log.exception("lane input %r failed", item)
                if future is not None and not future.done():
                    future.set_exception(error)
                continue
            finally:
                self._busy = False
                self.taken += 1
            if future is not None and not future.done():
                future.set_result(event)

    @property
    def busy(self) -> bool:
        """An input is being decided or carried out right now."""
        return self._busy

    def show_state(self) -> None:
        """Put the current display text and light on the devices (e.g. at start)."""
        self._act(Effects(display=self.state.display, light=self.state.light), None)

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing being decided, no output still being written."""
        display = self.outputs.display
        return (
            self._queue.empty()
            and not self._busy
            and not self.background.busy
            and (display is None or display.settled)
        )

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of every event from now on (None when the lane stops)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=256)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._subscribers.discard(queue)

    def close_subscriptions(self) -> None:
        for queue in list(self._subscribers):
            queue.put_nowait(None) if not queue.full() else None
        self._subscribers.clear()

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.state, self.settings, self.outputs)

    def wall(self) -> datetime:
        """The lane's wall clock (what its journal entries are stamped with)."""
        return self._wall()

    # -- deciding -------------------------------------------------------------------

    async def _take(self, item: Item) -> dict[str, Any]:
        if isinstance(item, Scan):
            parsed = parse(item.text, self.options, item.symbology_id)
            shown = item.text
            try:
                facts = await self.ledger.facts(plan_lookup(self.state, parsed, self.settings))
            except LedgerBusy as error:
                return await self._apply(Busy(str(error)), "busy", item.source, shown)
            except LedgerUnusable as error:
                return await self._apply(ServiceFault(str(error)), "fault", "ledger", str(error))
            if isinstance(parsed, PlainLabel):
                holder = self.settings.badges.get(parsed.text) or self.settings.managers.get(
                    parsed.text
                )
                if holder is not None:  # a badge id is a credential: never stored
                    shown = f"badge of {holder}"
            scanned = Scanned(parsed, facts, item.source)
            return await self._apply(scanned, "scan", item.source, shown)
        if isinstance(item, ScanProblem):
            trouble = ScannerTrouble(
                item.reason_code.value,
                item.message,
                item.source,
                connected=item.reason_code is not Reason.DISCONNECTED,
            )
            return await self._apply(trouble, "scanner", item.source, item.reason_code.value)
        if isinstance(item, Command):
            plan = plan_command(self.state, item)
            if not plan.empty:
                try:
                    item = replace(item, facts=await self.ledger.facts(plan))
                except LedgerBusy as error:
                    return await self._apply(Busy(str(error)), "busy", item.source, item.name)
                except LedgerUnusable as error:
                    return await self._apply(
                        ServiceFault(str(error)), "fault", "ledger", str(error)
                    )
        kind, source, shown = describe_input(item)
        return await self._apply(item, kind, source, shown)

    async def _apply(self, event: Input, kind: str, source: str, shown: str) -> dict[str, Any]:
        if isinstance(event, ServiceFault):
            log.error("lane out of service: %s", event.message)
        now = Now(self._monotonic(), self._wall())
        before = self.state
        after, effects = step(before, event, now, self.settings)
        seq = None
        if kind in ("scan", "command", "release", "manager") or effects.verdict is not None:
            entry = self._entry(now, kind, source, shown, before, after, effects, event)
            try:
                seq = await self.ledger.log(entry)
            except LedgerBusy as error:
                if kind in _BY_A_PERSON:  # not done: that person is told to try again
                    return await self._apply(Busy(str(error)), "busy", source, shown)
                # Busy itself, or what the lane must take in whatever the journal says
                # (a ledger answer, a print result): taken without its entry.
                log.warning("journal entry not written (%s): %s", error, shown)
            except LedgerUnusable as error:
                if isinstance(event, ServiceRestored):
                    self._schedule_probe()  # still not writable: stays out of service
                    return {}
                if isinstance(event, ServiceFault):
                    seq = None  # the journal is what failed; the lane still stops
                else:
                    return await self._apply(ServiceFault(str(error)), "fault", "ledger", shown)
        self.state = after
        if after.mode is Mode.OUT_OF_SERVICE:
            self._schedule_probe()
        if after.devices is not before.devices and self.on_devices is not None:
            self.on_devices(dict(after.devices))
        published = self._publish(seq, kind, shown, effects)
        if effects.ledger is None:
            self._schedule_tick()
        # Last: the display's thread takes over as soon as this task next waits, and it
        # needs the interpreter lock, which this task holds until then.
        self._act(effects, seq)
        if effects.ledger is not None:
            return await self._carry_out(effects.ledger)
        return published

    async def _carry_out(self, op: LedgerOp) -> dict[str, Any]:
        try:
            done = await self.ledger.perform(op)
        except LedgerBusy as error:  # nothing was done: refused, to be tried again
            done = LedgerDone(op.op_id, (("ledger_busy", str(error)),))
        except (LedgerUnusable, LedgerError, OSError) as error:
            return await self._apply(ServiceFault(str(error)), "fault", "ledger", str(error))
        logbook.record(op, done)  # before _apply, which may carry out a follow-up operation
        event = await self._apply(done, "ledger", "ledger", type(op).__name__)
        if self.state.basket is None and self.state.pending is None:
            # Between customers: the WAL's pages go into the ledger file now, not in
            # the middle of the next sale's commit.
            self.background.start(self._checkpoint(), "checkpoint")
        return event

    async def _checkpoint(self) -> None:
        try:
            await self.ledger.checkpoint()
        except LedgerBusy:
            pass  # another writer: the next customer's checkpoint goes further
        except LedgerUnusable as error:
            self.submit(ServiceFault(str(error)))

    def _entry(
        self,
        now: Now,
        kind: str,
        source: str,
        shown: str,
        before: LaneState,
        after: LaneState,
        effects: Effects,
        event: Input,
    ) -> Entry:
        verdict = effects.verdict
        basket = after.basket or before.basket
        op_basket = getattr(effects.ledger, "basket", None)
        invoice = (
            getattr(event, "invoice", None)
            or (op_basket.invoice if op_basket is not None else None)
            or (basket.invoice if basket else None)
        )
        return Entry(
            at=iso(now.wall),
            kind=kind,
            source=source,
            input=shown,
            mode=after.mode.value,
            outcome=verdict.outcome if verdict else None,
            code=verdict.code if verdict else None,
            message=verdict.message if verdict else None,
            invoice=invoice,
            basket_open=after.basket.invoice if after.basket else None,
        )

    # -- acting -----------------------------------------------------------------------

    def _act(self, effects: Effects, seq: int | None) -> None:
        display, gpio, printer = self.outputs.display, self.outputs.gpio, self.outputs.printer
        if effects.display is not None and display is not None:
            display.show(effects.display)
        if gpio is not None:
            if effects.light is not None:
                gpio.show(effects.light)
            if effects.beep is not None:
                gpio.beep(effects.beep)
        if effects.receipt is not None and printer is not None:
            printer.print(effects.receipt)
        last = self.state.last_receipt
        if effects.reprint and last is not None and printer is not None:
            printer.reprint(last, f"reprint-{seq or self.taken}")
        if effects.open_drawer and last is not None:
            kicked = printer is not None and printer.open_drawer(last.invoice)
            if not kicked and gpio is not None:
                gpio.open_drawer(last.invoice)

    def _publish(self, seq: int | None, kind: str, shown: str, effects: Effects) -> dict[str, Any]:
        verdict = effects.verdict
        event: dict[str, Any] = {
            "seq": seq,
            "input": {"kind": kind, "text": shown},
            "verdict": None
            if verdict is None
            else {"outcome": verdict.outcome, "code": verdict.code, "message": verdict.message},
            "beep": effects.beep.value if effects.beep else None,
        }
        if self._subscribers or self._answering:
            # Built only for someone who reads it: a large basket makes it the costliest
            # thing a scan does after the display is updated.
            event["lane"] = self.snapshot()
        if verdict is not None or effects.display is not None:
            self.last = event
            for queue in list(self._subscribers):
                if queue.full():  # a kiosk that stopped reading: it reconnects for more
                    self._subscribers.discard(queue)
                else:
                    queue.put_nowait(event)
        return event

    def _schedule_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        deadline = self.state.deadline
        if deadline is not None:
            delay = max(0.0, deadline - self._monotonic())
            loop = asyncio.get_running_loop()
            self._tick = loop.call_later(delay, self.submit, Tick())

    def _schedule_probe(self) -> None:
        """Out of service: try the ledger again in `PROBE_S` (a journal entry saying the
        lane is back is the test)."""
        if self._probe is None or self._probe.when() <= asyncio.get_running_loop().time():
            loop = asyncio.get_running_loop()
            self._probe = loop.call_later(PROBE_S, self.submit, ServiceRestored())

    def stop_ticks(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
