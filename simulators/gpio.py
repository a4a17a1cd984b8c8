"""Simulated lane pins on gpiozero's ``MockFactory``, read the way a person watches a lane.

    sim = SimulatedGpio()
    light = LaneLight(green=17, amber=27, red=22, pin_factory=sim.factory)
    light.show(Colour.RED)
    assert sim.light_colour() == "red"
    sim.press_attendant_button()

Outputs are assumed active-high, as the drivers default to.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero.pins.mock import MockFactory, MockPin


@dataclass(frozen=True)
class LanePins:
    """BCM pin numbers of one lane's parts (what the config layer would supply)."""

    green: int = 17
    amber: int = 27
    red: int = 22
    buzzer: int = 18
    drawer: int = 23
    button: int = 24

    @property
    def light(self) -> dict[str, int]:
        return {"green": self.green, "amber": self.amber, "red": self.red}


def _on_periods(pin: MockPin) -> list[float]:
    """How long the pin stayed high each time it went high and came back down."""
    states = list(pin.states)
    return [
        later.timestamp
        for earlier, later in itertools.pairwise(states)
        if earlier.state and not later.state
    ]


class SimulatedGpio:
    """A pin factory for the drivers plus what a person at the lane would see and do."""

    def __init__(self, pins: LanePins | None = None) -> None:
        self.pins = pins or LanePins()
        self.factory = MockFactory()

    def _pin(self, number: int) -> MockPin:
        pin: MockPin = self.factory.pin(number)
        return pin

    # the light

    def light_colour(self) -> str | None:
        """The lit colour ("green", "amber", "red"), None when dark; two lit reads "amber+red"."""
        lit = [name for name, number in self.pins.light.items() if self._pin(number).state]
        return "+".join(lit) if lit else None

    def light_flashes(self, colour: str) -> int:
        """How many times that lamp has come on since the start."""
        pin = self._pin(self.pins.light[colour])
        return sum(1 for state in pin.states[1:] if state.state)

    def wait_for_flashes(self, colour: str, count: int, timeout: float = 2.0) -> bool:
        return _wait(lambda: self.light_flashes(colour) >= count, timeout)

    # the buzzer

    def buzzer_is_on(self) -> bool:
        return bool(self._pin(self.pins.buzzer).state)

    def buzzer_history(self) -> list[float]:
        """Length in seconds of every finished beep, oldest first."""
        return _on_periods(self._pin(self.pins.buzzer))

    def wait_for_beeps(self, count: int, timeout: float = 3.0) -> list[float]:
        _wait(lambda: len(self.buzzer_history()) >= count, timeout)
        return self.buzzer_history()

    # the cash drawer

    def drawer_pulses(self) -> list[float]:
        """Length in seconds of every finished pulse to the drawer solenoid."""
        return _on_periods(self._pin(self.pins.drawer))

    def wait_for_drawer_pulses(self, count: int, timeout: float = 2.0) -> list[float]:
        _wait(lambda: len(self.drawer_pulses()) >= count, timeout)
        return self.drawer_pulses()

    # the attendant button (wired to ground, pulled up: pressed reads low)

    def press_attendant_button(self) -> None:
        """Press and let go."""
        self.hold_attendant_button()
        self.release_attendant_button()

    def hold_attendant_button(self) -> None:
        self._pin(self.pins.button).drive_low()

    def release_attendant_button(self) -> None:
        self._pin(self.pins.button).drive_high()


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()
