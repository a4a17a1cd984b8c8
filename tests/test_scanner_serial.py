"""Serial scanners on a pseudo-terminal, opened with pyserial like a real port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.drivers.scanner import OnTimeout, Reason, Scan, ScanEvent, ScanProblem
from daemon.drivers.scanner_serial import SerialScanner
from daemon.rules.barcode import BarcodeOptions, Rejected, parse
from simulators.scanner import ManualClock, SimulatedSerialScanner
from tests.test_scanner_helpers import Reader, run


@pytest.fixture
def port(tmp_path: Path) -> Iterator[SimulatedSerialScanner]:
    simulator = SimulatedSerialScanner(tmp_path / "usb-Scanner_Co_Model_9-if00")
    yield simulator
    simulator.close()


def scanner_on(sim: SimulatedSerialScanner, **options: Any) -> SerialScanner:
    options.setdefault("reconnect_interval_s", 0.01)
    return SerialScanner(sim.port, **options)


@pytest.mark.parametrize("terminator", ["CR", "LF", "CRLF"])
def test_scans_end_at_the_configured_terminator(
    port: SimulatedSerialScanner, terminator: str
) -> None:
    async def scenario() -> list[str]:
        reader = Reader(scanner_on(port, terminator=terminator))
        await reader.start()
        port.scan("SN-1", terminator=terminator)
        port.scan("SN-2", terminator=terminator)
        return [(await reader.scan()).text, (await reader.scan()).text]

    assert run(scenario) == ["SN-1", "SN-2"]


def test_a_terminator_split_across_reads_still_ends_one_scan(
    port: SimulatedSerialScanner,
) -> None:
    async def scenario() -> list[str]:
        reader = Reader(scanner_on(port, terminator="CRLF"))
        await reader.start()
        port.send(b"SN-1\r")
        await asyncio.sleep(0.01)
        port.send(b"\nSN-2\r\n")
        return [(await reader.scan()).text, (await reader.scan()).text]

    assert run(scenario) == ["SN-1", "SN-2"]


def test_the_aim_symbology_identifier_is_split_off(port: SimulatedSerialScanner) -> None:
    async def scenario() -> Scan:
        reader = Reader(scanner_on(port))
        await reader.start()
        port.scan("]C10109506000134352\x1d21SN-5")
        return await reader.scan()

    scan = run(scenario)
    assert (scan.symbology_id, scan.text) == ("]C1", "0109506000134352\x1d21SN-5")


def test_a_scanner_sending_crlf_to_a_port_set_for_cr_gets_a_clear_refusal(
    port: SimulatedSerialScanner,
) -> None:
    async def scenario() -> list[Scan]:
        reader = Reader(scanner_on(port, terminator="CR"))
        await reader.start()
        port.scan("SN-1", terminator="CRLF")
        port.scan("SN-2", terminator="CRLF")
        return [await reader.scan(), await reader.scan()]

    first, second = run(scenario)
    assert first.text == "SN-1"
    refused = parse(second.text, BarcodeOptions())
    assert isinstance(refused, Rejected) and refused.code == "control_character"
    assert "U+000A" in refused.message


def test_unplugging_mid_scan_is_reported_and_the_port_is_reopened_when_it_returns(
    port: SimulatedSerialScanner,
) -> None:
    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_on(port))
        await reader.start()
        port.scan("SN-1")
        events = [await reader.next()]
        port.send(b"SN-2")
        await asyncio.sleep(0.01)
        port.unplug()
        events.append(await reader.next())
        await asyncio.sleep(0.03)  # a few failed reopen attempts
        port.replug()
        events.append(await reader.next())
        port.scan("SN-3")
        events.append(await reader.next())
        await reader.close()
        return events

    first, gone, back, after = run(scenario)
    assert isinstance(first, Scan) and first.text == "SN-1"
    assert isinstance(gone, ScanProblem) and gone.reason_code is Reason.DISCONNECTED
    assert "'SN-2'" in gone.message and "reopened automatically" in gone.message
    assert isinstance(back, ScanProblem) and back.reason_code is Reason.RECONNECTED
    assert isinstance(after, Scan) and after.text == "SN-3"


def test_a_scanner_missing_at_start_is_reported_once_then_picked_up(
    port: SimulatedSerialScanner,
) -> None:
    port.unplug()

    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_on(port))
        events = [await reader.next()]
        await asyncio.sleep(0.05)
        port.replug()
        events.append(await reader.next())
        port.scan("SN-1")
        events.append(await reader.next())
        return events

    absent, back, scan = run(scenario)
    assert isinstance(absent, ScanProblem) and absent.reason_code is Reason.DISCONNECTED
    assert port.port in absent.message and "cannot be opened" in absent.message
    assert isinstance(back, ScanProblem) and back.reason_code is Reason.RECONNECTED
    assert isinstance(scan, Scan) and scan.text == "SN-1"


def test_bytes_outside_the_configured_encoding_are_refused_quoting_them(
    port: SimulatedSerialScanner,
) -> None:
    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_on(port))
        await reader.start()
        port.send(b"SN-\xff1\r")
        port.scan("SN-2")
        return [await reader.next(), await reader.next()]

    problem, scan = run(scenario)
    assert isinstance(problem, ScanProblem) and problem.reason_code is Reason.UNDECODABLE
    assert "b'SN-\\xff1'" in problem.message and "utf-8" in problem.message
    assert isinstance(scan, Scan) and scan.text == "SN-2"


def test_a_scanner_in_latin_1_is_read_in_latin_1(port: SimulatedSerialScanner) -> None:
    async def scenario() -> Scan:
        reader = Reader(scanner_on(port, encoding="latin-1"))
        await reader.start()
        port.send(b"SN-\xc41\r")
        return await reader.scan()

    assert run(scenario).text == "SN-Ä1"


def test_a_pause_mid_scan_on_the_injected_clock_discards_the_partial_scan(
    port: SimulatedSerialScanner,
) -> None:
    clock = ManualClock()
    port.clock = clock

    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_on(port, clock=clock, char_timeout_s=0.05))
        await reader.start()
        port.send(b"SN-1")
        await asyncio.sleep(0.01)
        port.pause(2.0)
        port.scan("SN-9")
        return [await reader.next(), await reader.next()]

    problem, scan = run(scenario)
    assert isinstance(problem, ScanProblem) and problem.reason_code is Reason.TIMEOUT_PARTIAL
    assert "'SN-1'" in problem.message
    assert isinstance(scan, Scan) and scan.text == "SN-9"
    assert scan.scanned_at_monotonic == clock.now


def test_a_scanner_set_to_send_no_terminator_ends_scans_by_the_pause(
    port: SimulatedSerialScanner,
) -> None:
    async def scenario() -> Scan:
        reader = Reader(scanner_on(port, on_timeout=OnTimeout.END, char_timeout_s=0.02))
        await reader.start()
        port.send(b"SN-7")
        return await reader.scan()

    assert run(scenario).text == "SN-7"


def test_baud_rate_and_framing_from_configuration_reach_the_port(
    port: SimulatedSerialScanner,
) -> None:
    opened: list[serial.Serial] = []

    def open_port(**settings: Any) -> serial.Serial:
        opened.append(serial.Serial(**settings))
        return opened[-1]

    async def scenario() -> Scan:
        scanner = scanner_on(
            port, baudrate=19200, bytesize=7, parity="E", stopbits=2, open_port=open_port
        )
        reader = Reader(scanner)
        await reader.start()
        port.scan("SN-1")
        return await reader.scan()

    assert run(scenario).text == "SN-1"
    settings = opened[0].get_settings()
    assert (settings["baudrate"], settings["bytesize"], settings["parity"]) == (19200, 7, "E")
    assert settings["stopbits"] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"baudrate": 9601}, "baudrate 9601"),
        ({"bytesize": 9}, "bytesize 9"),
        ({"parity": "X"}, "parity 'X'"),
        ({"stopbits": 3}, "stopbits 3"),
        ({"terminator": "NUL"}, "terminator 'NUL'"),
        ({"encoding": "klingon"}, "encoding 'klingon'"),
    ],
)
def test_bad_port_settings_are_refused_naming_the_value(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SerialScanner("/dev/serial/by-id/usb-Scanner-if00", **options)


def test_a_kernel_numbered_port_is_refused_in_favour_of_its_stable_name() -> None:
    with pytest.raises(ValueError, match=r"'/dev/ttyACM0'.*by-id"):
        SerialScanner("/dev/ttyACM0")


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=20), max_size=12),
    terminator=st.sampled_from(["CR", "LF", "CRLF"]),
)
def test_random_bytes_on_the_line_never_break_the_scanner(
    chunks: list[bytes], terminator: str
) -> None:
    scanner = SerialScanner("/dev/serial/by-id/fuzz", terminator=terminator)
    end = {"CR": "\r", "LF": "\n", "CRLF": "\r\n"}[terminator]
    for when, chunk in enumerate(chunks):
        for event in scanner.feed(chunk, now=float(when)):
            assert isinstance(event, Scan | ScanProblem)
            if isinstance(event, Scan):
                assert end not in event.text and event.text
