"""The doctor's device checks: printer, customer display, lights and buzzer, scanners.

Each configured section is checked by its own device kind (`DeviceKind.check`, with its
driver), which drives the device through the same driver and section the lane uses, so
what passes here works in `posd run`. Nothing is written to a port the configuration
does not name. What is left here is the doctor's side: one check per role, the test
ticket (which terminal this is and how to reach it), and what a kind's check may use
of the doctor's run.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from gpiozero.pins import Factory

from daemon.doctor.findings import Check, Context, DoctorOptions, Finding, skip
from daemon.doctor.system import local_addresses
from daemon.drivers.checks import Where
from daemon.drivers.display.kind import DISPLAY
from daemon.drivers.gpio import GPIO
from daemon.drivers.printer import Receipt, ReceiptLine
from daemon.drivers.printer_transport import PRINTER
from daemon.drivers.registry import DeviceRole
from daemon.drivers.scanner import SCANNER


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


class _Run:
    """What a device kind's check may use of this doctor run (`CheckContext`)."""

    def __init__(self, context: Context) -> None:
        self._context = context

    @property
    def options(self) -> DoctorOptions:
        return self._context.options

    @property
    def terminal_id(self) -> str:
        return self._context.config.terminal.id

    @property
    def factory(self) -> Factory | None:
        return self._context.factory

    @property
    def ticket(self) -> str | None:
        return self._context.ticket

    @ticket.setter
    def ticket(self, number: str | None) -> None:
        self._context.ticket = number

    def say(self, text: str) -> None:
        self._context.say(text)

    def scanner_open(self) -> None:
        self._context.scanner_listening.set()

    def wait_for_ticket(self) -> None:
        self._context.ticket_settled.wait()

    def test_ticket(self) -> Receipt:
        return test_ticket(self._context)


def role_check(role: DeviceRole[Any, Any]) -> Check:
    """The doctor's check of every section of `role`, each by its own kind."""

    def check(context: Context) -> Sequence[Finding]:
        placed = context.config.sections(role)
        if not placed:
            return [skip(role.name, f"no {role.title} configured")]
        run = _Run(context)
        found: list[Finding] = []
        for index, (key, section) in enumerate(placed):
            name = role.name
            if len(placed) > 1:
                name += f" {getattr(section, 'name', None) or index + 1}"
            kind = context.kinds.kind_of(section)
            found += kind.check(section, run, Where(name, key))
        return found

    return check


check_printer = role_check(PRINTER)
check_display = role_check(DISPLAY)
check_gpio = role_check(GPIO)
check_scanners = role_check(SCANNER)
