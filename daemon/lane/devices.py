"""The lane's devices, made from its configuration.

Each device gets its transport here — a serial port by its stable name, an evdev
device, a TCP printer, a GPIO pin factory — so a simulator on a pty, a loopback
socket or gpiozero's MockFactory stands in by configuration alone. Nothing here
probes a port by writing to it: a port's role is what the configuration says.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from escpos.escpos import Escpos
from escpos.printer import File, Network, Serial
from gpiozero.pins import Factory

from daemon.config.devices import (
    EvdevScannerConfig,
    FilePrinterConfig,
    GpioConfig,
    NetworkPrinterConfig,
    SerialPrinterConfig,
    SerialScannerConfig,
)
from daemon.config.model import PosdConfig
from daemon.drivers.base import open_serial
from daemon.drivers.gpio import AttendantButton, Buzzer, CashDrawer, LaneLight
from daemon.drivers.printer import ReceiptPrinter
from daemon.drivers.scanner import OnTimeout, ReadingScanner
from daemon.errors import ConfigError
from daemon.lane.outputs import Background, DisplayOutput, GpioOutputs, PrinterOutput, Report
from daemon.lane.receipt import ReceiptHeader, receipt_of
from daemon.rules.lane.types import ReceiptSpec


class DeviceStartError(ConfigError):
    """The lane cannot start as configured; the message says what to change."""


def pin_factory(name: str) -> Factory:
    """gpiozero's pin factory registered under `name` (`native`, `lgpio`, `mock`, …)."""
    found = {ep.name: ep for ep in entry_points(group="gpiozero_pin_factories")}
    if name not in found:
        raise DeviceStartError(
            f"gpio.pin_factory {name!r} is not installed; installed: {', '.join(sorted(found))}"
        )
    try:
        factory: Factory = found[name].load()()
    except Exception as error:  # each backend fails its own way off a Pi
        raise DeviceStartError(
            f"gpio.pin_factory {name!r} cannot start here ({error}); on a Raspberry Pi use "
            "lgpio or native, elsewhere mock"
        ) from error
    return factory


def display_output(config: PosdConfig, report: Report) -> DisplayOutput | None:
    section = config.display
    if section is None:
        return None
    return DisplayOutput(
        lambda: open_serial(section.port, section.baud, section.write_timeout_s),
        section.model,
        report=report,
        code_table=section.code_table,
        write_timeout_s=section.write_timeout_s,
        reconnect_s=section.reconnect_s,
        present=lambda: os.path.exists(section.port),
    )


def gpio_outputs(
    section: GpioConfig | None, factory: Factory | None, report: Report, background: Background
) -> GpioOutputs | None:
    if section is None or factory is None:
        return None
    pins = section.pins
    light = buzzer = drawer = None
    if pins.green is not None and pins.amber is not None and pins.red is not None:
        light = LaneLight(
            green=pins.green,
            amber=pins.amber,
            red=pins.red,
            pin_factory=factory,
            active_high=section.active_high,
        )
    if pins.buzzer is not None:
        buzzer = Buzzer(pins.buzzer, pin_factory=factory, active_high=section.active_high)
    if pins.drawer is not None:
        drawer = CashDrawer(
            pins.drawer,
            pin_factory=factory,
            pulse_s=section.drawer_pulse_s,
            active_high=section.active_high,
        )
    return GpioOutputs(
        light=light, buzzer=buzzer, drawer=drawer, report=report, background=background
    )


def help_button(
    section: GpioConfig | None, factory: Factory | None, on_press: Callable[[], None]
) -> AttendantButton | None:
    if section is None or factory is None or section.pins.button is None:
        return None
    return AttendantButton(
        section.pins.button,
        pin_factory=factory,
        on_press=on_press,
        loop=asyncio.get_running_loop(),
    )


def escpos_printer(config: PosdConfig) -> Escpos | None:
    section = config.printer
    if section is None:
        return None
    profile: dict[str, Any] = {"profile": section.profile} if section.profile else {}
    if isinstance(section, SerialPrinterConfig):
        return Serial(
            devfile=section.port, baudrate=section.baud, timeout=section.status_timeout_s, **profile
        )
    if isinstance(section, FilePrinterConfig):
        return File(devfile=section.path, **profile)
    assert isinstance(section, NetworkPrinterConfig)
    return Network(section.host, section.port, timeout=section.status_timeout_s, **profile)


def printer_output(
    config: PosdConfig, report: Report, background: Background
) -> PrinterOutput | None:
    printer = escpos_printer(config)
    section = config.printer
    if printer is None or section is None:
        return None
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


def scanners(config: PosdConfig) -> list[ReadingScanner]:
    made: list[ReadingScanner] = []
    for section in config.scanners:
        if isinstance(section, SerialScannerConfig):
            from daemon.drivers.scanner_serial import SerialScanner as SerialDriver

            framing = section.framing
            made.append(
                SerialDriver(
                    section.port,
                    baudrate=section.baud,
                    bytesize=int(framing[0]),
                    parity=framing[1],
                    stopbits=float(framing[2:]) if "." in framing[2:] else int(framing[2:]),
                    terminator=section.terminator,
                    encoding=section.encoding,
                    source=section.name or section.port,
                    char_timeout_s=section.char_timeout_s,
                    on_timeout=OnTimeout(section.on_timeout),
                    max_length=section.max_length,
                )
            )
        else:
            made.append(_evdev_scanner(section))
    return made


def _evdev_scanner(section: EvdevScannerConfig) -> ReadingScanner:
    # Imported only when configured: key decoding loads libxkbcommon and its layouts.
    from daemon.drivers.keymap import KeyboardLayout
    from daemon.drivers.scanner_evdev import (
        EvdevScanner as EvdevDriver,
    )
    from daemon.drivers.scanner_evdev import (
        open_input_device,
        resolve_input_device,
    )

    device = section.device
    return EvdevDriver(
        lambda: open_input_device(resolve_input_device(device)),
        KeyboardLayout(section.layout),
        source=section.name or device,
        end_keys=section.end_keys,
        char_timeout_s=section.char_timeout_s,
        on_timeout=OnTimeout(section.on_timeout),
        max_length=section.max_length,
    )
