"""The customer pole display: what reaches the glass, and how few bytes it takes."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.drivers.base import DeviceTimeout, DeviceWorker, DisplayMissing, open_serial
from daemon.drivers.display import CD5220, EPSON, CustomerDisplay, DisplayStatus, fit_line
from daemon.errors import DeviceError
from simulators.display import DisplayDecoder, SimulatedDisplay

BLANK = " " * 20


def pad(text: str) -> str:
    return text.ljust(20)


class Recorder(io.BytesIO):
    """A transport that keeps each write separately, so a test sees what one update sent."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes, /) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)


# ------------------------------------------------------------------ golden bytes


def test_first_update_on_an_epson_display_resets_it_and_paints_both_lines() -> None:
    port = Recorder()
    CustomerDisplay(port, EPSON).show("SN-12345 OK", "TOTAL 1299.00")
    assert port.writes == [
        b"\x1b@\x1f\x01\x1fC\x00"  # ESC @, US MD1 overwrite, US C 0 cursor off
        b"\x1bt\x00"  # ESC t 0: code page 437
        b"\x0c"  # CLR
        b"\x0bSN-12345 OK"  # HOM, upper line
        b"\n\rTOTAL 1299.00"  # LF CR, lower line
    ]


def test_first_update_on_a_cd5220_display_uses_its_own_commands() -> None:
    port = Recorder()
    CustomerDisplay(port, "cd5220").show("SN-12345 OK", "TOTAL 1299.00")
    assert port.writes == [
        b"\x1b@\x1b\x11\x1b_\x00"  # ESC @, ESC DC1 overwrite, ESC _ 0 cursor off
        b"\x0c"
        b"\x0bSN-12345 OK"
        b"\n\rTOTAL 1299.00"
    ]


@pytest.mark.parametrize(
    ("model", "jump"),
    [(EPSON, b"\x1f$\x08\x01"), (CD5220, b"\x1bl\x08\x01")],  # column 8, row 1
)
def test_a_one_character_change_sends_one_cursor_jump_and_that_character(
    model: object, jump: bytes
) -> None:
    port = Recorder()
    display = CustomerDisplay(port, model)  # type: ignore[arg-type]
    display.show("SN-12345 OK", "TOTAL 1299.00")
    display.show("SN-12346 OK", "TOTAL 1299.00")
    assert port.writes[-1] == jump + b"6"


def test_changes_on_both_lines_step_down_instead_of_jumping() -> None:
    port = Recorder()
    display = CustomerDisplay(port, EPSON)
    display.show("SN-12345 OK", "TOTAL 1299.00")
    display.show("SN-40917 OK", "TOTAL 2428.50")
    # jump to column 4, write "40917", LF to the lower line, two BS back to column 7
    assert port.writes[-1] == b"\x1f$\x04\x0140917" + b"\n\x08\x08" + b"2428.5"


def test_a_small_unchanged_gap_is_rewritten_rather_than_jumped_over() -> None:
    port = Recorder()
    display = CustomerDisplay(port, EPSON)
    display.show("SN-1 A 9", "")
    display.show("SN-2 A 8", "")
    # three unchanged cells cost three bytes; a second jump would cost four
    assert port.writes[-1] == b"\x1f$\x04\x012 A 8"


def test_showing_the_same_text_again_sends_nothing() -> None:
    port = Recorder()
    display = CustomerDisplay(port, EPSON)
    display.show("SN-12345 OK", "TOTAL 1299.00")
    cost = display.show("SN-12345 OK", "TOTAL 1299.00")
    assert len(port.writes) == 1
    assert cost.byte_count == 0


def test_a_complete_change_clears_the_glass_when_that_is_cheaper() -> None:
    port = Recorder()
    display = CustomerDisplay(port, EPSON)
    display.show("ABCDEFGHIJKLMNOPQRST", "ABCDEFGHIJKLMNOPQRST")
    display.show("X", "")
    assert port.writes[-1] == b"\x0c\x0bX"


def test_the_cost_report_counts_the_bytes_and_their_line_time() -> None:
    display = CustomerDisplay(Recorder(), EPSON)
    display.show("SN-12345 OK", "TOTAL 1299.00")
    display.show("SN-12346 OK", "TOTAL 1299.00")
    assert display.last_update_cost().byte_count == 5
    assert display.last_update_cost(9600).line_time_ms == pytest.approx(5 * 10 / 9.6)
    assert display.last_update_cost(19200).line_time_ms == pytest.approx(5 * 10 / 19.2)


# ---------------------------------------------------------------- text handling


def test_accented_letters_stay_where_the_code_page_has_them() -> None:
    assert fit_line("Café", "cp437") == b"Caf\x82" + b" " * 16
    assert fit_line("Café", "ascii") == b"Cafe" + b" " * 16


def test_characters_no_code_page_has_get_a_readable_spelling() -> None:
    assert fit_line("\u20ac5 \u2014 Stra\u00dfe", "cp437").rstrip() == b"EUR5 - Stra\xe1e"
    assert fit_line("\u20ac5 \u2014 Stra\u00dfe", "ascii").rstrip() == b"EUR5 - Strasse"


def test_the_euro_sign_is_kept_on_code_page_858() -> None:
    assert fit_line("\u20ac5", "cp858").rstrip() == b"\xd55"


def test_control_characters_never_reach_the_display_as_commands() -> None:
    assert fit_line("SN\x1b@1\x0c", "cp437").rstrip() == b"SN?@1?"


def test_lines_are_padded_and_cut_to_twenty_columns() -> None:
    assert fit_line("short", "ascii") == b"short" + b" " * 15
    assert fit_line("x" * 30, "ascii") == b"x" * 20


def test_an_unknown_model_name_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'vfd9000'.*cd5220.*epson"):
        CustomerDisplay(Recorder(), "vfd9000")


def test_a_code_table_the_model_lacks_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"'cp858'.*cd5220"):
        CustomerDisplay(Recorder(), CD5220, code_table="cp858")


# ------------------------------------------------- decoded by the simulated glass

screens = st.tuples(
    st.text(alphabet="AB 1.-\u00e9", max_size=22),
    st.text(alphabet="AB 1.-\u00e9", max_size=22),
)


@pytest.mark.parametrize("model", ["epson", "cd5220"])
@settings(max_examples=60, deadline=None)
@given(sequence=st.lists(screens, min_size=1, max_size=6))
def test_every_sequence_of_updates_ends_with_the_right_text_on_the_glass(
    model: str, sequence: list[tuple[str, str]]
) -> None:
    port = Recorder()
    display = CustomerDisplay(port, model)
    glass = DisplayDecoder(model, lines=("POWER ON", "GARBAGE"))
    # CLR, HOM, upper line, a 4-byte jump to the lower line (both sets), lower line.
    repaint = 1 + 1 + 20 + 4 + 20
    for step, (line1, line2) in enumerate(sequence):
        display.show(line1, line2)
        glass.feed(b"".join(port.writes))
        port.writes.clear()
        codec = display.code_table
        assert glass.lines == (
            fit_line(line1, codec).decode(codec),
            fit_line(line2, codec).decode(codec),
        )
        if step > 0:
            assert display.last_update_cost().byte_count <= repaint
    assert glass.unknown_commands == []


# ------------------------------------------------------ over a real pty


@pytest.fixture(params=["epson", "cd5220"])
def pole(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    with SimulatedDisplay(request.param, link=tmp_path / "pole") as sim:
        yield sim


def show_and_wait(display: CustomerDisplay, sim: SimulatedDisplay, *lines: str) -> None:
    before = sim.bytes_received
    cost = display.show(*lines)
    assert sim.wait_for_bytes(before + cost.byte_count)


def test_a_verdict_reaches_the_simulated_glass_over_a_pty(pole: SimulatedDisplay) -> None:
    display = CustomerDisplay(open_serial(pole.path), pole.model)
    show_and_wait(display, pole, "SN-12345 OK", "TOTAL 1299.00")
    show_and_wait(display, pole, "SN-40917 REJECTED", "ALREADY SOLD")
    assert pole.lines == (pad("SN-40917 REJECTED"), pad("ALREADY SOLD"))
    assert pole.unknown_commands == []


def test_only_the_changed_cells_cross_the_wire(pole: SimulatedDisplay) -> None:
    display = CustomerDisplay(open_serial(pole.path), pole.model)
    show_and_wait(display, pole, "SN-12345 OK", "TOTAL 1299.00")
    before = pole.bytes_received
    show_and_wait(display, pole, "SN-12346 OK", "TOTAL 1299.00")
    assert pole.bytes_received - before == 5
    assert pole.lines == (pad("SN-12346 OK"), pad("TOTAL 1299.00"))


def test_an_unplugged_display_is_reported_missing_and_repainted_fully_when_back(
    pole: SimulatedDisplay,
) -> None:
    display = CustomerDisplay(open_serial(pole.path), pole.model)
    show_and_wait(display, pole, "SN-12345 OK", "TOTAL 1299.00")

    pole.unplug()
    with pytest.raises(DisplayMissing):
        display.show("SN-12346 OK", "TOTAL 2598.00")
    assert display.status is DisplayStatus.MISSING
    with pytest.raises(DeviceError, match="reconnect"):
        display.show("SN-12346 OK", "TOTAL 2598.00")

    pole.replug()
    assert pole.lines[0].startswith("CUSTOMER DISPLAY")  # its power-on text
    display.reconnect(open_serial(pole.path))
    show_and_wait(display, pole, "SN-12346 OK", "TOTAL 2598.00")
    assert display.status.value == "ready"
    assert pole.lines == (pad("SN-12346 OK"), pad("TOTAL 2598.00"))


def test_accents_survive_on_epson_and_fall_back_on_cd5220(pole: SimulatedDisplay) -> None:
    display = CustomerDisplay(open_serial(pole.path), pole.model)
    show_and_wait(display, pole, "Caf\u00e9 cr\u00e8me", "")
    expected = "Caf\u00e9 cr\u00e8me" if pole.model == "epson" else "Cafe creme"
    assert pole.lines[0] == pad(expected)


# ------------------------------------------------------------ hangs and the loop


class StuckPort:
    """A transport whose write never returns until released, like a wedged USB adapter."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def write(self, data: bytes, /) -> int:
        self.release.wait()
        return len(data)


def test_a_write_that_hangs_marks_the_display_missing_instead_of_blocking() -> None:
    port = StuckPort()
    display = CustomerDisplay(port, EPSON, write_timeout_s=0.05)
    try:
        with pytest.raises(DisplayMissing):
            display.show("SN-1 OK", "")
        assert display.status is DisplayStatus.MISSING
    finally:
        port.release.set()


def test_the_async_show_lets_the_event_loop_carry_on_and_reports_a_hang() -> None:
    port = StuckPort()
    display = CustomerDisplay(port, EPSON, write_timeout_s=0.05)
    ticks: list[int] = []

    async def ticker() -> None:
        for i in range(3):
            ticks.append(i)
            await asyncio.sleep(0)

    async def scenario() -> None:
        with pytest.raises(DisplayMissing):
            await asyncio.gather(display.show_async("SN-1 OK", ""), ticker())

    try:
        asyncio.run(scenario())
    finally:
        port.release.set()
    assert ticks == [0, 1, 2]


def test_the_async_show_paints_the_glass() -> None:
    port = Recorder()
    display = CustomerDisplay(port, CD5220)
    asyncio.run(display.show_async("SN-1 OK", "TOTAL 5.00"))
    glass = DisplayDecoder("cd5220")
    glass.feed(b"".join(port.writes))
    assert glass.lines == (pad("SN-1 OK"), pad("TOTAL 5.00"))


# ------------------------------------------------------------- the device thread


def test_after_a_hang_the_next_call_runs_on_a_fresh_thread() -> None:
    worker = DeviceWorker("pole")
    release = threading.Event()
    try:
        with pytest.raises(DeviceTimeout, match=r"pole: no answer within 0\.05 s"):
            worker.call(0.05, release.wait)
        assert worker.call(2.0, lambda: "answered") == "answered"
    finally:
        release.set()


def test_a_call_that_timed_out_in_the_queue_never_runs_late() -> None:
    worker = DeviceWorker("queued-worker")
    release = threading.Event()
    ran: list[str] = []

    async def both() -> tuple[object, ...]:
        return await asyncio.gather(
            worker.call_async(0.05, release.wait),
            worker.call_async(0.05, ran.append, "late write"),
            return_exceptions=True,
        )

    outcomes = asyncio.run(both())
    assert all(isinstance(outcome, DeviceTimeout) for outcome in outcomes)
    release.set()
    stuck = [t for t in threading.enumerate() if t.name == "queued-worker"]
    for thread in stuck:
        thread.join(2.0)
    assert ran == []
