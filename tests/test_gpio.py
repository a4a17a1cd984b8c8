"""Lane light, buzzer, GPIO cash drawer and attendant button, watched on gpiozero's MockFactory."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import gpiozero
import pytest

from daemon.drivers.base import PinSetupError
from daemon.drivers.gpio import (
    DEFAULT_PATTERNS,
    AttendantButton,
    BeepPattern,
    Buzzer,
    CashDrawer,
    Colour,
    LaneLight,
)
from daemon.errors import DeviceError
from simulators.gpio import SimulatedGpio


@pytest.fixture
def sim() -> SimulatedGpio:
    return SimulatedGpio()


def lane_light(sim: SimulatedGpio) -> LaneLight:
    pins = sim.pins
    return LaneLight(green=pins.green, amber=pins.amber, red=pins.red, pin_factory=sim.factory)


@pytest.fixture
def light(sim: SimulatedGpio) -> Iterator[LaneLight]:
    light = lane_light(sim)
    yield light
    light.close()


@pytest.fixture
def buzzer(sim: SimulatedGpio) -> Iterator[Buzzer]:
    buzzer = Buzzer(sim.pins.buzzer, pin_factory=sim.factory)
    yield buzzer
    buzzer.close()


# ------------------------------------------------------------------------ light


def test_the_light_shows_one_colour_at_a_time(sim: SimulatedGpio, light: LaneLight) -> None:
    assert sim.light_colour() is None
    light.show(Colour.GREEN)
    assert sim.light_colour() == "green"
    light.show(Colour.RED)
    assert sim.light_colour() == "red"
    light.show(Colour.AMBER)
    assert sim.light_colour() == "amber"
    assert light.colour is Colour.AMBER


def test_the_light_goes_dark(sim: SimulatedGpio, light: LaneLight) -> None:
    light.show(Colour.RED)
    light.off()
    assert sim.light_colour() is None
    assert light.colour is None


def test_calling_an_attendant_blinks_the_light_until_the_lane_moves_on(
    sim: SimulatedGpio, light: LaneLight
) -> None:
    light.show(Colour.GREEN)
    light.blink(Colour.RED, on_s=0.01, off_s=0.01)
    assert sim.wait_for_flashes("red", 3)
    assert light.is_blinking
    assert sim.light_flashes("green") == 1  # green went dark when the blinking began

    light.show(Colour.GREEN)
    flashes = sim.light_flashes("red")
    assert sim.light_colour() == "green"
    assert not light.is_blinking
    assert sim.light_flashes("red") == flashes


# ----------------------------------------------------------------------- buzzer


def test_an_accepted_scan_gives_one_short_beep(sim: SimulatedGpio, buzzer: Buzzer) -> None:
    buzzer.accept()
    beeps = sim.wait_for_beeps(1)
    assert len(beeps) == 1
    assert beeps[0] >= DEFAULT_PATTERNS["accept"].on_s
    assert not sim.buzzer_is_on()


def test_a_rejected_scan_gives_one_long_beep(sim: SimulatedGpio, buzzer: Buzzer) -> None:
    buzzer.reject()
    beeps = sim.wait_for_beeps(1)
    assert len(beeps) == 1
    assert beeps[0] >= DEFAULT_PATTERNS["reject"].on_s


def test_the_attendant_pattern_repeats_until_stopped(sim: SimulatedGpio) -> None:
    patterns = {**DEFAULT_PATTERNS, "attendant": BeepPattern(0.01, 0.01, count=None)}
    buzzer = Buzzer(sim.pins.buzzer, pin_factory=sim.factory, patterns=patterns)
    buzzer.attendant()
    assert len(sim.wait_for_beeps(3)) >= 3
    buzzer.stop()
    after_stop = len(sim.buzzer_history())
    assert not sim.buzzer_is_on()
    assert len(sim.wait_for_beeps(after_stop + 1, timeout=0.1)) == after_stop
    buzzer.close()


def test_buzzer_patterns_must_cover_every_verdict(sim: SimulatedGpio) -> None:
    with pytest.raises(ValueError, match="attendant"):
        Buzzer(sim.pins.buzzer, pin_factory=sim.factory, patterns={"accept": BeepPattern(0.1)})


# ------------------------------------------------------------------- cash drawer


def test_the_drawer_gets_one_pulse_of_the_set_width_per_kick(sim: SimulatedGpio) -> None:
    drawer = CashDrawer(sim.pins.drawer, pin_factory=sim.factory, pulse_s=0.05)
    drawer.open("sale-1")
    drawer.open("sale-1")  # a retried request
    pulses = sim.wait_for_drawer_pulses(1)
    assert len(pulses) == 1
    assert pulses[0] >= 0.05
    drawer.open("sale-2")
    assert len(sim.wait_for_drawer_pulses(2)) == 2
    drawer.close()


def test_a_pulse_that_could_burn_the_solenoid_is_refused(sim: SimulatedGpio) -> None:
    with pytest.raises(ValueError, match=r"5 s is outside"):
        CashDrawer(sim.pins.drawer, pin_factory=sim.factory, pulse_s=5)


# -------------------------------------------------------------- attendant button


def test_pressing_the_attendant_button_calls_back_once_per_press(sim: SimulatedGpio) -> None:
    presses: list[str] = []
    button = AttendantButton(
        sim.pins.button, pin_factory=sim.factory, on_press=lambda: presses.append("press")
    )
    sim.hold_attendant_button()
    assert button.is_pressed
    sim.release_attendant_button()
    assert presses == ["press"]
    sim.press_attendant_button()
    assert presses == ["press", "press"]
    button.close()


def test_with_a_loop_the_press_is_handled_on_the_event_loop_thread(sim: SimulatedGpio) -> None:
    async def scenario() -> int | None:
        handled = asyncio.Event()
        thread_ids: list[int] = []

        def on_press() -> None:
            thread_ids.append(threading.get_ident())
            handled.set()

        button = AttendantButton(
            sim.pins.button,
            pin_factory=sim.factory,
            on_press=on_press,
            loop=asyncio.get_running_loop(),
        )
        await asyncio.to_thread(sim.press_attendant_button)
        await asyncio.wait_for(handled.wait(), 2)
        button.close()
        return thread_ids[0]

    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    assert asyncio.run(scenario()) == loop_thread


# ----------------------------------------------------------------------- wiring


def test_an_invalid_pin_is_reported_with_its_number(sim: SimulatedGpio) -> None:
    with pytest.raises(PinSetupError, match="red lamp on pin 99") as caught:
        LaneLight(green=5, amber=6, red=99, pin_factory=sim.factory)
    assert isinstance(caught.value, DeviceError)
    LaneLight(green=5, amber=6, red=13, pin_factory=sim.factory).close()  # all released


def test_two_parts_on_one_pin_are_refused(sim: SimulatedGpio, light: LaneLight) -> None:
    with pytest.raises(PinSetupError, match=f"buzzer on pin {sim.pins.green}"):
        Buzzer(sim.pins.green, pin_factory=sim.factory)


def test_no_part_touches_gpiozeros_global_pin_factory(sim: SimulatedGpio) -> None:
    parts: list[LaneLight | Buzzer | CashDrawer | AttendantButton] = [
        lane_light(sim),
        Buzzer(sim.pins.buzzer, pin_factory=sim.factory),
        CashDrawer(sim.pins.drawer, pin_factory=sim.factory),
        AttendantButton(sim.pins.button, pin_factory=sim.factory, on_press=lambda: None),
    ]
    assert gpiozero.Device.pin_factory is None
    for part in parts:
        part.close()
