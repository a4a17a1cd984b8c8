"""What only a manager may do at the lane: lift a refusal a manager may override (a unit
at another branch or in transit), void a line of a completed sale, write a unit off.

The lane asks for a manager (`Mode.MANAGER_NEEDED`, "MANAGER OVERRIDE?" or "MANAGER
APPROVAL?" on the display); a manager's badge scan or PIN approves, and the ledger
event that follows names the manager (the override event before the sale, the
correction, the write-off). Anyone else's badge or PIN is refused, and the attempt is
recorded in the ledger. CANCEL, a deadline, or scanning the next item drops the
request: nothing is done.
"""

from __future__ import annotations

from dataclasses import replace

from daemon.rules.barcode import PlainLabel, ProductCode, UnitCode
from daemon.rules.lane import text
from daemon.rules.lane.steps import (
    Step,
    accept,
    ignore,
    light_for,
    open_basket,
    prompt,
    refuse,
    resting_display,
    staff,
    waiting_display,
    with_op,
)
from daemon.rules.lane.types import (
    Approval,
    BasketLine,
    Beep,
    Command,
    Effects,
    LaneSettings,
    LaneState,
    LedgerDone,
    ManagerApproval,
    Mode,
    Now,
    ReceiptLineSpec,
    ReceiptSpec,
    RecordRefusedManager,
    Scanned,
    UnitFacts,
    Verdict,
    VoidSold,
    WriteOff,
)
from daemon.rules.serials import SerialError, check_serial
from daemon.rules.units import Op, Refused, Request, decide

OVERRIDE, VOID_SOLD, WRITE_OFF = "override", "void_sold", "write_off"


def _call_manager(state: LaneState, approval: Approval, *, beep: Beep | None) -> Step:
    waiting = state.evolve(mode=Mode.MANAGER_NEEDED, approval=approval)
    message = (
        f"{approval.message}; a manager may approve with their badge or PIN (CANCEL: leave it)"
    )
    outcome = "refused" if approval.action == OVERRIDE else "prompt"
    return waiting, Effects(
        display=waiting_display(approval),
        light=light_for(Mode.MANAGER_NEEDED),
        beep=beep,
        prompt=message,
        verdict=Verdict(outcome, approval.code, message),
    )


# ------------------------------------------------------------------------ overrides


def offer_override(state: LaneState, unit: UnitFacts, refused: Refused, cfg: LaneSettings) -> Step:
    """A unit a manager may still let through (at another branch, in transit). A
    self-checkout calls an attendant, as for any other refusal."""
    if cfg.self_checkout or not refused.overridable:
        return refuse(state, cfg, refused.code, refused.message, unit.product.name)
    approval = Approval(OVERRIDE, refused.code, refused.message, state.mode, unit=unit)
    return _call_manager(state, approval, beep=Beep.REJECT)


def _override_approved(state: LaneState, manager: str, method: str, cfg: LaneSettings) -> Step:
    approval = state.approval
    assert approval is not None and approval.unit is not None
    unit = approval.unit
    back = state.evolve(mode=approval.resume, approval=None)
    verdict = decide(unit.view, Request(Op.SELL, cfg.branch, manager=manager))
    if isinstance(verdict, Refused):  # cannot happen for an overridable refusal; be safe
        return refuse(back, cfg, verdict.code, verdict.message, unit.product.name)
    if back.basket is not None and back.basket.holds(unit.product.code, unit.key):
        return refuse(
            back,
            cfg,
            "duplicate_in_basket",
            f"{unit.view.label} is already in this basket; each unit is sold once",
            unit.product.name,
        )
    if back.basket is None:
        back = open_basket(back, cfg)
    assert back.basket is not None
    line = BasketLine(
        unit.product, unit.product.price_cents, unit.serial, unit.key, approved_by=manager
    )
    added = back.evolve(
        mode=Mode.IN_SALE,
        basket=replace(back.basket, lines=(*back.basket.lines, line)),
        pending_product=None,  # the unit a serial was awaited for, if it was that
        serial_for=None,
    )
    overridden = ", ".join(verdict.overridden) or approval.code
    message = (
        f"{unit.view.label} {text.money(line.price_cents)} added: {overridden} overridden "
        f"by {manager} ({method})"
    )
    return accept(added, "override_approved", message)


# ---------------------------------------------------------- void of a completed sale


def void_sold(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    """VOID with no basket open: a line of a completed sale. `VOID` or `VOID:2` is a line
    of this lane's last sale; `VOID:INVOICE:SERIAL` the unit sold on any invoice."""
    argument = event.argument.strip()
    if ":" in argument:
        invoice, _, serial = argument.partition(":")
        return _void_on_invoice(state, event, invoice.strip(), serial.strip(), cfg)
    sale = state.last_sale
    if sale is None or not sale.lines:
        return refuse(
            state,
            cfg,
            "nothing_to_void",
            "no sale has been completed at this lane since it started; VOID:INVOICE:SERIAL "
            "voids the unit sold on any invoice",
        )
    number = len(sale.lines)
    if argument:
        if not argument.isdigit() or not 1 <= int(argument) <= len(sale.lines):
            return refuse(
                state,
                cfg,
                "nothing_to_void",
                f"line {argument!r} is not on invoice {sale.invoice} "
                f"(lines 1 to {len(sale.lines)})",
            )
        number = int(argument)
    return _ask_void(state, sale.invoice, sale.lines[number - 1], f"line {number}", cfg)


def _void_on_invoice(
    state: LaneState, event: Command, invoice: str, serial: str, cfg: LaneSettings
) -> Step:
    found = event.facts.invoice
    if found is None or not found.exists:
        return refuse(
            state,
            cfg,
            "unknown_invoice",
            f"there is no invoice {invoice!r} in the ledger; VOID:INVOICE:SERIAL takes the "
            "number printed under the receipt's barcode",
        )
    try:
        key = check_serial(serial)
    except SerialError as problem:
        return refuse(state, cfg, "bad_serial", str(problem))
    for line in found.lines:
        if line.key == key:
            sold = BasketLine(line.product, line.price_cents, line.serial, line.key)
            return _ask_void(state, found.number, sold, None, cfg)
    return refuse(
        state,
        cfg,
        "not_on_invoice",
        f'invoice {found.number} sold no unit with serial "{serial}"; check the receipt',
    )


def _ask_void(
    state: LaneState, invoice: str, line: BasketLine, which: str | None, cfg: LaneSettings
) -> Step:
    """`which`: the line's number on the last sale (None: named by its serial)."""
    price = text.money(line.price_cents * line.quantity)
    if line.serial is None:
        return refuse(
            state,
            cfg,
            "plain_item_void",
            f"{which} of invoice {invoice} ({line.product.name}) has no serial; refund it "
            "at the service desk",
        )
    unit = f'{line.product.name} serial "{line.serial}"'
    if which is None:
        message = f"void the sale of {unit} on invoice {invoice} ({price})"
    else:
        message = f"void {which} of invoice {invoice}: {unit} ({price})"
    approval = Approval(
        VOID_SOLD, "manager_needed", message, state.mode, line=line, invoice=invoice
    )
    return _call_manager(state, approval, beep=None)


# ------------------------------------------------------------------------ write-off


def enter_write_off(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    reason = event.argument.strip() or f"written off at lane {cfg.terminal}"
    writing = state.evolve(
        mode=Mode.WRITE_OFF, basket=None, pending_product=None, reason=reason, document=None
    )
    return prompt(writing, "write_off_mode", f"write-off ({reason}): scan the unit")


def scan_write_off(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    """The unit to write off (or its product's barcode, then its serial)."""
    parsed, facts = event.parsed, event.facts
    cfg = staff(cfg)
    if isinstance(parsed, ProductCode) or (
        isinstance(parsed, PlainLabel) and not facts.units and facts.product is not None
    ):
        product = facts.product
        if product is None:
            code = parsed.code if isinstance(parsed, ProductCode) else parsed.text
            return refuse(state, cfg, "unknown_product", f"barcode {code} is not a product")
        if not product.serial_tracked:
            return refuse(
                state, cfg, "not_serialized", f"{product.name} is not written off by serial here"
            )
        waiting = state.evolve(pending_product=product)
        return prompt(
            waiting,
            "serial_needed",
            f"scan the serial of the {product.name} to write off",
            (text.line(product.name), "SCAN SERIAL NUMBER"),
        )
    wanted = state.pending_product or (facts.product if isinstance(parsed, UnitCode) else None)
    units = [u for u in facts.units if wanted is None or u.product.code == wanted.code]
    serial = parsed.serial if isinstance(parsed, UnitCode) else getattr(parsed, "text", "")
    if not units:
        return refuse(
            state,
            cfg,
            "unknown_unit",
            f'serial "{serial}" is not in the ledger'
            + (f" as a {wanted.name}" if wanted else "")
            + "; check the label",
        )
    if len(units) > 1:
        names = " and ".join(sorted(u.product.name for u in units))
        return refuse(
            state,
            cfg,
            "ambiguous_serial",
            f'serial "{serial}" belongs to {names}; scan the product\'s barcode first',
        )
    unit = units[0]
    if unit.view.branch != cfg.branch:
        return refuse(
            state,
            cfg,
            "wrong_branch",
            f"{unit.view.label} is at branch {unit.view.branch}; write it off there",
            unit.product.name,
        )
    verdict = decide(unit.view, Request(Op.WRITE_OFF, cfg.branch, manager="a manager"))
    if isinstance(verdict, Refused):
        return refuse(state, cfg, verdict.code, verdict.message, unit.product.name)
    message = f"write off {unit.view.label} ({state.reason})"
    approval = Approval(
        WRITE_OFF, "manager_needed", message, Mode.WRITE_OFF, unit=unit, reason=state.reason
    )
    return _call_manager(state.evolve(pending_product=None), approval, beep=None)


# ------------------------------------------------------------- the manager answers


def manager_badge(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    assert isinstance(event.parsed, PlainLabel)
    return approve(state, ManagerApproval(cfg.managers[event.parsed.text], "badge"), now, cfg)


def approve(state: LaneState, event: ManagerApproval, now: Now, cfg: LaneSettings) -> Step:
    approval = state.approval
    assert approval is not None
    if state.pending is not None:
        return ignore(state, "approving", "the last answer is still being recorded")
    if event.manager is None:
        return _record_refusal(state, "a PIN that is no manager's", event.method)
    manager = event.manager
    if approval.action == OVERRIDE:
        return _override_approved(state, manager, event.method, cfg)
    sending, op_id = with_op(state)
    approved = f"approved by {manager} ({event.method})"
    if approval.action == VOID_SOLD:
        line, invoice = approval.line, approval.invoice
        assert line is not None and line.serial is not None and invoice is not None
        op: VoidSold | WriteOff = VoidSold(
            op_id,
            invoice,
            line.product.code,
            line.serial,
            line.product.name,
            line.price_cents * line.quantity,
            manager,
        )
    else:
        unit = approval.unit
        assert unit is not None
        op = WriteOff(
            op_id, unit.product.code, unit.serial, unit.product.name, approval.reason, manager
        )
    return sending.evolve(pending=op), Effects(ledger=op, prompt=approved)


def not_a_manager(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    """An attendant's badge where a manager's is needed."""
    assert isinstance(event.parsed, PlainLabel)
    if state.pending is not None:
        return ignore(state, "approving", "the last answer is still being recorded")
    return _record_refusal(state, f"{cfg.badges[event.parsed.text]} (attendant)", "badge")


def _record_refusal(state: LaneState, who: str, method: str) -> Step:
    approval = state.approval
    assert approval is not None
    sending, op_id = with_op(state)
    op = RecordRefusedManager(op_id, who, method, approval.action, approval.code, approval.message)
    return sending.evolve(pending=op), Effects(ledger=op, prompt=f"{who} is not a manager")


def approval_done(state: LaneState, event: LedgerDone, now: Now, cfg: LaneSettings) -> Step:
    op, approval = state.pending, state.approval
    assert approval is not None
    state = state.evolve(pending=None)
    if isinstance(op, RecordRefusedManager):
        message = f"{op.who}: not a manager ({op.method}); a manager's badge or PIN is needed"
        return state, Effects(
            display=(text.line("NOT A MANAGER"), waiting_display(approval)[1]),
            light=light_for(Mode.MANAGER_NEEDED),
            beep=Beep.REJECT,
            prompt=message,
            verdict=Verdict("refused", "not_a_manager", message),
        )
    back = state.evolve(mode=approval.resume, approval=None)
    if event.refused:
        code = event.refused[0][0]
        label = op.description if isinstance(op, VoidSold | WriteOff) else None
        return refuse(back, cfg, code, "; ".join(m for _, m in event.refused), label)
    if isinstance(op, VoidSold):
        slip = ReceiptSpec(
            invoice=f"V{op.op_id}-{op.invoice}",
            issued_at=now.wall,
            lines=(ReceiptLineSpec(f"Void: {op.description}", -op.refund_cents, op.serial),),
            tenders=(("Refund", -op.refund_cents),),
            footer=(f"Voided on invoice {op.invoice}", f"Approved by {op.manager}"),
        )
        message = (
            f'{op.description} serial "{op.serial}" voided on invoice {op.invoice}, '
            f"approved by {op.manager}"
        )
        display = (
            text.line("VOIDED " + op.description),
            text.row("REFUND", text.money(op.refund_cents)),
        )
        return accept(
            back.evolve(last_receipt=slip), "sale_line_voided", message, display, receipt=slip
        )
    assert isinstance(op, WriteOff)
    message = (
        f'{op.description} serial "{op.serial}" written off ({op.reason}), approved by {op.manager}'
    )
    display = ("WRITTEN OFF", text.line(op.description))
    message += "; scan the next unit to write off, or DONE"
    return accept(back, "written_off_here", message, display)


def decline(state: LaneState, event: object, now: Now, cfg: LaneSettings) -> Step:
    """CANCEL (or the deadline): nothing that needed the manager is done."""
    approval = state.approval
    assert approval is not None
    back = state.evolve(mode=approval.resume, approval=None)
    if approval.action == OVERRIDE and approval.unit is not None:
        message = f"{approval.unit.view.label} not added: no manager overrode {approval.code}"
    else:
        message = f"not done: {approval.message} (no manager approved it)"
    return accept(back, "not_approved", message, resting_display(back), beep=None)


def not_waiting(state: LaneState, event: object, now: Now, cfg: LaneSettings) -> Step:
    return ignore(state, "no_approval_needed", "the lane is not waiting for a manager")
