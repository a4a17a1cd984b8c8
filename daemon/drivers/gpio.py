"""The lane's lights, buzzer, GPIO cash drawer and attendant button, through gpiozero.

Each part takes its pin numbers (BCM) and a ``pin_factory``: the real one on the
terminal, gpiozero's ``MockFactory`` in tests. The global default factory is never used.

    light = LaneLight(green=17, amber=27, red=22, pin_factory=factory)
    light.show(Colour.GREEN)
    buzzer = Buzzer(18, pin_factory=factory)
    buzzer.accept()

`GPIO_PINS` registers the `[gpio]` section as a device kind: `GpioBoard` makes the parts
it says are fitted (for the lane and for `posd doctor` alike), and `check_gpio` is the
doctor's test of them. `pin_factory` starts the gpiozero backend the section names.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from importlib.metadata import entry_points
from typing import Annotated, Any, Literal

import gpiozero
from gpiozero.pins import Factory
from pydantic import Field

from daemon.config.base import Section
from daemon.drivers.base import PinSetupError
from daemon.drivers.checks import CheckContext, Finding, Where, fail, ok, skip, warn
from daemon.drivers.registry import DeviceKind, DeviceRole
from daemon.errors import ConfigError, DeviceError


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


# ------------------------------------------------------------------ the device kind

Pin = Annotated[int, Field(ge=0, le=53)]


class GpioPinsConfig(Section):
    """BCM pin numbers; a part whose pin is not given is not fitted."""

    green: Pin | None = None
    amber: Pin | None = None
    red: Pin | None = None
    buzzer: Pin | None = None
    drawer: Pin | None = None
    button: Pin | None = None


class GpioConfig(Section):
    pin_factory: Literal["native", "lgpio", "rpigpio", "pigpio", "mock"] = "native"
    pins: GpioPinsConfig = GpioPinsConfig()
    active_high: bool = True
    drawer_pulse_s: float = Field(default=0.1, ge=0.01, le=1.0)


class PinFactoryError(ConfigError):
    """The configured gpiozero pin factory is not installed or cannot start here."""


def pin_factory(name: str) -> Factory:
    """gpiozero's pin factory registered under `name` (`native`, `lgpio`, `mock`, …)."""
    found = {ep.name: ep for ep in entry_points(group="gpiozero_pin_factories")}
    if name not in found:
        raise PinFactoryError(
            f"gpio.pin_factory {name!r} is not installed; installed: {', '.join(sorted(found))}"
        )
    try:
        factory: Factory = found[name].load()()
    except Exception as error:  # each backend fails its own way off a Pi
        raise PinFactoryError(
            f"gpio.pin_factory {name!r} cannot start here ({error}); on a Raspberry Pi use "
            "lgpio or native, elsewhere mock"
        ) from error
    return factory


class GpioBoard:
    """The lane's parts on GPIO as a `[gpio]` section fits them. Each part is made on
    the pin factory given (claiming its pins); a part with no pin is not fitted (None)."""

    def __init__(self, section: GpioConfig) -> None:
        self.section = section

    def pin_factory(self) -> Factory:
        """The pin factory the section names, started; PinFactoryError when it cannot."""
        return pin_factory(self.section.pin_factory)

    def light(self, factory: Factory) -> LaneLight | None:
        pins = self.section.pins
        if pins.green is None or pins.amber is None or pins.red is None:
            return None
        return LaneLight(
            green=pins.green,
            amber=pins.amber,
            red=pins.red,
            pin_factory=factory,
            active_high=self.section.active_high,
        )

    def buzzer(self, factory: Factory) -> Buzzer | None:
        pin = self.section.pins.buzzer
        if pin is None:
            return None
        return Buzzer(pin, pin_factory=factory, active_high=self.section.active_high)

    def drawer(self, factory: Factory) -> CashDrawer | None:
        pin = self.section.pins.drawer
        if pin is None:
            return None
        return CashDrawer(
            pin,
            pin_factory=factory,
            pulse_s=self.section.drawer_pulse_s,
            active_high=self.section.active_high,
        )

    def button(
        self,
        factory: Factory,
        on_press: Callable[[], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> AttendantButton | None:
        pin = self.section.pins.button
        if pin is None:
            return None
        return AttendantButton(pin, pin_factory=factory, on_press=on_press, loop=loop)


GPIO: DeviceRole[GpioConfig, GpioBoard] = DeviceRole(
    "gpio", "lane light, buzzer or drawer", "gpio", GpioConfig
)


def check_gpio(section: GpioConfig, context: CheckContext, where: Where) -> list[Finding]:
    """Light the lamps in turn, beep, read the button, and pulse the drawer if asked."""
    factory = context.factory
    try:
        made = factory is None
        factory = factory or pin_factory(section.pin_factory)
    except PinFactoryError as error:
        return [fail(where.name, str(error), f"fix {where.key}.pin_factory")]
    try:
        return _parts(section, GpioBoard(section), factory, context, where.key)
    finally:
        if made:
            with contextlib.suppress(Exception):  # pins are released either way
                factory.close()


def _parts(
    section: GpioConfig, board: GpioBoard, factory: Factory, context: CheckContext, key: str
) -> list[Finding]:
    pins, step = section.pins, context.options.light_step_s
    found: list[Finding] = []
    colours = (pins.green, pins.amber, pins.red)
    if None not in colours:
        try:
            light = board.light(factory)
            assert light is not None
            try:
                for colour in (Colour.GREEN, Colour.AMBER, Colour.RED):
                    light.show(colour)
                    time.sleep(step)
                light.off()
            finally:
                light.close()
            found.append(
                ok(
                    "lane light",
                    f"lit green, amber, red in turn (pins {colours})",
                    "check each colour lit on its own",
                )
            )
        except DeviceError as error:
            found.append(fail("lane light", str(error), f"fix {key}.pins"))
    elif any(pin is not None for pin in colours):
        found.append(warn("lane light", "only some colours have pins", "give green, amber and red"))
    if pins.buzzer is not None:
        try:
            buzzer = board.buzzer(factory)
            assert buzzer is not None
            try:
                buzzer.accept()
                time.sleep(buzzer.patterns["accept"].on_s + 0.05)
            finally:
                buzzer.close()
            found.append(ok("buzzer", f"beeped once (pin {pins.buzzer})", "check you heard it"))
        except DeviceError as error:
            found.append(fail("buzzer", str(error), f"fix {key}.pins.buzzer"))
    if pins.drawer is not None:
        found.append(_drawer(section, board, factory, context, key))
    if pins.button is not None:
        found.append(_button(section, board, factory, key))
    return found


def _drawer(
    section: GpioConfig, board: GpioBoard, factory: Factory, context: CheckContext, key: str
) -> Finding:
    if not context.options.open_drawer:
        return skip("cash drawer", "not opened (give --open-drawer to test it)")
    try:
        drawer = board.drawer(factory)
        assert drawer is not None
        try:
            drawer.open()
            time.sleep(section.drawer_pulse_s + 0.05)
        finally:
            drawer.close()
    except DeviceError as error:
        return fail("cash drawer", str(error), f"fix {key}.pins.drawer")
    return ok("cash drawer", f"pulsed pin {section.pins.drawer}", "check it opened")


def _button(section: GpioConfig, board: GpioBoard, factory: Factory, key: str) -> Finding:
    pin = section.pins.button
    try:
        button = board.button(factory, on_press=lambda: None)
        assert button is not None
    except DeviceError as error:
        return fail("attendant button", str(error), f"fix {key}.pins.button")
    try:
        pressed = button.is_pressed
    finally:
        button.close()
    if pressed:
        return warn(
            "attendant button",
            f"pin {pin} reads pressed while nobody presses it",
            "check its wiring: pressing it should connect the pin to ground",
        )
    return ok("attendant button", f"pin {pin} reads released")


GPIO_PINS: DeviceKind[GpioConfig, GpioBoard] = DeviceKind(
    name="gpio",
    role=GPIO,
    section=GpioConfig,
    build=GpioBoard,
    check=check_gpio,
    label="pins",
)
