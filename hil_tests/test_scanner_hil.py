"""The scanner behaviours of the simulated tests, against a real scanner.

    POSD_HIL_SCANNER=/dev/input/by-id/...-event-kbd   (or vendor:product, e.g. 05e0:1200)
    POSD_HIL_LAYOUT=de                    keyboard layout the wedge scanner is set to (us)
    POSD_HIL_END_KEY=enter                enter, keypad_enter or tab (enter)
    POSD_HIL_SERIAL_SCANNER=/dev/serial/by-id/...
    POSD_HIL_SERIAL_BAUD=9600  POSD_HIL_SERIAL_FRAMING=8N1  POSD_HIL_SERIAL_TERMINATOR=CR
    POSD_HIL_EXPECT=SN-HIL-0001           the text of the test label a person scans
    POSD_HIL_INTERACTIVE=1                someone will unplug and replug the scanner
    POSD_HIL_SCAN_WAIT_S=30               how long to wait for each scan

Each test says on the terminal what to scan or unplug. Tests that need a person to scan
are skipped unless POSD_HIL_EXPECT names the label they will scan.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from daemon.drivers.keymap import KeyboardLayout
from daemon.drivers.scanner import ReadingScanner, Reason, Scan, ScanEvent, ScanProblem
from daemon.drivers.scanner_evdev import (
    EvdevScanner,
    open_input_device,
    resolve_input_device,
)
from daemon.drivers.scanner_serial import SerialScanner
from daemon.rules.barcode import BarcodeOptions, Rejected, parse

WEDGE = os.environ.get("POSD_HIL_SCANNER", "")
SERIAL = os.environ.get("POSD_HIL_SERIAL_SCANNER", "")
EXPECT = os.environ.get("POSD_HIL_EXPECT", "")
INTERACTIVE = os.environ.get("POSD_HIL_INTERACTIVE", "") == "1"
WAIT_S = float(os.environ.get("POSD_HIL_SCAN_WAIT_S", "30"))
ANY = bool(WEDGE or SERIAL)  # the finer reasons below only matter once a scanner is named

pytestmark = pytest.mark.skipif(
    not ANY,
    reason="no real scanner named: set POSD_HIL_SCANNER=/dev/input/by-id/... (and "
    "POSD_HIL_LAYOUT=us|gb|de|fr) or POSD_HIL_SERIAL_SCANNER=/dev/serial/by-id/... to run",
)
needs_label = pytest.mark.skipif(
    ANY and not EXPECT, reason="set POSD_HIL_EXPECT to the text of the test label someone will scan"
)
needs_person = pytest.mark.skipif(
    ANY and not INTERACTIVE, reason="set POSD_HIL_INTERACTIVE=1 with someone to unplug the scanner"
)


def _say(message: str) -> None:
    print(f"\n[posd HIL] {message}", file=sys.__stderr__, flush=True)


def _wedge() -> EvdevScanner:
    layout = KeyboardLayout(os.environ.get("POSD_HIL_LAYOUT", "us"))
    return EvdevScanner(
        lambda: open_input_device(resolve_input_device(WEDGE)),
        layout,
        source=WEDGE,
        end_keys=[os.environ.get("POSD_HIL_END_KEY", "enter")],
    )


def _serial() -> SerialScanner:
    framing = os.environ.get("POSD_HIL_SERIAL_FRAMING", "8N1")
    return SerialScanner(
        SERIAL,
        baudrate=int(os.environ.get("POSD_HIL_SERIAL_BAUD", "9600")),
        bytesize=int(framing[0]),
        parity=framing[1],
        stopbits=float(framing[2:]) if "." in framing[2:] else int(framing[2:]),
        terminator=os.environ.get("POSD_HIL_SERIAL_TERMINATOR", "CR"),
    )


KINDS = [
    pytest.param(
        _wedge,
        id="wedge",
        marks=pytest.mark.skipif(ANY and not WEDGE, reason="set POSD_HIL_SCANNER to run"),
    ),
    pytest.param(
        _serial,
        id="serial",
        marks=pytest.mark.skipif(ANY and not SERIAL, reason="set POSD_HIL_SERIAL_SCANNER to run"),
    ),
]


@pytest.fixture(params=KINDS)
def make_scanner(request: pytest.FixtureRequest) -> Iterator[Callable[[], ReadingScanner]]:
    make: Callable[[], ReadingScanner] = request.param
    yield make


async def _next(stream: AsyncIterator[ScanEvent], wait_s: float = WAIT_S) -> ScanEvent:
    return await asyncio.wait_for(anext(stream), wait_s)


@pytest.mark.skipif(ANY and not WEDGE, reason="set POSD_HIL_SCANNER to run")
def test_the_wedge_scanner_is_found_by_its_stable_name() -> None:
    node = resolve_input_device(WEDGE)
    device = open_input_device(node)
    try:
        device.grab()  # posd must be able to take it for itself
        device.ungrab()
    finally:
        device.close()


@needs_label
def test_a_scan_of_the_test_label_arrives_whole_and_parses(
    make_scanner: Callable[[], ReadingScanner],
) -> None:
    async def scenario() -> ScanEvent:
        stream = aiter(make_scanner().scans())
        _say(f"scan the test label {EXPECT!r} now")
        try:
            return await _next(stream)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    event = asyncio.run(scenario())
    assert isinstance(event, Scan), event
    assert event.text == EXPECT
    assert not isinstance(parse(event.text, BarcodeOptions(), event.symbology_id), Rejected)


@needs_label
def test_scans_in_quick_succession_each_arrive_whole(
    make_scanner: Callable[[], ReadingScanner],
) -> None:
    async def scenario() -> list[ScanEvent]:
        stream = aiter(make_scanner().scans())
        _say(f"scan the test label {EXPECT!r} three times, quickly")
        try:
            return [await _next(stream) for _ in range(3)]
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    events = asyncio.run(scenario())
    assert all(isinstance(e, Scan) and e.text == EXPECT for e in events), events


@needs_label
@needs_person
def test_unplugging_and_replugging_is_reported_and_scanning_resumes(
    make_scanner: Callable[[], ReadingScanner],
) -> None:
    async def scenario() -> list[ScanEvent]:
        stream = aiter(make_scanner().scans())
        try:
            _say("unplug the scanner now")
            gone = await _next(stream)
            _say("plug the scanner back in")
            back = await _next(stream)
            _say(f"scan the test label {EXPECT!r}")
            return [gone, back, await _next(stream)]
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    gone, back, scan = asyncio.run(scenario())
    assert isinstance(gone, ScanProblem) and gone.reason_code is Reason.DISCONNECTED
    assert isinstance(back, ScanProblem) and back.reason_code is Reason.RECONNECTED
    assert isinstance(scan, Scan) and scan.text == EXPECT
