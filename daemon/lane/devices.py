"""The lane's devices, made from its configuration through the registry of device kinds.

Each device gets its transport from its kind (`daemon.drivers.kinds`) — a serial port
by its stable name, an evdev device, a TCP printer, a GPIO pin factory — so a
simulator on a pty, a loopback socket or gpiozero's MockFactory stands in by
configuration alone. Nothing here probes a port by writing to it: a port's role is
what the configuration says, and which driver reads it is what its kind says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gpiozero.pins import Factory

from daemon.config.model import PosdConfig
from daemon.drivers.display.kind import DISPLAY
from daemon.drivers.gpio import GPIO, AttendantButton, GpioBoard, PinFactoryError
from daemon.drivers.kinds import KINDS
from daemon.drivers.printer import ReceiptPrinter
from daemon.drivers.printer_transport import PRINTER
from daemon.drivers.registry import DeviceKinds
from daemon.drivers.scanner import SCANNER, ReadingScanner
from daemon.errors import ConfigError
from daemon.lane.outputs import Background, DisplayOutput, GpioOutputs, PrinterOutput, Report
from daemon.lane.receipt import ReceiptHeader, receipt_of
from daemon.rules.lane.types import ReceiptSpec


class DeviceStartError(ConfigError):
    """The lane cannot start as configured; the message says what to change."""


def display_output(
    config: PosdConfig, report: Report, kinds: DeviceKinds = KINDS
) -> DisplayOutput | None:
    section = config.display
    if section is None:
        return None
    port = kinds.build(DISPLAY, section)
    return DisplayOutput(
        port.open,
        section.model,
        report=report,
        code_table=section.code_table,
        write_timeout_s=section.write_timeout_s,
        reconnect_s=section.reconnect_s,
        present=port.present,
    )


def gpio_board(
    config: PosdConfig, factory: Factory | None, kinds: DeviceKinds = KINDS
) -> tuple[GpioBoard, Factory] | None:
    """The configured GPIO parts and the pin factory to make them on: `factory` when one
    is given (a test's MockFactory), else the one the configuration names."""
    section = config.gpio
    if section is None:
        return None
    board = kinds.build(GPIO, section)
    try:
        return board, factory or board.pin_factory()
    except PinFactoryError as error:
        raise DeviceStartError(str(error)) from None


def gpio_outputs(
    board: GpioBoard, factory: Factory, report: Report, background: Background
) -> GpioOutputs:
    return GpioOutputs(
        light=board.light(factory),
        buzzer=board.buzzer(factory),
        drawer=board.drawer(factory),
        report=report,
        background=background,
    )


def help_button(
    board: GpioBoard, factory: Factory, on_press: Callable[[], None]
) -> AttendantButton | None:
    return board.button(factory, on_press, loop=asyncio.get_running_loop())


def printer_output(
    config: PosdConfig, report: Report, background: Background, kinds: DeviceKinds = KINDS
) -> PrinterOutput | None:
    section = config.printer
    if section is None:
        return None
    printer = kinds.build(PRINTER, section)
    header = receipt_header(config)

    def make(spec: ReceiptSpec) -> Any:
        return receipt_of(spec, header)

    return PrinterOutput(
        ReceiptPrinter(
            printer,
            timeout_s=section.timeout_s,
            status_timeout_s=section.status_timeout_s,
            drawer_pin=section.drawer_pin,
        ),
        make,
        report=report,
        background=background,
        drawer_kick=section.drawer_kick,
    )


def receipt_header(config: PosdConfig) -> ReceiptHeader:
    return ReceiptHeader(
        store=config.terminal.store_name,
        branch=config.terminal.branch,
        terminal=config.terminal.id,
        cashier=config.operator,
        currency=config.terminal.currency,
        footer=tuple(config.lane.receipt_footer),
    )


def scanners(config: PosdConfig, kinds: DeviceKinds = KINDS) -> list[ReadingScanner]:
    return [kinds.build(SCANNER, section) for section in config.scanners]
