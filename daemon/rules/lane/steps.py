"""The building blocks every lane transition is made of: accept, refuse, lock, prompt.

Each returns the lane's next state and the effects to carry out, so a handler in the
table reads as one sentence: `return refuse(state, cfg, "already_sold", message, label)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from daemon.rules.lane import text
from daemon.rules.lane.types import (
    Approval,
    Basket,
    Beep,
    Command,
    Effects,
    LaneSettings,
    LaneState,
    Light,
    Lock,
    Mode,
    Verdict,
)

Step = tuple[LaneState, Effects]

# Where the lane waits for something, the light says so.
_WAITING_LIGHT = {
    Mode.AWAITING_SERIAL: Light.AMBER,
    Mode.RETURN: Light.AMBER,
    Mode.RECEIVING: Light.AMBER,
    Mode.ATTENDANT_NEEDED: Light.RED_BLINKING,
    Mode.MANAGER_NEEDED: Light.AMBER,
    Mode.WRITE_OFF: Light.AMBER,
    Mode.OUT_OF_SERVICE: Light.RED_BLINKING,
}


def light_for(mode: Mode) -> Light:
    return _WAITING_LIGHT.get(mode, Light.GREEN)


def basket_lines(basket: Basket | None) -> tuple[str, str]:
    """The display of a basket at rest: its last line and the total."""
    if basket is None or not basket.lines:
        return text.WELCOME
    last = basket.lines[-1]
    return (
        text.row(last.product.name, text.money(last.price_cents * last.quantity)),
        text.row("TOTAL", text.money(basket.total_cents)),
    )


def waiting_display(approval: Approval) -> tuple[str, str]:
    """The display while the lane waits for a manager."""
    if approval.action == "override":
        first = text.refusal(approval.code).words
    elif approval.line is not None:
        first = "VOID " + approval.line.product.name
    elif approval.unit is not None:
        first = "WRITE OFF " + approval.unit.product.name
    else:
        first = "MANAGER NEEDED"
    ask = "MANAGER OVERRIDE?" if approval.action == "override" else "MANAGER APPROVAL?"
    return text.line(first), ask


def idle_display(devices: Mapping[str, str]) -> tuple[str, str]:
    """The display at rest: a welcome, or which device to check before anyone scans."""
    shown = [name for name in devices if name != "display"]
    if not shown:
        return text.WELCOME
    scanner_gone = any(name.startswith("scanner") for name in shown)
    missing = sorted({name.split()[0].upper() for name in shown})
    first = text.line("CHECK " + " ".join(missing))
    return first, "PLEASE WAIT" if scanner_gone else text.WELCOME[1]


def resting_display(state: LaneState) -> tuple[str, str]:
    """What the display shows in `state` when nothing has just happened."""
    if state.mode is Mode.AWAITING_SERIAL and state.pending_product is not None:
        return (text.line(state.pending_product.name), "SCAN SERIAL NUMBER")
    if state.mode is Mode.RETURN:
        if state.document is None:
            return text.RETURNS
        return (text.row("RETURN", state.document), "SCAN THE UNIT")
    if state.mode is Mode.RECEIVING:
        if state.document is None:
            return text.RECEIVING
        return (text.row("PO", state.document), text.row("UNITS", str(len(state.received))))
    if state.mode is Mode.ATTENDANT_NEEDED:
        return text.LOCKED
    if state.mode is Mode.MANAGER_NEEDED and state.approval is not None:
        return waiting_display(state.approval)
    if state.mode is Mode.WRITE_OFF:
        if state.pending_product is not None:
            return (text.line(state.pending_product.name), "SCAN SERIAL NUMBER")
        return text.WRITE_OFF
    if state.mode is Mode.COUNTING:
        return (text.line(f"COUNT {state.document or ''}"), text.row("SCANNED", str(state.counted)))
    if state.mode is Mode.OUT_OF_SERVICE:
        return text.CLOSED
    if state.basket is None or not state.basket.lines:
        return idle_display(state.devices)
    return basket_lines(state.basket)


def accept(
    state: LaneState,
    code: str,
    message: str,
    display: tuple[str, str] | None = None,
    *,
    beep: Beep | None = Beep.ACCEPT,
    **more: object,
) -> Step:
    """The input did what was asked: green (or the mode's light), a short beep."""
    shown = display or resting_display(state)
    effects = Effects(
        display=shown,
        light=light_for(state.mode),
        beep=beep,
        prompt=message,
        verdict=Verdict("accepted", code, message),
        **more,  # type: ignore[arg-type]
    )
    return state, effects


def prompt(
    state: LaneState, code: str, message: str, display: tuple[str, str] | None = None
) -> Step:
    """The lane now waits for something (a serial, a receipt, a PO): amber, no beep."""
    shown = display or resting_display(state)
    return state, Effects(
        display=shown,
        light=light_for(state.mode),
        prompt=message,
        verdict=Verdict("prompt", code, message),
    )


def ignore(state: LaneState, code: str, message: str) -> Step:
    """Nothing changes, but the kiosk and the audit record say why."""
    return state, Effects(prompt=message, verdict=Verdict("ignored", code, message))


def refuse(
    state: LaneState,
    cfg: LaneSettings,
    code: str,
    message: str,
    label: str | None = None,
    *,
    resume: Mode | None = None,
) -> Step:
    """Refuse an input. A self-checkout locks and calls an attendant when the refusal
    is one a customer cannot put right; a cashier sees red, hears a long beep and reads
    the reason. `state` is where the lane stays (or goes back to once released)."""
    words = text.refusal(code)
    if cfg.self_checkout and words.locks:
        return lock(state, code, message, resume=resume or state.mode)
    display = (text.line(label or "NOT ACCEPTED"), words.words)
    return state, Effects(
        display=display,
        light=Light.RED,
        beep=Beep.REJECT,
        prompt=message,
        verdict=Verdict("refused", code, message),
    )


def lock(
    state: LaneState,
    code: str,
    message: str,
    *,
    resume: Mode,
    pending: Command | None = None,
) -> Step:
    """Wait for an attendant's badge or PIN; nothing but that releases the lane."""
    if state.mode is Mode.ATTENDANT_NEEDED and state.lock is not None:
        return ignore(state, "already_locked", f"an attendant is already called: {message}")
    locked = state.evolve(mode=Mode.ATTENDANT_NEEDED, lock=Lock(code, message, resume, pending))
    return locked, Effects(
        display=text.LOCKED,
        light=Light.RED_BLINKING,
        beep=Beep.ATTENDANT,
        prompt=f"attendant needed: {message}",
        verdict=Verdict("refused", code, message),
    )


def staff(cfg: LaneSettings) -> LaneSettings:
    """Settings for refusals to staff at work (counting stock, writing a unit off): a
    self-checkout does not lock and call an attendant who is already there."""
    return replace(cfg, self_checkout=False) if cfg.self_checkout else cfg


def with_op(state: LaneState, **changes: object) -> tuple[LaneState, int]:
    """`state` with `changes` and a fresh ledger operation id taken."""
    op_id = state.next_op
    return state.evolve(next_op=op_id + 1, **changes), op_id


def open_basket(state: LaneState, cfg: LaneSettings, customer: str = "") -> LaneState:
    """A new, empty basket with the lane's next invoice number."""
    invoice = f"{cfg.terminal}-{state.next_invoice:06d}"
    return state.evolve(
        mode=Mode.IN_SALE,
        basket=Basket(invoice, customer or cfg.walk_in_customer),
        next_invoice=state.next_invoice + 1,
    )
