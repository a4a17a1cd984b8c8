"""The lane's lights, buzzer, GPIO cash drawer and attendant button, through gpiozero.

Each part takes its pin numbers (BCM) and a ``pin_factory``: the real one on the
terminal, gpiozero's ``MockFactory`` in tests. The global default factory is never used.

    light = LaneLight(green=17, amber=27, red=22, pin_factory=factory)
    light.show(Colour.GREEN)
    buzzer = Buzzer(18, pin_factory=factory)
    buzzer.accept()
"""

from __future__ import annotations

import asyncio
import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import gpiozero
from gpiozero.pins import Factory

from daemon.drivers.base import PinSetupError


def _claim(part: str, pin: int, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except gpiozero.GPIOZeroError as error:
        raise PinSetupError(
            f"{part} on pin {pin!r}: {error}; check the pin numbers in the lane config"
        ) from error


# ----------------------------------------------------------------------- light


class Colour(enum.Enum):
    GREEN = "green"  # ready / accepted
    AMBER = "amber"  # waiting for something (a serial, a manager)
    RED = "red"  # refused / out of service


class LaneLight:
    """A three-colour lane light: one colour at a time, steady or blinking, or off."""

    def __init__(
        self,
        *,
        green: int,
        amber: int,
        red: int,
        pin_factory: Factory,
        active_high: bool = True,
    ) -> None:
        pins = {Colour.GREEN: green, Colour.AMBER: amber, Colour.RED: red}
        self._leds: dict[Colour, gpiozero.LED] = {}
        try:
            for colour, pin in pins.items():
                self._leds[colour] = _claim(
                    f"{colour.value} lamp",
                    pin,
                    partial(gpiozero.LED, pin, active_high=active_high, pin_factory=pin_factory),
                )
        except PinSetupError:
            self.close()
            raise
        self._colour: Colour | None = None
        self._blinking = False

    @property
    def colour(self) -> Colour | None:
        """The colour lit (or blinking) now; None when the light is off."""
        return self._colour

    @property
    def is_blinking(self) -> bool:
        return self._blinking

    def show(self, colour: Colour) -> None:
        self._only(colour).on()
        self._colour, self._blinking = colour, False

    def blink(self, colour: Colour = Colour.RED, on_s: float = 0.5, off_s: float = 0.5) -> None:
        """Blink one colour until told otherwise: how the lane calls an attendant."""
        self._only(colour).blink(on_time=on_s, off_time=off_s)
        self._colour, self._blinking = colour, True

    def off(self) -> None:
        for led in self._leds.values():
            led.off()
        self._colour, self._blinking = None, False

    def close(self) -> None:
        for led in self._leds.values():
            led.close()

    def _only(self, colour: Colour) -> gpiozero.LED:
        # The others go dark first, so two colours are never lit together.
        for other, led in self._leds.items():
            if other is not colour:
                led.off()
        return self._leds[colour]


# ---------------------------------------------------------------------- buzzer


@dataclass(frozen=True)
class BeepPattern:
    on_s: float
    off_s: float = 0.0
    count: int | None = 1  # None: repeat until stopped


DEFAULT_PATTERNS: Mapping[str, BeepPattern] = {
    "accept": BeepPattern(on_s=0.08),
    "reject": BeepPattern(on_s=0.6),
    "attendant": BeepPattern(on_s=0.25, off_s=0.25, count=None),
}


class Buzzer:
    """The lane buzzer. Patterns play in the background; a new one replaces the old."""

    def __init__(
        self,
        pin: int,
        *,
        pin_factory: Factory,
        patterns: Mapping[str, BeepPattern] = DEFAULT_PATTERNS,
        active_high: bool = True,
    ) -> None:
        missing = {"accept", "reject", "attendant"} - set(patterns)
        if missing:
            raise ValueError(f"buzzer patterns lack {sorted(missing)}; give all three")
        self.patterns = dict(patterns)
        self._buzzer: gpiozero.Buzzer = _claim(
            "buzzer",
            pin,
            lambda: gpiozero.Buzzer(pin, active_high=active_high, pin_factory=pin_factory),
        )

    def accept(self) -> None:
        """One short beep."""
        self.play(self.patterns["accept"])

    def reject(self) -> None:
        """One long beep."""
        self.play(self.patterns["reject"])

    def attendant(self) -> None:
        """Beep on and off until ``stop()``."""
        self.play(self.patterns["attendant"])

    def play(self, pattern: BeepPattern) -> None:
        self._buzzer.blink(on_time=pattern.on_s, off_time=pattern.off_s, n=pattern.count)

    def stop(self) -> None:
        self._buzzer.off()

    def close(self) -> None:
        self._buzzer.close()


# ------------------------------------------------------------------ cash drawer


class CashDrawer:
    """A cash drawer whose solenoid is driven from a GPIO pin (through a driver stage).

    ``pulse_s`` is how long the solenoid is energised; too long can burn it out.
    """

    def __init__(
        self,
        pin: int,
        *,
        pin_factory: Factory,
        pulse_s: float = 0.1,
        active_high: bool = True,
    ) -> None:
        if not 0.01 <= pulse_s <= 1.0:
            raise ValueError(
                f"drawer pulse of {pulse_s!r} s is outside 0.01-1.0 s; "
                "a solenoid needs about 0.05-0.2 s"
            )
        self.pulse_s = pulse_s
        self._kicks_done: set[str] = set()
        self._lock = threading.Lock()
        self._output: gpiozero.DigitalOutputDevice = _claim(
            "cash drawer",
            pin,
            lambda: gpiozero.DigitalOutputDevice(
                pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
            ),
        )

    def open(self, kick_id: str | None = None) -> None:
        """Pulse the solenoid once, in the background. A repeated ``kick_id`` does nothing."""
        with self._lock:
            if kick_id is not None:
                if kick_id in self._kicks_done:
                    return
                self._kicks_done.add(kick_id)
            self._output.blink(on_time=self.pulse_s, off_time=0, n=1)

    def close(self) -> None:
        self._output.close()


# ------------------------------------------------------------- attendant button


class AttendantButton:
    """The attendant's key or button; ``on_press`` runs each time it is pressed.

    gpiozero calls back on its own thread. Pass ``loop`` and ``on_press`` is run on that
    asyncio loop instead, which is what the lane wants.
    """

    def __init__(
        self,
        pin: int,
        *,
        pin_factory: Factory,
        on_press: Callable[[], None],
        loop: asyncio.AbstractEventLoop | None = None,
        pull_up: bool = True,
        bounce_s: float | None = 0.05,
    ) -> None:
        self._on_press = on_press
        self._loop = loop
        self._button: gpiozero.Button = _claim(
            "attendant button",
            pin,
            lambda: gpiozero.Button(
                pin, pull_up=pull_up, bounce_time=bounce_s, pin_factory=pin_factory
            ),
        )
        self._button.when_pressed = self._pressed

    @property
    def is_pressed(self) -> bool:
        return bool(self._button.is_pressed)

    def close(self) -> None:
        self._button.close()

    def _pressed(self) -> None:
        if self._loop is None:
            self._on_press()
        else:
            self._loop.call_soon_threadsafe(self._on_press)
