"""After a restart: was the basket that was open when the lane stopped paid for?

The journal says which basket was open (or which sale's receipt never got a print
result); the ledger says whether that invoice exists. A sale is one transaction, so
it is either wholly there or wholly absent, and the lane shows which.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from daemon.lane.ledger import LaneLedger
from daemon.rules.lane.types import LaneSettings, ReceiptLineSpec, ReceiptSpec, Recovered
from daemon.rules.warranty import add_months


def recover(ledger: LaneLedger, settings: LaneSettings) -> Recovered | None:
    """What the lane should say at start, or None when it stopped with nothing open.

    Runs on the ledger thread (`LaneLedger.call`)."""
    journal = ledger.journal
    open_basket = journal.open_basket()
    invoice = open_basket.invoice if open_basket is not None else journal.unprinted_sale()
    if invoice is None:
        return None
    facts = ledger.lookup.invoice(invoice)
    if not facts.exists:
        return Recovered(invoice, saved=False) if open_basket is not None else None
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
