"""The doctor's device checks: printer, customer display, lights and buzzer, scanners.

Each one drives the device through the same driver and the same configuration the lane
uses, so what passes here works in `posd run`. Nothing is written to a port the
configuration does not name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Sequence
from decimal import Decimal

import serial
from gpiozero.pins import Factory

from daemon.config.devices import EvdevScannerConfig, FilePrinterConfig, NetworkPrinterConfig
from daemon.doctor.findings import Context, Finding, fail, ok, skip, warn
from daemon.doctor.system import local_addresses
from daemon.drivers.base import open_serial
from daemon.drivers.display import CustomerDisplay
from daemon.drivers.gpio import AttendantButton, Buzzer, CashDrawer, Colour, LaneLight
from daemon.drivers.printer import JobState, PrinterState, Receipt, ReceiptLine, ReceiptPrinter
from daemon.drivers.scanner import ReadingScanner, Reason, Scan, ScanProblem
from daemon.errors import DeviceError
from daemon.lane.devices import DeviceStartError, escpos_printer, pin_factory, scanners

TEST_PATTERN = "ABCDEFGHIJ0123456789"  # every cell a different glyph: a dead cell shows
_PRINTER_ADVICE = {
    "paper out": "load a paper roll and close the cover",
    "cover open": "close the printer's cover",
    "paper cutter jammed": "open the cover and clear the cutter",
    "offline": "press the printer's online/feed button, or switch it off and on",
}


# -------------------------------------------------------------------------- printer


def test_ticket(context: Context) -> Receipt:
    """A ticket that says which terminal this is and how to reach it."""
    config = context.config
    now = context.wall()
    number = f"TEST-{config.terminal.id}-{now:%H%M%S}"
    addresses = local_addresses() or ["no network address"]
    return Receipt(
        store=config.terminal.store_name,
        branch=config.terminal.branch,
        terminal_id=config.terminal.id,
        invoice_number=number,
        issued_at=now,
        cashier="posd doctor",
        lines=(ReceiptLine("posd self-test ticket", Decimal("0")),),
        footer=(
            f"Terminal {config.terminal.id}",
            f"Branch {config.terminal.branch}",
            f"Host {socket.gethostname()}",
            *(f"IP {address}" for address in addresses),
            f"Time {now.isoformat(timespec='seconds')}",
            "Scan the barcode above to test",
            "the scanner.",
        ),
        currency=config.terminal.currency,
    )


def check_printer(context: Context) -> Sequence[Finding]:
    section = context.config.printer
    if section is None:
        return [skip("printer", "no printer configured")]
    if isinstance(section, NetworkPrinterConfig):
        where = f"{section.host}:{section.port}"
    else:
        where = section.path if isinstance(section, FilePrinterConfig) else section.port
        if not os.path.exists(where):
            return [
                fail(
                    "printer",
                    f"{where} does not exist",
                    "plug the printer in and switch it on; `posd devices` lists what is "
                    "attached; fix printer."
                    + ("path" if isinstance(section, FilePrinterConfig) else "port"),
                )
            ]
    device = escpos_printer(context.config)
    assert device is not None
    printer = ReceiptPrinter(
        device,
        timeout_s=section.timeout_s,
        status_timeout_s=section.status_timeout_s,
        drawer_pin=section.drawer_pin,
    )
    try:
        return _print_ticket(context, printer, where)
    finally:
        printer.close()
        with contextlib.suppress(Exception):  # closing a printer that went away
            device.close()


def _print_ticket(context: Context, printer: ReceiptPrinter, where: str) -> list[Finding]:
    section = context.config.printer
    assert section is not None
    status = printer.status()
    if status.state is PrinterState.ERROR:
        return [
            fail(
                "printer",
                f"{where}: the printer reports {status.reason}",
                _PRINTER_ADVICE.get(
                    status.reason, "see the printer's manual; switch it off and on"
                ),
            )
        ]
    blind = status.state is PrinterState.UNKNOWN and "cannot report" in status.reason
    if status.state is PrinterState.UNKNOWN and not blind:
        return [
            fail(
                "printer",
                f"{where}: the printer does not answer ({status.reason})",
                "check it is switched on, its cable, and printer.transport and port; "
                "a printer that does not answer cannot print receipts",
            )
        ]
    ticket = test_ticket(context)
    job = printer.print_receipt(ticket, ticket.invoice_number)
    if job.state is not JobState.PRINTED:
        return [
            fail(
                "printer",
                f"{where}: the test ticket did not print ({job.reason})",
                "check the printer's power, paper and cable",
            )
        ]
    context.ticket = ticket.invoice_number
    notes = "; paper low" if status.reason == "paper low" else ""
    if blind:
        notes += "; this connection cannot report paper or cover state"
    found = [
        ok(
            "printer",
            f"{where}: test ticket {ticket.invoice_number} printed{notes}",
            f"check it shows terminal {context.config.terminal.id} and is cut cleanly",
        )
    ]
    if section.drawer_kick:
        if context.options.open_drawer:
            try:
                printer.open_drawer()
                found.append(ok("cash drawer", "kicked through the printer", "check it opened"))
            except DeviceError as error:
                found.append(fail("cash drawer", str(error), "check the drawer's cable"))
        else:
            found.append(skip("cash drawer", "not opened (give --open-drawer to test it)"))
    return found


# -------------------------------------------------------------------------- display


def check_display(context: Context) -> Sequence[Finding]:
    section = context.config.display
    if section is None:
        return [skip("display", "no customer display configured")]
    port = section.port
    if not os.path.exists(port):
        return [
            fail(
                "display",
                f"{port} does not exist",
                "plug the display in; `posd devices` lists serial ports by stable name; "
                "fix display.port",
            )
        ]
    try:
        transport = open_serial(port, section.baud, section.write_timeout_s)
    except (serial.SerialException, OSError) as error:
        return [
            fail(
                "display",
                f"{port} cannot be opened ({error})",
                "if posd is running it holds the display: systemctl stop posd",
            )
        ]
    display = CustomerDisplay(
        transport, section.model, code_table=section.code_table,
        write_timeout_s=section.write_timeout_s,
    )  # fmt: skip
    second = f"TEST {context.config.terminal.id}"[:20]
    try:
        display.show(TEST_PATTERN, second)
        transport.flush()
    except (DeviceError, serial.SerialException, OSError) as error:
        return [fail("display", f"{port}: {error}", "check the display's cable and power")]
    finally:
        display.close()
        with contextlib.suppress(Exception):  # closing a port that went away
            transport.close()
    return [
        ok(
            "display",
            f"{port}: test pattern sent ({section.model}, {section.baud} baud)",
            f"check it reads {TEST_PATTERN!r} / {second!r} with every cell lit; garbage "
            "means display.model or baud does not match the display",
        )
    ]


# ----------------------------------------------------------------------------- GPIO


def check_gpio(context: Context) -> Sequence[Finding]:
    section = context.config.gpio
    if section is None:
        return [skip("gpio", "no lane light, buzzer or drawer configured")]
    factory = context.factory
    try:
        made = factory is None
        factory = factory or pin_factory(section.pin_factory)
    except DeviceStartError as error:
        return [fail("gpio", str(error), "fix gpio.pin_factory")]
    try:
        return _gpio_parts(context, factory)
    finally:
        if made:
            with contextlib.suppress(Exception):  # pins are released either way
                factory.close()


def _gpio_parts(context: Context, factory: Factory) -> list[Finding]:
    section = context.config.gpio
    assert section is not None
    pins, high, step = section.pins, section.active_high, context.options.light_step_s
    found: list[Finding] = []
    colours = (pins.green, pins.amber, pins.red)
    if pins.green is not None and pins.amber is not None and pins.red is not None:
        try:
            light = LaneLight(
                green=pins.green, amber=pins.amber, red=pins.red,
                pin_factory=factory, active_high=high,
            )  # fmt: skip
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
            found.append(fail("lane light", str(error), "fix gpio.pins"))
    elif any(pin is not None for pin in colours):
        found.append(warn("lane light", "only some colours have pins", "give green, amber and red"))
    if pins.buzzer is not None:
        try:
            buzzer = Buzzer(pins.buzzer, pin_factory=factory, active_high=high)
            try:
                buzzer.accept()
                time.sleep(buzzer.patterns["accept"].on_s + 0.05)
            finally:
                buzzer.close()
            found.append(ok("buzzer", f"beeped once (pin {pins.buzzer})", "check you heard it"))
        except DeviceError as error:
            found.append(fail("buzzer", str(error), "fix gpio.pins.buzzer"))
    if pins.drawer is not None:
        found.append(_drawer(context, factory))
    if pins.button is not None:
        found.append(_button(context, factory))
    return found


def _drawer(context: Context, factory: Factory) -> Finding:
    section = context.config.gpio
    assert section is not None and section.pins.drawer is not None
    if not context.options.open_drawer:
        return skip("cash drawer", "not opened (give --open-drawer to test it)")
    try:
        drawer = CashDrawer(
            section.pins.drawer, pin_factory=factory,
            pulse_s=section.drawer_pulse_s, active_high=section.active_high,
        )  # fmt: skip
        try:
            drawer.open()
            time.sleep(section.drawer_pulse_s + 0.05)
        finally:
            drawer.close()
    except DeviceError as error:
        return fail("cash drawer", str(error), "fix gpio.pins.drawer")
    return ok("cash drawer", f"pulsed pin {section.pins.drawer}", "check it opened")


def _button(context: Context, factory: Factory) -> Finding:
    section = context.config.gpio
    assert section is not None and section.pins.button is not None
    try:
        button = AttendantButton(section.pins.button, pin_factory=factory, on_press=lambda: None)
    except DeviceError as error:
        return fail("attendant button", str(error), "fix gpio.pins.button")
    try:
        pressed = button.is_pressed
    finally:
        button.close()
    if pressed:
        return warn(
            "attendant button",
            f"pin {section.pins.button} reads pressed while nobody presses it",
            "check its wiring: pressing it should connect the pin to ground",
        )
    return ok("attendant button", f"pin {section.pins.button} reads released")


# -------------------------------------------------------------------------- scanner


def check_scanners(context: Context) -> Sequence[Finding]:
    config = context.config
    if not config.scanners:
        return [skip("scanner", "no scanner configured")]
    try:
        readers = scanners(config)
    except (ValueError, LookupError) as error:
        return [fail("scanner", str(error), "fix the [[scanners]] section")]
    found = []
    for index, (section, reader) in enumerate(zip(config.scanners, readers, strict=True)):
        name = "scanner" if len(readers) == 1 else f"scanner {section.name or index + 1}"
        where = section.device if isinstance(section, EvdevScannerConfig) else section.port
        key = f"scanners[{index}]." + (
            "device" if isinstance(section, EvdevScannerConfig) else "port"
        )
        missing = _absent(section)
        if missing:
            found.append(fail(name, missing, f"plug the scanner in; `posd devices`; fix {key}"))
        elif not context.options.scan:
            found.append(skip(name, f"{where} is attached; scan test skipped (--no-scan)"))
        else:
            found.append(_wait_for_scan(context, reader, name, where, section))
    return found


def _absent(section: object) -> str | None:
    if isinstance(section, EvdevScannerConfig):
        from daemon.drivers.scanner_evdev import resolve_input_device

        try:
            resolve_input_device(section.device)
        except (LookupError, ValueError) as error:
            return str(error)
        return None
    port = getattr(section, "port", "")
    return None if os.path.exists(port) else f"{port} does not exist"


def _wait_for_scan(
    context: Context, reader: ReadingScanner, name: str, where: str, section: object
) -> Finding:
    timeout = context.options.scan_timeout_s
    what = "the barcode on the test ticket (or any barcode)" if context.ticket else "a barcode"
    context.say(f"Scan {what} with {where}; waiting up to {timeout:g} s…")
    event, problems = asyncio.run(_first_scan(reader, timeout))
    if isinstance(event, ScanProblem):
        return fail(
            name,
            event.message,
            "if posd is running it holds the scanner: systemctl stop posd",
        )
    if event is None:
        seen = f" ({len(problems)} broken scans; first: {problems[0].message})" if problems else ""
        return fail(
            name,
            f"{where}: no scan within {timeout:g} s{seen}",
            "scan while doctor waits; if the scanner beeps but nothing arrives, check its "
            "end-of-scan key or terminator in the configuration",
        )
    text = event.text
    shown = f"{where}: read {text!r}" + (f" ({event.symbology_id})" if event.symbology_id else "")
    ticket = context.ticket
    if ticket and text == ticket:
        return ok(name, shown + ", the test ticket's barcode: printer and scanner agree")
    if ticket and isinstance(section, EvdevScannerConfig) and len(text) == len(ticket):
        return warn(
            name,
            shown + f", but the ticket says {ticket!r}",
            f"the scanner types in another keyboard layout than {section.layout!r}: set "
            "its layout in the configuration (or the scanner) to match",
        )
    return ok(name, shown)


async def _first_scan(
    reader: ReadingScanner, timeout_s: float
) -> tuple[Scan | ScanProblem | None, list[ScanProblem]]:
    """The first whole scan, the problem that stops the scanner from being read, or
    None at the deadline; with the broken scans seen on the way."""
    problems: list[ScanProblem] = []
    stream = reader.scans()

    async def take() -> Scan | ScanProblem | None:
        async for event in stream:
            if isinstance(event, Scan):
                return event
            if event.reason_code is Reason.DISCONNECTED:
                return event
            problems.append(event)
        return None

    try:
        return await asyncio.wait_for(take(), timeout_s), problems
    except TimeoutError:
        return None, problems
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
