"""The lane's ledger operations, carried out on the ledger thread (`LaneLedger.perform`).

Each `LedgerOp` the rules decided on maps to one ledger call (a durable transaction):
a sale (the ledger records the override of each unit a manager let through, and
refuses a unit nobody approved that needs one), a return, a delivery, an attendant's
release, a refused attempt to act as a manager, a void of a sold line (a correction),
a write-off, and the steps of a stock count. The ledger checks and decides; nothing
here reads the ledger's tables or runs the unit rules. A `Refusal` goes back to the
rules as `LedgerDone(refused=...)`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.stocktake import close_count, count_scan, open_or_resume
from daemon.rules.lane.types import (
    CloseCount,
    CountScan,
    LedgerDone,
    LedgerOp,
    OpenCount,
    ReceiveUnits,
    RecordRefusedManager,
    RecordRelease,
    ReturnUnit,
    SellBasket,
    VoidSold,
    WriteOff,
)
from daemon.rules.units import Op


def perform(ledger: Ledger, actor: str, op: LedgerOp) -> LedgerDone:
    """Carry out `op`; raises `Refusal` when the ledger says no."""
    if isinstance(op, SellBasket):
        _sell(ledger, actor, op)
    elif isinstance(op, ReturnUnit):
        ledger.return_unit(
            op.invoice,
            op.product,
            op.serial,
            actor=actor,
            condition=op.condition,
            disposition=op.disposition,
        )
    elif isinstance(op, ReceiveUnits):
        # One receipt per product and lot: a unit's GS1 code may carry lot and expiry.
        by_lot: dict[tuple[str, str | None, date | None], list[str]] = defaultdict(list)
        for unit in op.units:
            by_lot[(unit.product.code, unit.lot, unit.expiry)].append(unit.serial)
        for (code, lot, expiry), serials in by_lot.items():
            ledger.receive(
                op.po,
                op.supplier,
                code,
                serials,
                actor=actor,
                quantity=len(serials),
                lot=lot,
                expiry=expiry,
            )
    elif isinstance(op, RecordRelease):
        ledger.record_release(op.attendant, method=op.method, code=op.code, message=op.message)
    elif isinstance(op, RecordRefusedManager):
        ledger.record_refused_manager(
            actor=actor,
            who=op.who,
            method=op.method,
            action=op.action,
            code=op.code,
            message=op.message,
        )
    elif isinstance(op, VoidSold):
        ledger.void_sale(
            op.invoice,
            op.product,
            op.serial,
            actor=actor,
            manager=op.manager,
            reason=f"sale line voided at lane {ledger.terminal}",
            description=op.description,
        )
    elif isinstance(op, WriteOff):
        ledger.move(
            Op.WRITE_OFF,
            [UnitRef(op.product, op.serial)],
            actor=actor,
            reason=op.reason,
            manager=op.manager,
        )
    elif isinstance(op, OpenCount):
        return LedgerDone(op.op_id, details=_open_count(ledger, actor, op.argument))
    elif isinstance(op, CountScan):
        outcome = count_scan(ledger, op.count, op.product, op.serial, actor=actor)
        return LedgerDone(op.op_id, details=outcome.details)
    elif isinstance(op, CloseCount):
        outcome = close_count(ledger, op.count, actor=actor)
        return LedgerDone(op.op_id, details=outcome.details["report"])
    return LedgerDone(op.op_id)


def _sell(ledger: Ledger, actor: str, op: SellBasket) -> None:
    basket = op.basket
    lines = [
        SaleLine(line.product.code, line.serial, line.price_cents, line.quantity, line.approved_by)
        for line in basket.lines
    ]
    ledger.sell(basket.invoice, basket.customer, lines, actor=actor)


def _open_count(ledger: Ledger, actor: str, argument: str) -> dict[str, Any]:
    count = open_or_resume(ledger, argument, actor=actor)
    return {
        "count": count.count,
        "product": count.product,
        "scanned": count.scanned,
        "resumed": count.resumed,
    }
