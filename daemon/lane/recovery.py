"""After a restart: was the basket that was open when the lane stopped paid for, and
which receipts does the printer still owe?

The journal says which basket was open (or which sale's receipt never got a print
result); the ledger says whether that invoice exists. A sale is one transaction, so
it is either wholly there or wholly absent, and the lane shows which. A receipt the
printer could not print (out of paper, offline) is owed until it has printed, also
across a restart: the journal says which, and the lane prints each by itself, once,
as soon as the printer can (`ReceiptOwed`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from daemon.lane.ledger import LaneLedger
from daemon.rules.lane.types import (
    Input,
    LaneSettings,
    ReceiptLineSpec,
    ReceiptOwed,
    ReceiptSpec,
    Recovered,
)
from daemon.rules.warranty import add_months


def recover(ledger: LaneLedger, settings: LaneSettings) -> list[Input]:
    """What the lane should say and do at start: the sale that was open (`Recovered`),
    then each receipt still owed (`ReceiptOwed`); nothing when all was done.

    Runs on the ledger thread (`LaneLedger.call`)."""
    journal = ledger.journal
    owed = [receipt for receipt in map(ledger_receipt(ledger), journal.owed_receipts()) if receipt]
    said = _last_sale(ledger)
    if said is not None and any(receipt.invoice == said.invoice for receipt in owed):
        # Known not printed: it prints by itself below, no REPRINT needed.
        said = Recovered(said.invoice, saved=True, total_cents=said.total_cents)
    inputs: list[Input] = [said] if said is not None else []
    return inputs + [ReceiptOwed(receipt) for receipt in owed]


def ledger_receipt(ledger: LaneLedger) -> Callable[[str], ReceiptSpec | None]:
    """The receipt of an invoice as the ledger has it (None: no such sale here)."""

    def receipt(invoice: str) -> ReceiptSpec | None:
        recovered = _receipt(ledger, invoice)
        return recovered.receipt if recovered is not None else None

    return receipt


def _last_sale(ledger: LaneLedger) -> Recovered | None:
    journal = ledger.journal
    open_basket = journal.open_basket()
    invoice = open_basket.invoice if open_basket is not None else journal.unprinted_sale()
    if invoice is None:
        return None
    recovered = _receipt(ledger, invoice)
    if recovered is None:
        return Recovered(invoice, saved=False) if open_basket is not None else None
    return recovered


def _receipt(ledger: LaneLedger, invoice: str) -> Recovered | None:
    facts = ledger.lookup.invoice(invoice)
    if not facts.exists:
        return None
    sold_at = ledger.lookup.sold_at(invoice) or _today()
    lines = tuple(
        ReceiptLineSpec(
            line.product.name,
            line.price_cents * line.quantity,
            line.serial,
            line.product.mask_serial,
            add_months(sold_at.date(), line.product.warranty_months)
            if line.serial and line.product.warranty_months > 0
            else None,
        )
        for line in facts.lines
    )
    receipt = ReceiptSpec(invoice, sold_at, lines)
    return Recovered(invoice, saved=True, total_cents=receipt.total_cents, receipt=receipt)


def _today() -> datetime:
    return datetime.combine(date.today(), datetime.min.time(), UTC)
