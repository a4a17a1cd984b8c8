"""Barcode scanners: what the lane receives, and the parts every scanner shares.

The lane reads any scanner the same way:

    async for item in scanner.scans():
        if isinstance(item, Scan):
            result = barcode.parse(item.text, options, item.symbology_id)
        else:                      # ScanProblem: tell the cashier, record the attempt
            ...

`Scan.text` is exactly what the scanner sent between two end-of-scan marks, with the
terminator removed and any AIM symbology identifier (`]C1`, `]d2`, `]E0`, …) split off
into `Scan.symbology_id`; nothing else is interpreted here. A scan that was not read
whole never becomes a `Scan`: it becomes a `ScanProblem` with a reason code and a
sentence for the cashier, and the scan is dropped, so a half-read serial can never
reach the ledger.

Two kinds of scanner share this interface: `EvdevScanner` (keyboard wedge, in
`scanner_evdev`) and `SerialScanner` (in `scanner_serial`). Each registers itself as a
kind of the `SCANNER` role there, with a section deriving from `ScannerConfigBase`;
`check_scanner` is the doctor's scan test they share, and `scanner_maker` and
`names_a_scanner` what provisioning looks at to pick a scanner out of what is attached.
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from pydantic import Field

from daemon.config.base import Section
from daemon.drivers.checks import CheckContext, Finding, Where, fail, ok, skip, warn
from daemon.drivers.registry import DeviceRole
from daemon.rules.barcode import split_symbology_identifier

Clock = Callable[[], float]

DEFAULT_CHAR_TIMEOUT_S: Final = 0.1
DEFAULT_MAX_SCAN_LENGTH: Final = 1024
DEFAULT_RECONNECT_INTERVAL_S: Final = 1.0


class Reason(StrEnum):
    """Why a scan was not passed on, or what happened to the scanner."""

    SYN_DROPPED = "syn_dropped"  # the kernel lost key events; the scan is unsafe
    LOST_EVENTS = "lost_events"  # key events out of order (a release with no press)
    TIMEOUT_PARTIAL = "timeout_partial"  # the scanner stopped mid-scan
    TOO_LONG = "too_long"  # no end-of-scan mark within the longest scan allowed
    UNDECODABLE = "undecodable"  # serial bytes not in the configured encoding
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"


class OnTimeout(StrEnum):
    """What a pause longer than the inter-character timeout does to a partial scan."""

    DISCARD = "discard"  # report it as timeout_partial and drop it (the safe default)
    END = "end"  # treat it as complete: for scanners set up to send no terminator


@dataclass(frozen=True)
class Scan:
    """One barcode read whole. `scanned_at_monotonic` is on the scanner's injected clock."""

    text: str
    symbology_id: str | None
    source: str
    scanned_at_monotonic: float


@dataclass(frozen=True)
class ScanProblem:
    """A scan that was not read whole, or a change in the scanner's connection."""

    reason_code: Reason
    message: str
    source: str


ScanEvent = Scan | ScanProblem


def _shown(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "…"


class ScanAssembler:
    """Collects typed characters into whole scans; decides when a partial scan is unsafe.

    No I/O and no clock of its own: every call says when it happened. `key_time` is when
    the scanner typed (for evdev, the kernel's timestamp on the key event, so a busy
    event loop cannot make a fast scan look slow); `now` is the driver's clock, used for
    `scanned_at_monotonic` and for noticing silence.
    """

    def __init__(
        self,
        source: str,
        *,
        char_timeout_s: float = DEFAULT_CHAR_TIMEOUT_S,
        on_timeout: OnTimeout = OnTimeout.DISCARD,
        max_length: int = DEFAULT_MAX_SCAN_LENGTH,
    ) -> None:
        if char_timeout_s <= 0:
            raise ValueError(
                f"char_timeout_s {char_timeout_s} must be above 0 seconds; "
                "0.05 to 0.2 suits most scanners"
            )
        self.source = source
        self.char_timeout_s = char_timeout_s
        self.on_timeout = OnTimeout(on_timeout)
        self.max_length = max_length
        self._parts: list[str] = []
        self._length = 0
        self._last_key_time = 0.0
        self._last_now = 0.0
        self._skipping = False  # after a problem, drop everything up to the next end mark

    @property
    def partial(self) -> str:
        return "".join(self._parts)

    @property
    def collecting(self) -> bool:
        """True while characters of a scan have arrived and its end has not."""
        return bool(self._parts)

    @property
    def busy(self) -> bool:
        """True while a scan is under way (or being skipped) and silence would end it."""
        return bool(self._parts) or self._skipping

    def typed(self, text: str, key_time: float, now: float) -> Sequence[ScanEvent]:
        """Characters typed; may first end a partial scan that paused too long."""
        events: Sequence[ScanEvent] = ()
        if key_time - self._last_key_time > self.char_timeout_s and self.busy:
            events = self._timed_out(now)
        self._last_key_time, self._last_now = key_time, now
        if self._skipping or not text:
            return events
        self._parts.append(text)
        self._length += len(text)
        if self._length > self.max_length:
            problem = self.drop(
                Reason.TOO_LONG,
                f"no end of scan after {self.max_length} characters; check the scanner's "
                "end-of-scan setting, then scan the item again",
            )
            return [*events, problem]
        return events

    def ended(self, key_time: float, now: float) -> Sequence[ScanEvent]:
        """The end-of-scan mark (Enter, Tab, CR, LF) arrived."""
        events: Sequence[ScanEvent] = ()
        if key_time - self._last_key_time > self.char_timeout_s and self.busy:
            events = self._timed_out(now)
        self._last_key_time, self._last_now = key_time, now
        if self._skipping:
            self._skipping = False
            return events
        scan = self._finish(now)
        return events if scan is None else [*events, scan]

    def drop(self, reason: Reason, advice: str) -> ScanProblem:
        """Throw the partial scan away and skip to the next end mark; say what was lost."""
        partial = self.partial
        self._parts.clear()
        self._length = 0
        self._skipping = True
        lost = f" (the partial scan {_shown(partial)} was discarded)" if partial else ""
        return ScanProblem(reason, f"scanner {self.source}: {advice}{lost}", self.source)

    def skip_to_end(self, key_time: float, now: float) -> None:
        """Keep skipping up to the next end mark, counting pauses from `key_time` on.

        For keys lost before the driver could look at them: even after a pause, what
        follows them is the tail of a scan whose start is gone.
        """
        self._parts.clear()
        self._length = 0
        self._skipping = True
        self._last_key_time, self._last_now = key_time, now

    def reset(self) -> None:
        """Forget any partial scan, e.g. when the device is opened afresh."""
        self._parts.clear()
        self._length = 0
        self._skipping = False

    def seconds_until_idle(self, now: float) -> float | None:
        """How long silence may last before `idle` must be called; None when nothing waits."""
        if not self.busy:
            return None
        return max(0.0, self._last_now + self.char_timeout_s - now)

    def idle(self, now: float) -> Sequence[ScanEvent]:
        """No input since the last call; end or discard a partial scan that went quiet."""
        if not self.busy or now - self._last_now < self.char_timeout_s:
            return ()
        return self._timed_out(now)

    def _timed_out(self, now: float) -> Sequence[ScanEvent]:
        if self._skipping:
            self._skipping = False
            return ()
        if self.on_timeout is OnTimeout.END:
            scan = self._finish(now)
            return () if scan is None else (scan,)
        problem = self.drop(
            Reason.TIMEOUT_PARTIAL,
            f"the scanner paused for more than {self.char_timeout_s:g} s in the middle of a scan; "
            "scan the item again",
        )
        self._skipping = False  # the pause itself marks where the next scan starts
        return (problem,)

    def _finish(self, now: float) -> Scan | None:
        text = self.partial
        self._parts.clear()
        self._length = 0
        if not text:
            return None
        symbology_id, text = split_symbology_identifier(text)
        return Scan(text, symbology_id, self.source, now)


class _Gone:
    """Put on a scanner's queue when its device disappears."""

    def __init__(self, why: str) -> None:
        self.why = why


class ReadingScanner(ABC):
    """The async loop shared by scanners that read a file descriptor.

    Subclasses open the device (`_connect`, returning the descriptor to watch), read
    what is waiting without blocking (`_read`), and turn bytes into scan events
    (`feed`). This class watches the descriptor with `loop.add_reader`, so reading
    never blocks the event loop, ends partial scans that go quiet, and reopens the
    device at `reconnect_interval_s` when it disappears, reporting both changes.
    """

    def __init__(
        self,
        assembler: ScanAssembler,
        *,
        clock: Clock,
        reconnect_interval_s: float = DEFAULT_RECONNECT_INTERVAL_S,
    ) -> None:
        self._assembler = assembler
        self._clock = clock
        self._reconnect_interval_s = reconnect_interval_s

    @property
    def source(self) -> str:
        return self._assembler.source

    @abstractmethod
    def _connect(self) -> int:
        """Open the device and return its file descriptor; raise OSError if absent."""

    @abstractmethod
    def _disconnect(self) -> None:
        """Close the device (it may already be gone)."""

    @abstractmethod
    def _read(self) -> bytes | None:
        """Read what is waiting: None if nothing yet; b"" or OSError if the device is gone."""

    @abstractmethod
    def feed(self, data: bytes, now: float) -> Sequence[ScanEvent]:
        """Turn bytes the device produced at `now` into scan events (no I/O).

        The async loop calls this with what it reads; a benchmark or a test may call
        it directly with recorded bytes.
        """

    async def scans(self, opened: Callable[[], None] | None = None) -> AsyncIterator[ScanEvent]:
        """Every scan and scanner problem, in order, for as long as the caller iterates;
        `opened()` is called each time the device has been opened and is listening."""
        loop = asyncio.get_running_loop()
        reported_absent = False
        while True:
            try:
                fd = self._connect()
            except OSError as exc:
                if not reported_absent:
                    reported_absent = True
                    yield self._problem(
                        Reason.DISCONNECTED,
                        f"cannot be opened ({exc}); check its cable, trying again every "
                        f"{self._reconnect_interval_s:g} s",
                    )
                await asyncio.sleep(self._reconnect_interval_s)
                continue
            self._assembler.reset()
            if reported_absent:
                reported_absent = False
                yield self._problem(Reason.RECONNECTED, "is connected again; scan the item again")
            queue: asyncio.Queue[Sequence[ScanEvent] | _Gone] = asyncio.Queue()
            loop.add_reader(fd, self._on_readable, loop, fd, queue)
            if opened is not None:
                opened()
            try:
                async for event in self._drain(queue):
                    yield event
            finally:
                loop.remove_reader(fd)
                self._disconnect()
            reported_absent = True

    async def _drain(
        self, queue: asyncio.Queue[Sequence[ScanEvent] | _Gone]
    ) -> AsyncIterator[ScanEvent]:
        while True:
            timeout = self._assembler.seconds_until_idle(self._clock())
            try:
                item = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                for event in self._assembler.idle(self._clock()):
                    yield event
                continue
            if isinstance(item, _Gone):
                yield self._assembler.drop(
                    Reason.DISCONNECTED,
                    f"disconnected ({item.why}); check its cable, it is reopened automatically",
                )
                return
            for event in item:
                yield event

    def _on_readable(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        queue: asyncio.Queue[Sequence[ScanEvent] | _Gone],
    ) -> None:
        try:
            data = self._read()
        except OSError as exc:
            loop.remove_reader(fd)
            queue.put_nowait(_Gone(str(exc) or type(exc).__name__))
            return
        if data is None:
            return
        if not data:
            loop.remove_reader(fd)
            queue.put_nowait(_Gone("end of input"))
            return
        # Queued even when empty: a new partial scan changes when silence must end it.
        queue.put_nowait(self.feed(data, self._clock()))

    def _problem(self, reason: Reason, what: str) -> ScanProblem:
        return ScanProblem(reason, f"scanner {self.source} {what}", self.source)


# ------------------------------------------------------------------- configuration


class ScannerConfigBase(Section):
    """What every scanner section says, whatever its kind."""

    char_timeout_s: float = Field(default=0.1, gt=0, le=2)
    on_timeout: Literal["discard", "end"] = "discard"
    max_length: int = Field(default=1024, ge=16, le=65536)
    name: str | None = None


SCANNER: DeviceRole[ScannerConfigBase, ReadingScanner] = DeviceRole(
    "scanner", "scanner", "scanners", ScannerConfigBase, tag="kind", many=True
)

# Words in a device's name, or USB vendor ids, that mark a barcode scanner.
_SCANNER_WORDS = re.compile(
    r"barcode|scanner|\bscan|honeywell|metrologic|hand ?held|symbol|zebra|datalogic|"
    r"newland|opticon|zebex|code ?corp|unitech|cino|inateck|netum|eyoyo|sunmi",
    re.IGNORECASE,
)
SCANNER_VENDORS: Mapping[int, str] = {
    0x05E0: "Symbol/Zebra",
    0x0C2E: "Honeywell (Metrologic)",
    0x0536: "Honeywell (Hand Held Products)",
    0x05F9: "Datalogic",
    0x1EAB: "Newland",
    0x065A: "Opticon",
    0x1A8B: "Zebex",
}


def scanner_maker(vendor: int | None) -> str | None:
    """The scanner maker a USB vendor id belongs to, or None."""
    return SCANNER_VENDORS.get(vendor) if vendor is not None else None


def names_a_scanner(label: str) -> bool:
    """Whether a device's name says it is a barcode scanner."""
    return bool(_SCANNER_WORDS.search(label))


# ---------------------------------------------------------------- posd doctor


def check_scanner(
    context: CheckContext,
    where: Where,
    build: Callable[[], ReadingScanner],
    *,
    device: str,
    key: str,
    missing: Callable[[], str | None],
    layout: str | None = None,
) -> list[Finding]:
    """The doctor's scan test, through the scanner the lane would read: it is built,
    found attached (`missing()` says why not), then a scan is waited for. `layout` is
    the keyboard layout a keyboard-mode scanner is decoded with."""
    try:
        reader = build()
    except (ValueError, LookupError) as error:
        return [fail(where.name, str(error), "fix the [[scanners]] section")]
    absent = missing()
    if absent:
        return [
            fail(where.name, absent, f"plug the scanner in; `posd devices`; fix {where.key}.{key}")
        ]
    if not context.options.scan:
        return [skip(where.name, f"{device} is attached; scan test skipped (--no-scan)")]
    return [_wait_for_scan(context, reader, where.name, device, layout)]


def _wait_for_scan(
    context: CheckContext, reader: ReadingScanner, name: str, where: str, layout: str | None
) -> Finding:
    timeout = context.options.scan_timeout_s

    def ready() -> None:
        # Open before the test ticket prints, so a scan of it the moment it is out counts.
        context.scanner_open()
        context.wait_for_ticket()
        what = "the barcode on the test ticket (or any barcode)" if context.ticket else "a barcode"
        context.say(f"Scan {what} with {where}; waiting up to {timeout:g} s…")

    event, problems = asyncio.run(_first_scan(reader, timeout, ready))
    if isinstance(event, ScanProblem):
        return fail(
            name,
            event.message,
            "if posd is running it holds the scanner: systemctl stop posd",
        )
    if event is None:
        seen = f" ({len(problems)} broken scans; first: {problems[0].message})" if problems else ""
        return fail(
            name,
            f"{where}: no scan within {timeout:g} s{seen}",
            "scan while doctor waits; if the scanner beeps but nothing arrives, check its "
            "end-of-scan key or terminator in the configuration",
        )
    text = event.text
    shown = f"{where}: read {text!r}" + (f" ({event.symbology_id})" if event.symbology_id else "")
    ticket = context.ticket
    if ticket and text == ticket:
        return ok(name, shown + ", the test ticket's barcode: printer and scanner agree")
    if ticket and layout is not None and len(text) == len(ticket):
        return warn(
            name,
            shown + f", but the ticket says {ticket!r}",
            f"the scanner types in another keyboard layout than {layout!r}: set "
            "its layout in the configuration (or the scanner) to match",
        )
    return ok(name, shown)


_OPEN_TIMEOUT_S = 5.0


async def _first_scan(
    reader: ReadingScanner, timeout_s: float, ready: Callable[[], None]
) -> tuple[Scan | ScanProblem | None, list[ScanProblem]]:
    """The first whole scan, the problem that stops the scanner from being read, or
    None at the deadline; with the broken scans seen on the way. The scanner is opened
    first; `ready()` runs (on a thread) once it listens, and the `timeout_s` for a scan
    counts from its end, though a scan that came while it ran counts too."""
    problems: list[ScanProblem] = []
    opened = asyncio.Event()
    stream = reader.scans(opened=opened.set)

    async def take() -> Scan | ScanProblem | None:
        async for event in stream:
            if isinstance(event, Scan):
                return event
            if event.reason_code is Reason.DISCONNECTED:
                return event
            problems.append(event)
        return None

    scan = asyncio.ensure_future(take())
    listening = asyncio.ensure_future(opened.wait())
    try:
        await asyncio.wait(
            {scan, listening}, timeout=_OPEN_TIMEOUT_S, return_when="FIRST_COMPLETED"
        )
        await asyncio.to_thread(ready)
        return await asyncio.wait_for(scan, timeout_s), problems
    except TimeoutError:
        return None, problems
    finally:
        for task in (listening, scan):
            task.cancel()
        await asyncio.gather(listening, scan, return_exceptions=True)
        await stream.aclose()  # type: ignore[attr-defined]
