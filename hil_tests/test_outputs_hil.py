"""The lane's outputs against real devices named in the environment.

    POSD_HIL_DISPLAY=/dev/serial/by-id/...   POSD_HIL_DISPLAY_MODEL=epson|cd5220
    POSD_HIL_DISPLAY_BAUD=9600 (optional)
    POSD_HIL_PRINTER=/dev/usb/lp0 | tcp://host:9100 | serial:/dev/serial/by-id/...
    POSD_HIL_PRINTER_PROFILE=TM-T88V (optional python-escpos profile name)
    POSD_HIL_GPIO=1  POSD_HIL_GPIO_PINS=green=17,amber=27,red=22,buzzer=18,drawer=23,button=24
    POSD_HIL_GPIO_FACTORY=lgpio|rpigpio|native|pigpio (optional, default lgpio)
    POSD_HIL_DRAWER=1       also open the cash drawer (printer kick and GPIO pulse)
    POSD_HIL_INTERACTIVE=1  tests that need a person to press the attendant button

Each group is skipped, with the variable to set, when its device is not named.
A person watching the devices checks what they show; the tests check what the drivers
can observe (no error, status, bytes sent).
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlparse

import pytest
from escpos.escpos import Escpos
from escpos.printer import File, Network, Serial
from gpiozero.pins import Factory

from daemon.drivers.base import open_serial
from daemon.drivers.display import CustomerDisplay, DisplayStatus
from daemon.drivers.gpio import AttendantButton, Buzzer, CashDrawer, Colour, LaneLight
from daemon.drivers.printer import (
    JobState,
    PrinterState,
    Receipt,
    ReceiptLine,
    ReceiptPrinter,
    ReceiptTender,
    SerialShown,
)

DISPLAY = os.environ.get("POSD_HIL_DISPLAY", "")
PRINTER = os.environ.get("POSD_HIL_PRINTER", "")
GPIO = os.environ.get("POSD_HIL_GPIO", "") == "1"
DRAWER = os.environ.get("POSD_HIL_DRAWER", "") == "1"
INTERACTIVE = os.environ.get("POSD_HIL_INTERACTIVE", "") == "1"

needs_display = pytest.mark.skipif(
    not DISPLAY,
    reason="set POSD_HIL_DISPLAY=/dev/serial/by-id/... and POSD_HIL_DISPLAY_MODEL=epson|cd5220",
)
needs_printer = pytest.mark.skipif(
    not PRINTER,
    reason="set POSD_HIL_PRINTER=/dev/usb/lp0, tcp://host:9100 or serial:/dev/serial/by-id/...",
)
needs_gpio = pytest.mark.skipif(
    not GPIO, reason="set POSD_HIL_GPIO=1 and POSD_HIL_GPIO_PINS=green=17,amber=27,..."
)
needs_drawer = pytest.mark.skipif(
    not DRAWER, reason="set POSD_HIL_DRAWER=1 to let the test open the cash drawer"
)
needs_person = pytest.mark.skipif(
    not INTERACTIVE, reason="set POSD_HIL_INTERACTIVE=1 with someone at the attendant button"
)


# ---------------------------------------------------------------------- display


@pytest.fixture
def display() -> Iterator[CustomerDisplay]:
    model = os.environ.get("POSD_HIL_DISPLAY_MODEL", "")
    if not model:
        pytest.fail("POSD_HIL_DISPLAY_MODEL is not set; use epson or cd5220")
    baud = int(os.environ.get("POSD_HIL_DISPLAY_BAUD", "9600"))
    device = CustomerDisplay(open_serial(DISPLAY, baudrate=baud), model)
    yield device
    device.close()


@needs_display
def test_real_display_takes_a_full_paint_then_only_changes(display: CustomerDisplay) -> None:
    first = display.show("POSD HIL TEST", "FULL PAINT")
    second = display.show("POSD HIL TEST", "FULL PAINS")
    assert display.status is DisplayStatus.READY
    assert first.byte_count > 20
    assert second.byte_count == 2  # back one cell (BS), then that cell


@needs_display
def test_real_display_repaints_after_the_port_is_reopened(display: CustomerDisplay) -> None:
    display.show("BEFORE REOPEN", "")
    display.reconnect(
        open_serial(DISPLAY, baudrate=int(os.environ.get("POSD_HIL_DISPLAY_BAUD", "9600")))
    )
    cost = display.show("AFTER REOPEN", "caf\u00e9 \u20ac")
    assert display.status is DisplayStatus.READY
    assert cost.byte_count > 20  # reset and both lines, not a diff


# ---------------------------------------------------------------------- printer


def _printer_from_environment() -> Escpos:
    profile = os.environ.get("POSD_HIL_PRINTER_PROFILE") or None
    if PRINTER.startswith("tcp://"):
        url = urlparse(PRINTER)
        return Network(url.hostname or "", url.port or 9100, timeout=2, profile=profile)
    if PRINTER.startswith("serial:"):
        return Serial(devfile=PRINTER.removeprefix("serial:"), timeout=1, profile=profile)
    return File(devfile=PRINTER, profile=profile)


def _receipt() -> Receipt:
    return Receipt(
        store="posd HIL test",
        branch="not a sale",
        terminal_id="HIL",
        invoice_number=f"HIL-{int(time.time())}",
        issued_at=datetime.now(),
        cashier="test",
        lines=(
            ReceiptLine(
                "Masked serial", Decimal("1.00"), serial="SN-0001234", warranty_ends=date.today()
            ),
            ReceiptLine(
                "Full serial", Decimal("2.00"), serial="SN-0005678", serial_shown=SerialShown.FULL
            ),
        ),
        tenders=(ReceiptTender("Cash", Decimal("5.00")),),
        footer=("Test print, no sale",),
    )


@pytest.fixture
def printer() -> Iterator[ReceiptPrinter]:
    device = ReceiptPrinter(_printer_from_environment())
    yield device
    device.close()


@needs_printer
def test_real_printer_reports_one_of_three_states(printer: ReceiptPrinter) -> None:
    status = printer.status()
    assert status.state in set(PrinterState)
    if not PRINTER.startswith("/"):  # serial and network printers answer DLE EOT
        assert status.state is not PrinterState.UNKNOWN, status.reason


@needs_printer
def test_real_printer_prints_a_receipt_once_and_one_reprint(printer: ReceiptPrinter) -> None:
    if printer.status().state is PrinterState.ERROR:
        pytest.skip(f"printer is in error: {printer.status().reason}; fix it and rerun")
    receipt = _receipt()
    assert printer.print_receipt(receipt, "hil-1").state is JobState.PRINTED
    assert printer.print_receipt(receipt, "hil-1").attempts == 1  # asked again: not printed
    assert printer.reprint(receipt, "hil-reprint").state is JobState.PRINTED
    assert printer.reprint(receipt, "hil-reprint").attempts == 1


@needs_printer
@needs_drawer
def test_real_printer_kicks_the_drawer(printer: ReceiptPrinter) -> None:
    printer.open_drawer("hil-kick")


# ------------------------------------------------------------------------- GPIO


def _pins() -> dict[str, int]:
    text = os.environ.get("POSD_HIL_GPIO_PINS", "")
    try:
        pins = {name: int(number) for name, number in (p.split("=") for p in text.split(","))}
    except ValueError:
        pytest.fail(f"POSD_HIL_GPIO_PINS={text!r} is not like green=17,amber=27,red=22,...")
    return pins


_FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "pigpio": ("gpiozero.pins.pigpio", "PiGPIOFactory"),
}


@pytest.fixture
def factory() -> Factory:
    name = os.environ.get("POSD_HIL_GPIO_FACTORY", "lgpio")
    if name not in _FACTORIES:
        pytest.fail(f"POSD_HIL_GPIO_FACTORY={name!r}; use one of {sorted(_FACTORIES)}")
    module, cls = _FACTORIES[name]
    made: Factory = getattr(importlib.import_module(module), cls)()
    return made


@needs_gpio
def test_real_light_cycles_through_its_colours(factory: Factory) -> None:
    pins = _pins()
    light = LaneLight(
        green=pins["green"], amber=pins["amber"], red=pins["red"], pin_factory=factory
    )
    try:
        for colour in Colour:
            light.show(colour)
            assert light.colour is colour
            time.sleep(0.5)
        light.blink(Colour.RED, on_s=0.2, off_s=0.2)
        time.sleep(1)
    finally:
        light.off()
        light.close()


@needs_gpio
def test_real_buzzer_plays_accept_then_reject(factory: Factory) -> None:
    buzzer = Buzzer(_pins()["buzzer"], pin_factory=factory)
    try:
        buzzer.accept()
        time.sleep(0.5)
        buzzer.reject()
        time.sleep(1)
    finally:
        buzzer.stop()
        buzzer.close()


@needs_gpio
@needs_drawer
def test_real_gpio_drawer_opens(factory: Factory) -> None:
    drawer = CashDrawer(_pins()["drawer"], pin_factory=factory)
    try:
        drawer.open("hil-kick")
        time.sleep(0.5)
    finally:
        drawer.close()


@needs_gpio
@needs_person
def test_real_attendant_button_is_noticed(factory: Factory) -> None:
    pressed = threading.Event()
    button = AttendantButton(_pins()["button"], pin_factory=factory, on_press=pressed.set)
    try:
        print("\npress the attendant button within 15 s")
        assert pressed.wait(15), "no press seen: check the button's pin and wiring"
    finally:
        button.close()
