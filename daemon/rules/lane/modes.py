"""Return mode and receiving mode: a document first, then the units it covers.

Return: scan the invoice (the barcode on the customer's receipt), then the unit. Only
the unit that invoice sold may come back; the ledger decides and records a wrong unit.
Receiving: scan the purchase order, then units (one GS1 code each, or a product
barcode followed by as many of its serials as arrived), then DONE writes them.
"""

from __future__ import annotations

from datetime import date

from daemon.rules.barcode import PlainLabel, ProductCode, UnitCode
from daemon.rules.lane import text
from daemon.rules.lane.steps import Step, accept, prompt, refuse, with_op
from daemon.rules.lane.types import (
    Command,
    Effects,
    LaneSettings,
    LaneState,
    LedgerDone,
    Mode,
    Now,
    ProductFacts,
    ReceiptLineSpec,
    ReceiptSpec,
    ReceivedUnit,
    ReceiveUnits,
    ReturnUnit,
    Scanned,
    UnitFacts,
)
from daemon.rules.serials import SerialError, check_serial
from daemon.rules.units import Op, Refused, Request, decide

# ------------------------------------------------------------------------- returns


def enter_return(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if state.basket is not None and state.basket.lines:
        return refuse(state, cfg, "sale_open", "pay or CANCEL the open sale before a return")
    returning = state.evolve(
        mode=Mode.RETURN, basket=None, document=None, invoice=None, pending_product=None
    )
    return prompt(returning, "return_mode", "return: scan the barcode on the customer's receipt")


def scan_in_return(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    parsed, facts = event.parsed, event.facts
    if state.document is None:
        if not isinstance(parsed, PlainLabel):
            return refuse(
                state, cfg, "invoice_expected", "scan the receipt's barcode before the unit"
            )
        if facts.invoice is None or not facts.invoice.exists:
            return refuse(
                state,
                cfg,
                "unknown_invoice",
                f"there is no invoice {parsed.text} in the ledger; scan the barcode at the "
                "foot of the customer's receipt",
            )
        found = state.evolve(document=facts.invoice.number, invoice=facts.invoice)
        sold = ", ".join(
            f'{line.product.name} "{line.serial}"' for line in facts.invoice.lines if line.serial
        )
        return prompt(
            found,
            "invoice_found",
            f"invoice {parsed.text} sold {sold or 'no units'}; scan the unit",
        )
    if isinstance(parsed, ProductCode):
        if facts.product is None:
            return refuse(state, cfg, "unknown_product", f"barcode {parsed.code} is not a product")
        if not facts.product.serial_tracked:
            return refuse(
                state,
                cfg,
                "not_serialized",
                f"{facts.product.name} has no serial; refund it at the service desk",
            )
        waiting = state.evolve(
            mode=Mode.AWAITING_SERIAL,
            pending_product=facts.product,
            serial_for=Mode.RETURN,
        )
        return prompt(waiting, "serial_needed", f"scan the serial of the {facts.product.name}")
    serial = parsed.serial if isinstance(parsed, UnitCode) else getattr(parsed, "text", "")
    product = facts.product if isinstance(parsed, UnitCode) else None
    return take_back(state, serial, product, facts.units, cfg)


def take_back(
    state: LaneState,
    serial: str,
    product: ProductFacts | None,
    units: tuple[UnitFacts, ...],
    cfg: LaneSettings,
) -> Step:
    """Ask the ledger to take `serial` back on the invoice; it refuses (and records) a
    unit that invoice did not sell."""
    invoice, document = state.invoice, state.document
    assert invoice is not None and document is not None
    state = state.evolve(mode=Mode.RETURN, pending_product=None, serial_for=None)
    candidates = [u for u in units if product is None or u.product.code == product.code]
    sold = {(line.product.code, line.key): line for line in invoice.lines}
    chosen = next((u for u in candidates if (u.product.code, u.key) in sold), None)
    chosen = chosen or (candidates[0] if candidates else None)
    if chosen is not None:
        code, name, printed = chosen.product.code, chosen.product.name, chosen.serial
    else:
        fallback = product or (invoice.lines[0].product if invoice.lines else None)
        if fallback is None:
            return refuse(state, cfg, "unknown_unit", f'serial "{serial}" is not in the ledger')
        code, name, printed = fallback.code, fallback.name, serial
    line = sold.get((code, chosen.key if chosen else None))
    refund = line.price_cents if line else 0
    sending, op_id = with_op(state)
    op = ReturnUnit(
        op_id,
        document,
        code,
        printed,
        cfg.return_condition,
        cfg.return_disposition,
        refund,
        name,
    )
    return sending.evolve(pending=op), Effects(ledger=op)


def return_saved(state: LaneState, event: LedgerDone, now: Now, cfg: LaneSettings) -> Step:
    op = state.pending
    assert isinstance(op, ReturnUnit)
    state = state.evolve(pending=None)
    if event.refused:
        code, message = event.refused[0]
        return refuse(state, cfg, code, message, op.description or "RETURN")
    slip = ReceiptSpec(
        invoice=f"R{op.op_id}-{op.invoice}",
        issued_at=now.wall,
        lines=(ReceiptLineSpec(f"Return: {op.description}", -op.refund_cents, op.serial),),
        tenders=(("Refund", -op.refund_cents),),
        footer=(f"Returned on invoice {op.invoice}",),
    )
    display = ("RETURN ACCEPTED", text.row("REFUND", text.money(op.refund_cents)))
    message = f'{op.description} serial "{op.serial}" taken back on invoice {op.invoice}'
    return accept(
        state.evolve(last_receipt=slip), "return_accepted", message, display, receipt=slip
    )


# ----------------------------------------------------------------------- receiving


def enter_receiving(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if state.basket is not None and state.basket.lines:
        return refuse(state, cfg, "sale_open", "pay or CANCEL the open sale before receiving")
    receiving = state.evolve(
        mode=Mode.RECEIVING,
        basket=None,
        document=None,
        received=(),
        supplier=event.argument.strip() or cfg.supplier,
    )
    return prompt(receiving, "receiving_mode", "receiving: scan the purchase order")


def scan_in_receiving(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    parsed, facts = event.parsed, event.facts
    if state.document is None:
        if not isinstance(parsed, PlainLabel):
            return refuse(state, cfg, "po_expected", "scan the purchase order before the units")
        with_po = state.evolve(document=parsed.text)
        return prompt(with_po, "po_found", f"PO {parsed.text}: scan the units that arrived")
    if isinstance(parsed, ProductCode):
        if facts.product is None:
            return refuse(state, cfg, "unknown_product", f"barcode {parsed.code} is not a product")
        if not facts.product.serial_tracked:
            return refuse(
                state, cfg, "not_serialized", f"{facts.product.name} is not received by serial"
            )
        waiting = state.evolve(
            mode=Mode.AWAITING_SERIAL,
            pending_product=facts.product,
            serial_for=Mode.RECEIVING,
        )
        return prompt(waiting, "serial_needed", f"scan the serials of the {facts.product.name}")
    if isinstance(parsed, UnitCode) and facts.product is not None:
        return receive_unit(
            state, facts.product, parsed.serial, facts.units, cfg, parsed.lot, parsed.expiry
        )
    return refuse(
        state,
        cfg,
        "product_expected",
        "scan the product's barcode first, then each of its serials",
    )


def receive_unit(
    state: LaneState,
    product: ProductFacts,
    serial: str,
    units: tuple[UnitFacts, ...],
    cfg: LaneSettings,
    lot: str | None = None,
    expiry: date | None = None,
) -> Step:
    """Add one unit to the delivery, unless it is already here or already scanned
    (`lot`, `expiry`: what its GS1 code says)."""
    try:
        key = check_serial(serial)
    except SerialError as problem:
        return refuse(state, cfg, "bad_serial", str(problem), product.name)
    if any(u.product.code == product.code and u.key == key for u in state.received):
        return refuse(
            state,
            cfg,
            "duplicate_in_document",
            f'{product.name} serial "{serial}" is already scanned on this delivery',
            product.name,
        )
    for unit in units:
        if unit.product.code == product.code:
            verdict = decide(unit.view, Request(Op.RECEIVE, cfg.branch))
            if isinstance(verdict, Refused):
                return refuse(state, cfg, verdict.code, verdict.message, product.name)
    received = (*state.received, ReceivedUnit(product, serial, key, lot, expiry))
    added = state.evolve(received=received)
    display = (text.line(f"{product.name}"), text.row("UNITS", str(len(received))))
    return accept(added, "unit_received", f'{product.name} serial "{serial}" scanned', display)


def finish_receiving(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if not state.received or state.document is None:
        idle = state.evolve(mode=Mode.IDLE, document=None, received=())
        return accept(idle, "receiving_done", "nothing was received", text.WELCOME, beep=None)
    sending, op_id = with_op(state, mode=Mode.RECEIVING, pending_product=None, serial_for=None)
    op = ReceiveUnits(op_id, state.document, state.supplier, state.received)
    return sending.evolve(pending=op), Effects(ledger=op)


def receiving_saved(state: LaneState, event: LedgerDone, now: Now, cfg: LaneSettings) -> Step:
    op = state.pending
    assert isinstance(op, ReceiveUnits)
    state = state.evolve(pending=None)
    if event.refused:
        code = event.refused[0][0]
        return refuse(state, cfg, code, "; ".join(m for _, m in event.refused), "RECEIVING")
    idle = state.evolve(mode=Mode.IDLE, document=None, received=())
    count = len(op.units)
    display = (text.line(f"RECEIVED {count} UNITS"), text.row("PO", op.po))
    return accept(idle, "received", f"{count} unit(s) received on PO {op.po}", display)


def void_received(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if not state.received:
        return refuse(state, cfg, "nothing_to_void", "no unit is scanned on this delivery yet")
    gone = state.received[-1]
    after = state.evolve(received=state.received[:-1])
    return accept(
        after, "voided", f'{gone.product.name} serial "{gone.serial}" taken off', beep=None
    )


def leave_mode(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    """CANCEL or DONE in return mode, CANCEL in receiving: back to idle."""
    dropped = len(state.received)
    idle = state.evolve(
        mode=Mode.IDLE,
        document=None,
        invoice=None,
        received=(),
        pending_product=None,
        serial_for=None,
        reason="",
    )
    message = f"{dropped} scanned unit(s) dropped" if dropped else "back to selling"
    return accept(idle, "mode_left", message, text.WELCOME, beep=None)
