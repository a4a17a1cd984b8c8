"""Selling: scanning items into the basket, serials, voids, and paying.

A serialized product needs its unit: scan the product's barcode and then its serial,
or one GS1 DataMatrix (GTIN + serial), or the serial alone when only one product has
it. Each unit is judged by the unit state machine (`daemon.rules.units.decide`) on
what the ledger knows, plus one rule of the basket's own: a unit only once.
"""

from __future__ import annotations

from dataclasses import replace

from daemon.rules.barcode import PlainLabel, ProductCode, UnitCode
from daemon.rules.lane import text
from daemon.rules.lane.manager import offer_override
from daemon.rules.lane.steps import (
    Step,
    accept,
    basket_lines,
    open_basket,
    prompt,
    refuse,
    with_op,
)
from daemon.rules.lane.types import (
    BasketLine,
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
    Scanned,
    SellBasket,
    Tender,
    UnitFacts,
)
from daemon.rules.units import Op, Refused, Request, decide
from daemon.rules.values import NAME
from daemon.rules.warranty import add_months


def scan_in_sale(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    """A product, unit or label scanned while idle or in a sale."""
    parsed, facts = event.parsed, event.facts
    if isinstance(parsed, ProductCode):
        if facts.product is None:
            return refuse(state, cfg, "unknown_product", _no_product(parsed.code))
        return add_product(state, facts.product, cfg)
    if isinstance(parsed, UnitCode):
        return _unit_code(state, parsed, event, cfg)
    assert isinstance(parsed, PlainLabel)
    if len(facts.units) == 1:
        return sell_unit(state, facts.units[0], cfg)
    if len(facts.units) > 1:
        return _ambiguous(state, parsed.text, facts.units, cfg)
    if facts.product is not None:
        return add_product(state, facts.product, cfg)
    return refuse(
        state,
        cfg,
        "unknown_unit",
        f'"{parsed.text}" is neither a serial nor a product code in the ledger; '
        "check the label, or scan the product's barcode",
    )


def scan_serial(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    """A scan while the lane waits for the serial of `state.pending_product`.

    Only a unit of that product answers the question: it goes into the basket (or is
    refused for what the ledger says of it, and the lane asks again). Anything else (a
    unit or barcode of another product, an unknown serial) is refused with the reason
    and the lane keeps waiting: the item is never dropped or swapped without a word.
    VOID takes it off, CANCEL drops the sale, and the serial deadline drops it with a
    refusal that says so."""
    pending = state.pending_product
    assert pending is not None
    parsed, facts = event.parsed, event.facts
    if isinstance(parsed, ProductCode):
        return _product_while_waiting(state, pending, facts.product, cfg)
    serial = parsed.serial if isinstance(parsed, UnitCode) else getattr(parsed, "text", "")
    if isinstance(parsed, UnitCode) and facts.product is not None:
        if facts.product.code != pending.code:
            return _not_the_pending(state, pending, facts.product.name, cfg)
    elif isinstance(parsed, UnitCode) and parsed.gtin is not None:
        return refuse(state, cfg, "unknown_product", _no_product(parsed.gtin), pending.name)
    mine = [unit for unit in facts.units if unit.product.code == pending.code]
    if mine:
        after, effects = sell_unit(state, mine[0], cfg)
        verdict = effects.verdict
        if after.mode is Mode.AWAITING_SERIAL and verdict is not None:
            # That unit may not be sold: the item still waits for a serial it may.
            said = f"{verdict.message}; scan another {pending.name}'s serial, or VOID it"
            return after, replace(effects, prompt=said, verdict=replace(verdict, message=said))
        return after, effects
    if facts.units:
        others = " or ".join(sorted({unit.product.name for unit in facts.units}))
        return _not_the_pending(state, pending, f'{others} serial "{serial}"', cfg)
    if isinstance(parsed, PlainLabel) and facts.product is not None:
        return _product_while_waiting(state, pending, facts.product, cfg)
    return refuse(
        state,
        cfg,
        "unknown_unit",
        f'{pending.name} serial "{serial}" is not in the ledger; check the serial on the '
        f"unit and scan it again (or VOID the {pending.name})",
        pending.name,
    )


def _product_while_waiting(
    state: LaneState, pending: ProductFacts, product: ProductFacts | None, cfg: LaneSettings
) -> Step:
    """A product barcode while a serial is owed: the same product asks again; any other
    is refused (the waiting item is not swapped for it)."""
    if product is not None and product.code == pending.code:
        return prompt(state, "serial_needed", f"scan the serial number of the {pending.name}")
    what = f"the {product.name}" if product is not None else "another item"
    return refuse(
        state,
        cfg,
        "serial_expected",
        f"scan the serial number of the {pending.name} first (or VOID it); {what} was not added",
        pending.name,
    )


def _not_the_pending(state: LaneState, pending: ProductFacts, what: str, cfg: LaneSettings) -> Step:
    """A unit of another product while the serial of `pending` is owed."""
    return refuse(
        state,
        cfg,
        "wrong_product",
        f"that is a {what}, not the {pending.name} waiting for its serial: scan the "
        f"{pending.name}'s serial first (or VOID it); nothing was added",
        pending.name,
    )


def add_product(state: LaneState, product: ProductFacts, cfg: LaneSettings) -> Step:
    """A product barcode: ask for the serial, or put a plain item in the basket."""
    if state.basket is None:
        state = open_basket(state, cfg)
    if product.serial_tracked:
        waiting = state.evolve(
            mode=Mode.AWAITING_SERIAL,
            pending_product=product,
            serial_for=Mode.IN_SALE,
        )
        return prompt(waiting, "serial_needed", f"scan the serial number of the {product.name}")
    assert state.basket is not None
    basket = replace(
        state.basket, lines=(*state.basket.lines, BasketLine(product, product.price_cents))
    )
    added = state.evolve(mode=Mode.IN_SALE, basket=basket)
    return accept(added, "item_added", f"{product.name} {text.money(product.price_cents)}")


def sell_unit(state: LaneState, unit: UnitFacts, cfg: LaneSettings) -> Step:
    """Put one unit in the basket if the ledger says it may be sold here and now."""
    name = unit.product.name
    if not unit.product.serial_tracked:
        return add_product(state, unit.product, cfg)
    if state.basket is not None and state.basket.holds(unit.product.code, unit.key):
        return refuse(
            state,
            cfg,
            "duplicate_in_basket",
            f"{unit.view.label} is already in this basket; each unit is sold once",
            name,
        )
    verdict = decide(unit.view, Request(Op.SELL, cfg.branch))
    if isinstance(verdict, Refused):
        return offer_override(state, unit, verdict, cfg)
    if state.basket is None:
        state = open_basket(state, cfg)
    assert state.basket is not None
    line = BasketLine(unit.product, unit.product.price_cents, unit.serial, unit.key)
    basket = replace(state.basket, lines=(*state.basket.lines, line))
    added = state.evolve(mode=Mode.IN_SALE, basket=basket, pending_product=None, serial_for=None)
    return accept(added, "unit_added", f"{unit.view.label} {text.money(line.price_cents)}")


def tender(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    """Pay: the sale goes to the ledger; the receipt prints once it is durable."""
    basket = state.basket
    if state.mode is Mode.AWAITING_SERIAL:
        name = state.pending_product.name if state.pending_product else "item"
        return refuse(
            state, cfg, "serial_expected", f"scan the serial of the {name} (or VOID it) first"
        )
    if basket is None or not basket.lines:
        return refuse(state, cfg, "empty_basket", "there is nothing in the basket to pay for")
    method, _, amount = event.argument.partition(":")
    method = method.strip().upper() or "CASH"
    paid = text.cents(amount) if amount else None
    if amount and paid is None:
        return refuse(
            state,
            cfg,
            "bad_tender",
            f"tender {event.argument!r} is not METHOD or METHOD:AMOUNT (e.g. CASH:50.00)",
        )
    if paid is not None and paid < basket.total_cents:
        return refuse(
            state,
            cfg,
            "short_tender",
            f"{text.money(paid)} paid but the total is {text.money(basket.total_cents)}",
        )
    sending, op_id = with_op(state)
    op = SellBasket(op_id, basket, Tender(method, paid))
    return sending.evolve(pending=op), Effects(ledger=op)


def sale_saved(state: LaneState, event: LedgerDone, now: Now, cfg: LaneSettings) -> Step:
    op = state.pending
    assert isinstance(op, SellBasket)
    if event.refused:
        code = event.refused[0][0]
        back = state.evolve(pending=None, mode=Mode.IN_SALE)
        return refuse(back, cfg, code, "; ".join(m for _, m in event.refused))
    basket, paid = op.basket, op.tender
    amount = paid.amount_cents if paid.amount_cents is not None else basket.total_cents
    receipt = ReceiptSpec(
        invoice=basket.invoice,
        issued_at=now.wall,
        lines=tuple(_receipt_line(line, now) for line in basket.lines),
        tenders=((paid.method.title(), amount),),
    )
    change = amount - basket.total_cents
    display = (
        "THANK YOU",
        text.row("CHANGE", text.money(change))
        if change
        else text.row("TOTAL", text.money(basket.total_cents)),
    )
    done = state.evolve(
        mode=Mode.IDLE,
        basket=None,
        pending=None,
        last_receipt=receipt,
        receipt_waiting=None,
        last_sale=basket,
    )
    message = (
        f"invoice {basket.invoice}: {len(basket.lines)} line(s), "
        f"total {text.money(basket.total_cents)}"
    )
    return accept(
        done, "sale_complete", message, display, receipt=receipt, open_drawer=paid.method == "CASH"
    )


def void(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    """Take a line off the basket (`VOID:2`: the second line; `VOID`: the last)."""
    if state.mode is Mode.AWAITING_SERIAL:
        name = state.pending_product.name if state.pending_product else "item"
        back = _back(state)
        return accept(back, "voided", f"{name} taken off: no serial scanned", beep=None)
    basket = state.basket
    if basket is None or not basket.lines:
        return refuse(state, cfg, "nothing_to_void", "the basket is empty")
    number = len(basket.lines)
    if event.argument:
        if not event.argument.isdigit() or not 1 <= int(event.argument) <= len(basket.lines):
            return refuse(
                state,
                cfg,
                "nothing_to_void",
                f"line {event.argument!r} is not in the basket (lines 1 to {len(basket.lines)})",
            )
        number = int(event.argument)
    gone = basket.lines[number - 1]
    lines = basket.lines[: number - 1] + basket.lines[number:]
    after = state.evolve(basket=replace(basket, lines=lines))
    display = (text.row("VOID " + gone.product.name), basket_lines(after.basket)[1])
    if not lines:
        display = (display[0], text.row("TOTAL", text.money(0)))
    label = gone.product.name + (f' serial "{gone.serial}"' if gone.serial else "")
    return accept(after, "voided", f"line {number} ({label}) voided", display, beep=None)


def start(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    """Open a sale for a named customer (or the walk-in customer)."""
    if state.basket is not None and state.basket.lines:
        return refuse(state, cfg, "sale_open", "a sale is already open; pay or CANCEL it first")
    named = event.argument.strip()
    problem = NAME.problem(named, "customer") if named else None
    if problem is not None:  # refused now, not when the sale is paid
        return refuse(state, cfg, "bad_value", problem)
    if state.basket is None:
        state = open_basket(state, cfg, event.argument.strip())
    elif event.argument.strip():
        state = state.evolve(basket=replace(state.basket, customer=event.argument.strip()))
    assert state.basket is not None
    return accept(
        state,
        "sale_started",
        f"sale {state.basket.invoice} for {state.basket.customer}",
        text.WELCOME,
        beep=None,
    )


def cancel_sale(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    invoice = state.basket.invoice if state.basket else "sale"
    idle = state.evolve(mode=Mode.IDLE, basket=None, pending_product=None, serial_for=None)
    return accept(
        idle,
        "cancelled",
        f"{invoice} cancelled; nothing was sold",
        ("SALE CANCELLED", ""),
        beep=None,
    )


def serial_timed_out(state: LaneState, cfg: LaneSettings) -> Step:
    name = state.pending_product.name if state.pending_product else "item"
    back = _back(state)
    return refuse(
        back,
        cfg,
        "serial_timeout",
        f"no serial was scanned for the {name}; it is not in the basket",
        name,
    )


def _unit_code(state: LaneState, parsed: UnitCode, event: Scanned, cfg: LaneSettings) -> Step:
    product, units = event.facts.product, event.facts.units
    if parsed.gtin is not None and product is None:
        return refuse(state, cfg, "unknown_product", _no_product(parsed.gtin))
    if product is not None and not product.serial_tracked:
        return add_product(state, product, cfg)
    mine = [u for u in units if product is None or u.product.code == product.code]
    if len(mine) == 1:
        return sell_unit(state, mine[0], cfg)
    if len(mine) > 1:
        return _ambiguous(state, parsed.serial, tuple(mine), cfg)
    what = product.name if product is not None else "IMEI"
    return refuse(
        state,
        cfg,
        "unknown_unit",
        f'{what} serial "{parsed.serial}" is not in the ledger; it was never received here',
        product.name if product else None,
    )


def _ambiguous(
    state: LaneState, serial: str, units: tuple[UnitFacts, ...], cfg: LaneSettings
) -> Step:
    names = " and ".join(sorted(unit.product.name for unit in units))
    return refuse(
        state,
        cfg,
        "ambiguous_serial",
        f'serial "{serial}" belongs to {names}; scan the product\'s barcode, then the serial',
    )


def _back(state: LaneState) -> LaneState:
    """Leave AWAITING_SERIAL for the mode the serial was for."""
    mode = state.serial_for or Mode.IN_SALE
    return state.evolve(mode=mode, pending_product=None, serial_for=None)


def _no_product(code: str) -> str:
    return f"barcode {code} is not a product in the ledger; add the product at the back office"


def _receipt_line(line: BasketLine, now: Now) -> ReceiptLineSpec:
    months = line.product.warranty_months
    ends = add_months(now.wall.date(), months) if line.serial and months > 0 else None
    return ReceiptLineSpec(
        line.product.name,
        line.price_cents * line.quantity,
        line.serial,
        line.product.mask_serial,
        ends,
    )
