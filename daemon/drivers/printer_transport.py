"""How posd reaches the receipt printer: by serial port, by device file (a USB printer's
`/dev/usb/lp0` or its udev link) or over TCP, one device kind each.

    printer = KINDS.build(PRINTER, config.printer)     # a python-escpos printer, not yet open
    ReceiptPrinter(printer, timeout_s=config.printer.timeout_s)

Each kind is its `[printer]` section (`transport = "serial"`, `"file"` or `"network"`,
all on `PrinterConfigBase`), the python-escpos connection it makes, the doctor's test
ticket through it, and the answers `posd provision` takes for it (`serial:/dev/…`,
`/dev/usb/lp0`, `tcp://host:9100`).

The configuration reads these sections, so this module leaves python-escpos and the
printer driver (`printer`) to the functions that use them: python-escpos sets up
logging of its own when it is imported, and `posd run` sets up the journal first.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from daemon.config.base import Section
from daemon.config.devices import SerialBaud, StableDevice
from daemon.drivers.checks import CheckContext, Finding, Where, fail, ok, skip
from daemon.drivers.registry import Attached, DeviceKind, DeviceRole, Recognition
from daemon.errors import DeviceError

if TYPE_CHECKING:
    from escpos.escpos import Escpos

    from daemon.drivers.printer import ReceiptPrinter

_ADVICE = {
    "paper out": "load a paper roll and close the cover",
    "cover open": "close the printer's cover",
    "paper cutter jammed": "open the cover and clear the cutter",
    "offline": "press the printer's online/feed button, or switch it off and on",
}


class PrinterConfigBase(Section):
    """What every printer section says, whatever its transport."""

    profile: str | None = None  # python-escpos printer profile, e.g. TM-T88V
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    status_timeout_s: float = Field(default=2.0, gt=0, le=30)
    drawer_kick: bool = False  # open the cash drawer through the printer's kick connector
    drawer_pin: Literal[2, 5] = 2


class SerialPrinterConfig(PrinterConfigBase):
    transport: Literal["serial"]
    port: StableDevice
    baud: SerialBaud = 9600


class FilePrinterConfig(PrinterConfigBase):
    transport: Literal["file"]
    path: str  # a USB printer's /dev/usb/lp* (better: its udev link)


class NetworkPrinterConfig(PrinterConfigBase):
    transport: Literal["network"]
    host: str
    port: int = Field(default=9100, ge=1, le=65535)


PRINTER: DeviceRole[PrinterConfigBase, Escpos] = DeviceRole(
    "printer", "printer", "printer", PrinterConfigBase, tag="transport"
)


def _profile(section: PrinterConfigBase) -> dict[str, Any]:
    return {"profile": section.profile} if section.profile else {}


def serial_printer(section: SerialPrinterConfig) -> Escpos:
    from escpos.printer import Serial

    return Serial(
        devfile=section.port,
        baudrate=section.baud,
        timeout=section.status_timeout_s,
        **_profile(section),
    )


def file_printer(section: FilePrinterConfig) -> Escpos:
    from escpos.printer import File

    return File(devfile=section.path, **_profile(section))


def network_printer(section: NetworkPrinterConfig) -> Escpos:
    from escpos.printer import Network

    return Network(
        section.host, section.port, timeout=section.status_timeout_s, **_profile(section)
    )


# ---------------------------------------------------------------- posd doctor


def check_printer(
    section: PrinterConfigBase,
    context: CheckContext,
    where: Where,
    *,
    open_printer: Callable[[], Escpos],
    shown: str,
    path_key: str | None,
) -> list[Finding]:
    """Print the test ticket through the printer the lane would use (`shown` is where
    it is, for a person), after asking how it is; kick the drawer if asked to."""
    from daemon.drivers.printer import ReceiptPrinter

    if path_key is not None and not os.path.exists(shown):
        return [
            fail(
                where.name,
                f"{shown} does not exist",
                "plug the printer in and switch it on; `posd devices` lists what is "
                f"attached; fix {where.key}.{path_key}",
            )
        ]
    device = open_printer()
    printer = ReceiptPrinter(
        device,
        timeout_s=section.timeout_s,
        status_timeout_s=section.status_timeout_s,
        drawer_pin=section.drawer_pin,
    )
    try:
        return _print_ticket(section, context, where, printer, shown)
    finally:
        printer.close()
        with contextlib.suppress(Exception):  # closing a printer that went away
            device.close()


def _print_ticket(
    section: PrinterConfigBase,
    context: CheckContext,
    where: Where,
    printer: ReceiptPrinter,
    shown: str,
) -> list[Finding]:
    from daemon.drivers.printer import JobState, PrinterState

    name = where.name
    status = printer.status()
    if status.state is PrinterState.ERROR:
        return [
            fail(
                name,
                f"{shown}: the printer reports {status.reason}",
                _ADVICE.get(status.reason, "see the printer's manual; switch it off and on"),
            )
        ]
    blind = status.state is PrinterState.UNKNOWN and "cannot report" in status.reason
    if status.state is PrinterState.UNKNOWN and not blind:
        return [
            fail(
                name,
                f"{shown}: the printer does not answer ({status.reason})",
                f"check it is switched on, its cable, and {where.key}.transport and port; "
                "a printer that does not answer cannot print receipts",
            )
        ]
    ticket = context.test_ticket()
    job = printer.print_receipt(ticket, ticket.invoice_number)
    if job.state is not JobState.PRINTED:
        return [
            fail(
                name,
                f"{shown}: the test ticket did not print ({job.reason})",
                "check the printer's power, paper and cable",
            )
        ]
    context.ticket = ticket.invoice_number
    notes = "; paper low" if status.reason == "paper low" else ""
    if blind:
        notes += "; this connection cannot report paper or cover state"
    found = [
        ok(
            name,
            f"{shown}: test ticket {ticket.invoice_number} printed{notes}",
            f"check it shows terminal {context.terminal_id} and is cut cleanly",
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


def _check_serial(
    section: SerialPrinterConfig, context: CheckContext, where: Where
) -> list[Finding]:
    return check_printer(
        section,
        context,
        where,
        open_printer=lambda: serial_printer(section),
        shown=section.port,
        path_key="port",
    )


def _check_file(section: FilePrinterConfig, context: CheckContext, where: Where) -> list[Finding]:
    return check_printer(
        section,
        context,
        where,
        open_printer=lambda: file_printer(section),
        shown=section.path,
        path_key="path",
    )


def _check_network(
    section: NetworkPrinterConfig, context: CheckContext, where: Where
) -> list[Finding]:
    return check_printer(
        section,
        context,
        where,
        open_printer=lambda: network_printer(section),
        shown=f"{section.host}:{section.port}",
        path_key=None,
    )


# ---------------------------------------------------------------- posd provision

_SERIAL = "serial:"
_TCP = "tcp://"


def _serial_answer(answer: Attached) -> Recognition | None:
    if answer.name.startswith(_SERIAL):
        return Recognition("likely", "serial: names a printer on a serial port")
    name = answer.name
    if name.startswith("/") and (name.startswith("/dev/serial/") or answer.node == "serial"):
        return Recognition("likely", "a serial port")
    return None


def _serial_table(answer: str) -> dict[str, Any]:
    port = answer.removeprefix(_SERIAL)
    if not port.startswith("/"):
        raise ValueError(f"{answer!r}: write a printer on a serial port as serial:/dev/…")
    return {"transport": "serial", "port": port}


def _serial_back(table: Mapping[str, Any]) -> str:
    port = str(table.get("port"))
    return port if port.startswith("/dev/serial/") else _SERIAL + port


def _file_answer(answer: Attached) -> Recognition | None:
    return Recognition("possible", "a device file") if answer.name.startswith("/") else None


def _network_answer(answer: Attached) -> Recognition | None:
    if answer.name.startswith(_TCP):
        return Recognition("likely", "a network address")
    if not answer.name.startswith("/") and ":" in answer.name:
        return Recognition("possible", "host:port")
    return None


def _network_table(answer: str) -> dict[str, Any]:
    host, _, port = answer.removeprefix(_TCP).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{answer!r}: write a network printer as tcp://host:9100")
    return {"transport": "network", "host": host, "port": int(port)}


def _network_back(table: Mapping[str, Any]) -> str:
    return f"{_TCP}{table.get('host')}:{table.get('port', 9100)}"


SERIAL_PRINTER: DeviceKind[SerialPrinterConfig, Escpos] = DeviceKind(
    name="serial",
    role=PRINTER,
    section=SerialPrinterConfig,
    build=serial_printer,
    check=_check_serial,
    recognise=_serial_answer,
    path_key="port",
    label="serial",
    example="serial:/dev/serial/by-id/…",
    table=_serial_table,
    answer=_serial_back,
)

FILE_PRINTER: DeviceKind[FilePrinterConfig, Escpos] = DeviceKind(
    name="file",
    role=PRINTER,
    section=FilePrinterConfig,
    build=file_printer,
    check=_check_file,
    recognise=_file_answer,
    path_key="path",
    label="USB",
    example="a device path (/dev/posd-printer)",
)

NETWORK_PRINTER: DeviceKind[NetworkPrinterConfig, Escpos] = DeviceKind(
    name="network",
    role=PRINTER,
    section=NetworkPrinterConfig,
    build=network_printer,
    check=_check_network,
    recognise=_network_answer,
    label="network",
    example="tcp://host:9100",
    table=_network_table,
    answer=_network_back,
)
