"""Keyboard-wedge scanners: kernel key events through the same path a real device takes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import evdev
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.drivers.base import ScannerNotFound
from daemon.drivers.keymap import KeyboardLayout
from daemon.drivers.scanner import OnTimeout, Reason, Scan, ScanEvent, ScanProblem
from daemon.drivers.scanner_evdev import (
    INPUT_EVENT,
    EvdevScanner,
    InputDeviceInfo,
    UnstableDeviceName,
    resolve_input_device,
)
from daemon.rules.barcode import BarcodeOptions, UnitCode, parse
from simulators.scanner import ManualClock, SimulatedWedgeScanner
from tests.test_scanner_helpers import Reader, run

LAYOUTS = {name: KeyboardLayout(name) for name in ("us", "gb", "de", "fr")}


@pytest.fixture
def wedge() -> Iterator[SimulatedWedgeScanner]:
    simulator = SimulatedWedgeScanner(LAYOUTS["us"])
    yield simulator
    simulator.close()


def scanner_for(sim: SimulatedWedgeScanner, layout: str = "us", **options: Any) -> EvdevScanner:
    options.setdefault("reconnect_interval_s", 0.01)
    return EvdevScanner(sim.open, LAYOUTS[layout], source="wedge", **options)


@pytest.mark.parametrize("layout", ["us", "gb", "de", "fr"])
def test_a_serial_typed_on_each_layout_arrives_as_the_same_scan(
    wedge: SimulatedWedgeScanner, layout: str
) -> None:
    serial = "SN-Zy/Aq.19@x"
    wedge.scan(serial, layout=layout)

    async def scenario() -> Scan:
        return await Reader(scanner_for(wedge, layout)).scan()

    scan = run(scenario)
    assert (scan.text, scan.symbology_id, scan.source) == (serial, None, "wedge")


def test_a_gs1_datamatrix_typed_on_a_german_wedge_parses_to_the_unit(
    wedge: SimulatedWedgeScanner,
) -> None:
    # The scanner sends the AIM identifier and types GS as Ctrl+] (AltGr+9 on de).
    wedge.scan("]d20109506000134352172012001010ABC\x1d21SN-77", layout="de")

    async def scenario() -> Scan:
        return await Reader(scanner_for(wedge, "de")).scan()

    scan = run(scenario)
    assert scan.symbology_id == "]d2"
    result = parse(scan.text, BarcodeOptions(), scan.symbology_id)
    assert isinstance(result, UnitCode)
    assert (result.gtin, result.serial, result.lot) == ("09506000134352", "SN-77", "10ABC")


def test_caps_lock_on_the_scanner_does_not_change_what_arrives(
    wedge: SimulatedWedgeScanner,
) -> None:
    wedge.toggle_caps_lock()
    wedge.scan("SN-ab12", layout="fr")

    async def scenario() -> Scan:
        return await Reader(scanner_for(wedge, "fr")).scan()

    assert run(scenario).text == "SN-ab12"


@pytest.mark.parametrize("end_key", ["enter", "keypad_enter", "tab"])
def test_each_end_of_scan_key_ends_a_scan_when_configured(
    wedge: SimulatedWedgeScanner, end_key: str
) -> None:
    wedge.scan("SN-1", end_key=end_key)
    wedge.scan("SN-2", end_key=end_key)

    async def scenario() -> list[str]:
        reader = Reader(scanner_for(wedge, end_keys=[end_key]))
        return [(await reader.scan()).text, (await reader.scan()).text]

    assert run(scenario) == ["SN-1", "SN-2"]


def test_a_scan_ended_by_a_key_that_is_not_configured_is_not_passed_on_as_whole(
    wedge: SimulatedWedgeScanner,
) -> None:
    wedge.scan("SN-1", end_key="enter")

    async def scenario() -> ScanEvent:
        return await Reader(scanner_for(wedge, end_keys=["tab"], char_timeout_s=0.02)).next()

    problem = run(scenario)
    assert isinstance(problem, ScanProblem)
    assert problem.reason_code is Reason.TIMEOUT_PARTIAL


def test_an_unknown_end_key_is_refused_naming_the_choices(wedge: SimulatedWedgeScanner) -> None:
    with pytest.raises(ValueError, match=r"'return'.*enter, keypad_enter, tab"):
        scanner_for(wedge, end_keys=["return"])


def test_syn_dropped_mid_scan_discards_the_scan_and_its_tail_and_says_so(
    wedge: SimulatedWedgeScanner,
) -> None:
    wedge.type("SN-12")
    wedge.send_syn_dropped()
    wedge.type("345")
    wedge.press_end()
    wedge.scan("SN-99")

    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_for(wedge))
        return [await reader.next(), await reader.next()]

    problem, scan = run(scenario)
    assert isinstance(problem, ScanProblem)
    assert problem.reason_code is Reason.SYN_DROPPED
    assert "'SN-12'" in problem.message and "scan the item again" in problem.message
    assert isinstance(scan, Scan) and scan.text == "SN-99"


def test_events_lost_by_the_kernel_never_give_a_half_read_serial(
    wedge: SimulatedWedgeScanner,
) -> None:
    wedge.type("SN-1")
    wedge.drop_events(4)  # the kernel buffer overflows mid-scan and says SYN_DROPPED
    wedge.type("23456")
    wedge.press_end()
    wedge.scan("SN-8")

    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_for(wedge))
        return [await reader.next(), await reader.next()]

    problem, scan = run(scenario)
    assert wedge.dropped == 4
    assert isinstance(problem, ScanProblem) and problem.reason_code is Reason.SYN_DROPPED
    assert isinstance(scan, Scan) and scan.text == "SN-8"


def test_a_scanner_that_pauses_mid_scan_has_the_partial_scan_discarded(
    wedge: SimulatedWedgeScanner,
) -> None:
    wedge.type("SN-1")
    wedge.pause(0.5)  # event timestamps move on; the test does not wait
    wedge.scan("SN-123")

    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_for(wedge, char_timeout_s=0.1))
        return [await reader.next(), await reader.next()]

    problem, scan = run(scenario)
    assert isinstance(problem, ScanProblem) and problem.reason_code is Reason.TIMEOUT_PARTIAL
    assert "'SN-1'" in problem.message and "0.1 s" in problem.message
    assert isinstance(scan, Scan) and scan.text == "SN-123"


def test_a_scanner_that_goes_quiet_mid_scan_is_noticed_on_the_injected_clock() -> None:
    clock = ManualClock()
    sim = SimulatedWedgeScanner(LAYOUTS["us"], clock=clock)
    sim.type("SN-4")

    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_for(sim, clock=clock, char_timeout_s=0.02))
        waiting = asyncio.ensure_future(reader.next())
        await asyncio.sleep(0.01)  # the scanner has read "SN-4" and waits for more
        assert not waiting.done()
        sim.pause(5.0)
        first = await waiting
        sim.scan("SN-5")
        return [first, await reader.next()]

    problem, scan = run(scenario)
    sim.close()
    assert isinstance(problem, ScanProblem) and problem.reason_code is Reason.TIMEOUT_PARTIAL
    assert isinstance(scan, Scan) and scan.text == "SN-5"
    assert scan.scanned_at_monotonic == clock.now


def test_a_scanner_set_to_send_no_end_key_ends_scans_by_the_pause(
    wedge: SimulatedWedgeScanner,
) -> None:
    wedge.type("SN-6")

    async def scenario() -> Scan:
        return await Reader(
            scanner_for(wedge, on_timeout=OnTimeout.END, char_timeout_s=0.02)
        ).scan()

    assert run(scenario).text == "SN-6"


def test_a_scan_with_no_end_within_the_longest_allowed_is_refused(
    wedge: SimulatedWedgeScanner,
) -> None:
    wedge.scan("X" * 30)
    wedge.scan("OK-1")

    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_for(wedge, max_length=20))
        return [await reader.next(), await reader.next()]

    problem, scan = run(scenario)
    assert isinstance(problem, ScanProblem) and problem.reason_code is Reason.TOO_LONG
    assert isinstance(scan, Scan) and scan.text == "OK-1"


def test_unplugging_mid_scan_reports_it_and_replugging_resumes(
    wedge: SimulatedWedgeScanner,
) -> None:
    async def scenario() -> list[ScanEvent]:
        reader = Reader(scanner_for(wedge))
        wedge.scan("SN-1")
        events = [await reader.next()]
        wedge.type("SN-2")
        wedge.unplug()
        events.append(await reader.next())
        wedge.replug()
        events.append(await reader.next())
        wedge.scan("SN-3")
        events.append(await reader.next())
        await reader.close()
        return events

    first, gone, back, after = run(scenario)
    assert isinstance(first, Scan) and first.text == "SN-1"
    assert isinstance(gone, ScanProblem) and gone.reason_code is Reason.DISCONNECTED
    assert "'SN-2'" in gone.message
    assert isinstance(back, ScanProblem) and back.reason_code is Reason.RECONNECTED
    assert isinstance(after, Scan) and after.text == "SN-3"


def test_waiting_for_a_scan_leaves_the_event_loop_free(wedge: SimulatedWedgeScanner) -> None:
    async def scenario() -> int:
        reader = Reader(scanner_for(wedge))
        waiting = asyncio.ensure_future(reader.next())
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.001)
            ticks += 1
        wedge.scan("SN-1")
        assert isinstance(await waiting, Scan)
        return ticks

    assert run(scenario) == 5


def test_a_real_input_device_is_grabbed_so_scans_reach_only_posd(mocker: Any) -> None:
    read_end, write_end = os.pipe()
    device = mocker.MagicMock(spec=evdev.InputDevice)
    device.fileno.return_value = read_end
    os.write(write_end, _records(LAYOUTS["us"], "SN-1\r"))
    os.close(write_end)

    async def scenario() -> list[ScanEvent]:
        reader = Reader(EvdevScanner(lambda: device, LAYOUTS["us"], source="real"))
        return [await reader.next(), await reader.next()]

    scan, gone = run(scenario)
    assert isinstance(scan, Scan) and scan.text == "SN-1"
    assert isinstance(gone, ScanProblem) and gone.reason_code is Reason.DISCONNECTED
    device.grab.assert_called_once_with()
    device.ungrab.assert_called_once_with()
    os.close(read_end)


def test_a_device_held_by_another_program_is_reported_not_read(mocker: Any) -> None:
    device = mocker.MagicMock(spec=evdev.InputDevice)
    device.path = "/dev/input/event7"
    device.fileno.return_value = 99
    device.grab.side_effect = OSError(16, "Device or resource busy")

    async def scenario() -> ScanProblem:
        return await Reader(EvdevScanner(lambda: device, LAYOUTS["us"], source="real")).problem()

    problem = run(scenario)
    assert problem.reason_code is Reason.DISCONNECTED
    assert "held by another program" in problem.message


def _records(layout: KeyboardLayout, text: str, time: float = 100.0) -> bytes:
    events = []
    for code, value in layout.key_events_for(text.replace("\r", "")):
        events.append((code, value))
    if text.endswith("\r"):
        events += [(28, 1), (28, 0)]
    out = b""
    for index, (code, value) in enumerate(events):
        stamp = time + index * 0.001
        out += INPUT_EVENT.pack(int(stamp), int((stamp % 1) * 1e6), 1, code, value)
        out += INPUT_EVENT.pack(int(stamp), int((stamp % 1) * 1e6), 0, 0, 0)
    return out


# Finding the device by a stable name


def test_a_kernel_event_number_is_refused_as_a_device_name() -> None:
    with pytest.raises(UnstableDeviceName, match=r"event3.*by-id"):
        resolve_input_device("/dev/input/event3")


def test_a_by_id_link_resolves_to_the_node_it_points_at(tmp_path: Path) -> None:
    node = tmp_path / "event5"
    node.touch()
    link = tmp_path / "usb-Scanner_Co_Model_9-event-kbd"
    link.symlink_to(node)
    assert resolve_input_device(str(link)) == str(node)


def test_a_missing_device_is_reported_with_where_to_look(tmp_path: Path) -> None:
    with pytest.raises(ScannerNotFound, match=r"does not exist.*by-id"):
        resolve_input_device(str(tmp_path / "usb-gone-event-kbd"))


def test_vendor_and_product_pick_the_keyboard_interface_of_the_scanner() -> None:
    attached = [
        InputDeviceInfo("/dev/input/event9", 0x05E0, 0x1200, "Scanner consumer keys", False),
        InputDeviceInfo("/dev/input/event4", 0x05E0, 0x1200, "Scanner keyboard", True),
        InputDeviceInfo("/dev/input/event2", 0x046D, 0xC31C, "USB keyboard", True),
    ]
    assert resolve_input_device("05e0:1200", devices=lambda: attached) == "/dev/input/event4"
    with pytest.raises(ScannerNotFound, match=r"0c2e:0b61.*046d:c31c 'USB keyboard'"):
        resolve_input_device("usb:0c2e:0b61", devices=lambda: attached)


# Fuzzing: random key event streams never break the scanner, never give half a scan.

ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("type"), st.text(st.sampled_from("AZaz09-/.@"), min_size=1, max_size=6)),
        st.tuples(st.just("end"), st.just("")),
        st.tuples(st.just("drop"), st.just("")),
        st.tuples(st.just("pause"), st.just("")),
    ),
    max_size=14,
)


def _clean_segments(actions: list[tuple[str, str]]) -> list[str]:
    """Texts typed whole: begun after an end or a pause, no lost events, then ended."""
    segments, text, clean = [], "", True
    for action, value in actions:
        if action == "type":
            text += value
        elif action == "end":
            if clean and text:
                segments.append(text)
            text, clean = "", True
        elif action == "drop":
            text, clean = "", False
        elif action == "pause":
            text, clean = "", True
    return segments


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS, layout=st.sampled_from(sorted(LAYOUTS)))
def test_random_scanning_never_passes_on_part_of_a_scan(
    actions: list[tuple[str, str]], layout: str
) -> None:
    sim = SimulatedWedgeScanner(LAYOUTS[layout])
    scanner = scanner_for(sim, layout, char_timeout_s=0.1)
    for action, value in actions:
        if action == "type":
            sim.type(value)
        elif action == "end":
            sim.press_end()
        elif action == "drop":
            sim.send_syn_dropped()
        else:
            sim.pause(1.0)
    sim.press_end()
    stream = os.read(sim.open(), 1 << 20)
    sim.close()
    events = scanner.feed(stream, now=0.0)
    scans = [event.text for event in events if isinstance(event, Scan)]
    expected = _clean_segments([*actions, ("end", "")])
    assert all(isinstance(event, Scan | ScanProblem) for event in events)
    assert _is_subsequence(scans, expected)
    if not any(action == "drop" for action, _ in actions):
        assert scans == expected


def _is_subsequence(found: list[str], expected: list[str]) -> bool:
    remaining = iter(expected)
    return all(any(text == candidate for candidate in remaining) for text in found)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=24 * 40), st.sampled_from(sorted(LAYOUTS)))
def test_random_bytes_from_the_device_never_break_the_scanner(data: bytes, layout: str) -> None:
    scanner = EvdevScanner(lambda: 0, LAYOUTS[layout], source="fuzz")
    for start in range(0, len(data), 17):  # arbitrary chunking, as reads may split
        for event in scanner.feed(data[start : start + 17], now=float(start)):
            assert isinstance(event, Scan | ScanProblem)
            assert event.source == "fuzz"


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0, 1, 4, 17]), st.integers(0, 0x2FF), st.integers(-1, 2)),
        max_size=80,
    )
)
def test_random_input_events_never_break_the_scanner(events: list[tuple[int, int, int]]) -> None:
    scanner = EvdevScanner(lambda: 0, LAYOUTS["de"], source="fuzz")
    data = b"".join(
        INPUT_EVENT.pack(100 + i // 10, (i % 10) * 1000, kind, code, value)
        for i, (kind, code, value) in enumerate(events)
    )
    for event in scanner.feed(data, now=0.0):
        assert isinstance(event, Scan | ScanProblem)
