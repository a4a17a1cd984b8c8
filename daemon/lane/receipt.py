"""Receipts: from the lane's `ReceiptSpec` to the printer driver's `Receipt`, and the
same receipt as plain text for the kiosk (the customer's e-receipt on screen)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from daemon.drivers.printer import Receipt, ReceiptLine, ReceiptTender, SerialShown, mask_serial
from daemon.rules.lane.text import money
from daemon.rules.lane.types import ReceiptSpec

WIDTH = 42


@dataclass(frozen=True)
class ReceiptHeader:
    """What every receipt of this lane carries besides its lines."""

    store: str
    branch: str
    terminal: str
    cashier: str
    currency: str = ""
    footer: tuple[str, ...] = ()


def _amount(cents: int) -> Decimal:
    return Decimal(cents) / 100


def receipt_of(spec: ReceiptSpec, header: ReceiptHeader) -> Receipt:
    return Receipt(
        store=header.store,
        branch=header.branch,
        terminal_id=header.terminal,
        invoice_number=spec.invoice,
        issued_at=spec.issued_at,
        cashier=header.cashier,
        lines=tuple(
            ReceiptLine(
                line.description,
                _amount(line.price_cents),
                serial=line.serial,
                serial_shown=SerialShown.MASKED if line.mask_serial else SerialShown.FULL,
                warranty_ends=line.warranty_ends,
            )
            for line in spec.lines
        ),
        tenders=tuple(ReceiptTender(method, _amount(cents)) for method, cents in spec.tenders),
        footer=spec.footer + header.footer,
        currency=header.currency,
    )


def receipt_text(spec: ReceiptSpec, header: ReceiptHeader) -> str:
    """The receipt as lines of text, laid out as printed (serials masked the same way)."""

    def row(left: str, right: str) -> str:
        room = WIDTH - len(right) - 1
        return left[:room].ljust(room) + " " + right

    out = [header.store, header.branch]
    out.append(row(f"Terminal {header.terminal}", f"Invoice {spec.invoice}"))
    out.append(row(spec.issued_at.strftime("%Y-%m-%d %H:%M"), f"Cashier {header.cashier}"))
    out.append("-" * WIDTH)
    for line in spec.lines:
        out.append(row(line.description, money(line.price_cents)))
        if line.serial:
            shown = mask_serial(line.serial) if line.mask_serial else line.serial
            out.append(f"  S/N {shown}")
        if line.warranty_ends:
            out.append(f"  Warranty until {line.warranty_ends.isoformat()}")
    out.append("-" * WIDTH)
    out.append(row("TOTAL", money(spec.total_cents)))
    paid = 0
    for method, cents in spec.tenders:
        out.append(row(method, money(cents)))
        paid += cents
    if paid > spec.total_cents > 0:
        out.append(row("Change", money(paid - spec.total_cents)))
    out.extend(spec.footer + header.footer)
    return "\n".join(out)
