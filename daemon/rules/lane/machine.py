"""The lane's state machine: pure, and driven by one transition table.

    plan = plan_lookup(state, parsed, cfg)        # what the ledger must be asked
    facts = <the wiring asks the ledger>
    state, effects = step(state, Scanned(parsed, facts), now, cfg)

`step` never reads a clock (`now` is passed) and does no I/O: the effects say what the
display, light and buzzer show, which ledger operation to carry out, and which receipt
to print once that operation is durable. The answer of a ledger operation comes back
as the input `LedgerDone`.

`TABLE` maps (mode, input kind) to the handler; inputs a mode does not list fall to
`ANY_MODE`, and whatever is in neither is refused as "not now". Out of service has one
way in (`ServiceFault`) and one way out (`ServiceRestored`, once the wiring finds the
ledger writable again): every other input is ignored meanwhile. A ledger held busy by
another program (`Busy`) is not a fault: the input is refused as "busy, try again".
A self-checkout lane locks on any refusal a customer cannot put right and on the
commands only an attendant may give; an attendant's badge or PIN releases it, and the
release is recorded in the ledger before the lane moves on. What only a manager may do
(an override, a void of a sold line, a write-off) waits in MANAGER_NEEDED for a
manager's badge or PIN (`daemon.rules.lane.manager`); a stock count is its own mode
(`daemon.rules.lane.count`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from daemon.rules.barcode import (
    CommandCode,
    ParseResult,
    PlainLabel,
    ProductCode,
    Rejected,
    UnitCode,
)
from daemon.rules.lane import text
from daemon.rules.lane.count import (
    count_saved,
    finish_count,
    leave_count,
    scan_in_count,
    start_count,
)
from daemon.rules.lane.imei import imei_digits, read_imei
from daemon.rules.lane.manager import (
    approval_done,
    approve,
    decline,
    enter_write_off,
    manager_badge,
    not_a_manager,
    not_waiting,
    scan_write_off,
    void_sold,
)
from daemon.rules.lane.modes import (
    enter_receiving,
    enter_return,
    finish_receiving,
    leave_mode,
    receive_unit,
    receiving_saved,
    return_saved,
    scan_in_receiving,
    scan_in_return,
    take_back,
    void_received,
)
from daemon.rules.lane.sale import (
    cancel_sale,
    sale_saved,
    scan_in_sale,
    scan_serial,
    start,
    tender,
    void,
)
from daemon.rules.lane.service import (
    bad_scan,
    badge,
    call_for_help,
    device_changed,
    device_status,
    ledger_busy,
    not_locked,
    printed,
    receipt_owed,
    recovered,
    release,
    reprint,
    scanner_trouble,
    still_locked,
    tick,
)
from daemon.rules.lane.steps import (
    Step,
    accept,
    ignore,
    light_for,
    lock,
    prompt,
    refuse,
    resting_display,
)
from daemon.rules.lane.types import (
    AttendantRelease,
    Beep,
    Busy,
    Command,
    CommandName,
    DeviceChanged,
    Effects,
    Input,
    LaneSettings,
    LaneState,
    LedgerDone,
    Light,
    LookupPlan,
    ManagerApproval,
    Mode,
    Now,
    Printed,
    ProductFacts,
    ReceiptOwed,
    RecordRelease,
    Recovered,
    Scanned,
    ScannerTrouble,
    ServiceFault,
    ServiceRestored,
    Tick,
    Verdict,
)

Handler = Callable[[LaneState, Any, Now, LaneSettings], Step]

# Commands a self-checkout customer cannot give: the lane calls an attendant, and runs
# the command once the attendant has released it.
ATTENDANT_ONLY = frozenset(
    {
        CommandName.VOID,
        CommandName.RETURN,
        CommandName.RECEIVE,
        CommandName.REPRINT,
        CommandName.COUNT,
        CommandName.WRITEOFF,
    }
)


def initial_state(next_invoice: int = 1) -> LaneState:
    return LaneState(display=text.WELCOME, next_invoice=next_invoice)


def plan_lookup(state: LaneState, parsed: ParseResult, cfg: LaneSettings) -> LookupPlan:
    """What the ledger must be asked before `parsed` can be decided in `state`."""
    imei = imei_digits(parsed)
    if imei is not None:  # a GTIN-14 or an IMEI-14: both are looked up (lane/imei.py)
        gtin = parsed.gtin if isinstance(parsed, ProductCode) else None
        return LookupPlan(gtin=gtin, serial=imei)
    if isinstance(parsed, ProductCode):
        return LookupPlan(gtin=parsed.gtin, product_code=None if parsed.gtin else parsed.code)
    if isinstance(parsed, UnitCode):
        return LookupPlan(gtin=parsed.gtin, serial=parsed.serial)
    if not isinstance(parsed, PlainLabel) or parsed.text in cfg.badges:
        return LookupPlan()
    if parsed.text in cfg.managers:
        return LookupPlan()
    if state.mode in (Mode.ATTENDANT_NEEDED, Mode.OUT_OF_SERVICE):
        return LookupPlan()
    if state.mode is Mode.RETURN and state.document is None:
        return LookupPlan(invoice=parsed.text)
    if state.mode is Mode.RECEIVING and state.document is None:
        return LookupPlan()  # a purchase order number, taken as scanned
    return LookupPlan(serial=parsed.text, product_code=parsed.text)


def plan_command(state: LaneState, command: Command) -> LookupPlan:
    """What the ledger must be asked before `command` can be decided: the invoice of a
    `VOID:INVOICE:SERIAL` given with no basket open."""
    no_basket = state.basket is None or not state.basket.lines
    if command.name is CommandName.VOID and ":" in command.argument and no_basket:
        return LookupPlan(invoice=command.argument.partition(":")[0].strip())
    return LookupPlan()


def kind_of(event: Input, cfg: LaneSettings) -> str:
    """The input's row name in `TABLE`."""
    if isinstance(event, Scanned):
        parsed = event.parsed
        if isinstance(parsed, Rejected):
            return "rejected"
        if isinstance(parsed, PlainLabel):
            if parsed.text in cfg.badges:
                return "badge"
            if parsed.text in cfg.managers:
                return "manager badge"
        return "item"
    if isinstance(event, Command):
        return f"command {event.name.value}"
    return _KINDS[type(event)]


_KINDS: dict[type, str] = {
    ScannerTrouble: "scanner trouble",
    AttendantRelease: "release",
    ManagerApproval: "manager",
    Tick: "tick",
    LedgerDone: "ledger done",
    Printed: "printed",
    DeviceChanged: "device",
    Recovered: "recovered",
    Busy: "busy",
    ReceiptOwed: "receipt owed",
}


def step(state: LaneState, event: Input, now: Now, cfg: LaneSettings) -> Step:
    """The lane's next state and what to do, for one input at `now`."""
    if state.mode is Mode.OUT_OF_SERVICE:
        if isinstance(event, ServiceRestored):
            back = _back_in_service(state)
            return _remember(back, deadline=_deadline(back[0], now, cfg))
        if isinstance(event, Tick | Busy):
            return state, Effects()
        return ignore(state, "out_of_service", f"the lane is out of service: {state.failure}")
    if isinstance(event, ServiceRestored):
        return state, Effects()  # in service already
    if isinstance(event, ServiceFault):
        return _remember(_out_of_service(state, event.message))
    if state.notice is not None and _by_a_person(event) and not isinstance(event, LedgerDone):
        state = state.evolve(notice=None)  # said; the lane is in use again
    if isinstance(event, Scanned) and isinstance(event.parsed, CommandCode):
        command = _command_from(event.parsed, event.source)
        if isinstance(command, str):
            return _remember(refuse(state, cfg, "unknown_command", command))
        event = command
    if isinstance(event, Scanned):
        event = read_imei(event, state)
    if (
        isinstance(event, Command)
        and cfg.self_checkout
        and _attendant_only(state, event)
        and state.mode is not Mode.ATTENDANT_NEEDED
    ):
        return _remember(
            lock(
                state,
                "attendant_only",
                f"{event.name.value} needs an attendant at a self-checkout",
                resume=state.mode,
                pending=event,
            )
        )
    before = state.mode
    after, effects = dispatch(state, event, now, cfg)
    if _by_a_person(event) or after.mode is not before:
        return _remember((after, effects), deadline=_deadline(after, now, cfg))
    return _remember((after, effects))


def dispatch(state: LaneState, event: Input, now: Now, cfg: LaneSettings) -> Step:
    kind = kind_of(event, cfg)
    handler = TABLE.get((state.mode, kind)) or ANY_MODE.get(kind)
    if handler is None:
        what = kind.replace("command ", "")
        return refuse(
            state,
            cfg,
            "not_now",
            f"{what} cannot be done now ({state.mode.value.replace('_', ' ')})",
        )
    return handler(state, event, now, cfg)


# ------------------------------------------------------------------ mode dispatch


def _awaiting_serial(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    pending = state.pending_product
    assert pending is not None
    parsed = event.parsed
    if state.serial_for is Mode.RETURN and isinstance(parsed, PlainLabel):
        units = tuple(u for u in event.facts.units if u.product.code == pending.code)
        return take_back(state, parsed.text, pending, units, cfg)
    if state.serial_for is Mode.RECEIVING and isinstance(parsed, PlainLabel):
        # Serials of one product come in a row: the lane keeps waiting for the next.
        return receive_unit(state, pending, parsed.text, event.facts.units, cfg)
    if state.serial_for is Mode.RETURN:
        return _return_awaiting(state, pending, event, cfg)
    if state.serial_for is Mode.RECEIVING:
        # A whole unit (GS1) is received and the serials of `pending` may go on; another
        # product's barcode names the product the serials that follow are of (the
        # prompt says so). Nothing scanned before is dropped either way.
        return scan_in_receiving(state, event, now, cfg)
    return scan_serial(state, event, now, cfg)


def _return_awaiting(
    state: LaneState, pending: ProductFacts, event: Scanned, cfg: LaneSettings
) -> Step:
    """A scan while a return waits for the serial of `pending`: a unit of that product
    is taken back; a unit or barcode of another product is refused, never returned
    in its place."""
    parsed, facts = event.parsed, event.facts
    product = facts.product
    if isinstance(parsed, ProductCode) and product is not None and product.code == pending.code:
        return prompt(state, "serial_needed", f"scan the serial of the {pending.name}")
    if isinstance(parsed, UnitCode) and (product is None or product.code == pending.code):
        units = tuple(u for u in facts.units if u.product.code == pending.code)
        return take_back(state, parsed.serial, pending, units, cfg)
    what = f"the {product.name}" if product is not None else "that"
    return refuse(
        state,
        cfg,
        "wrong_product",
        f"the return waits for the serial of the {pending.name}: scan it (or VOID to choose "
        f"another item); {what} was not taken back",
        pending.name,
    )


def _cancel_awaiting(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if state.serial_for in (Mode.RETURN, Mode.RECEIVING):
        return leave_mode(state, event, now, cfg)
    return cancel_sale(state, event, now, cfg)


def _done_awaiting(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if state.serial_for is Mode.RECEIVING:
        return finish_receiving(_resume(state), event, now, cfg)
    if state.serial_for is Mode.RETURN:
        return leave_mode(state, event, now, cfg)
    return refuse(state, cfg, "serial_expected", "scan the serial (or VOID the item) first")


def _void_awaiting(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if state.serial_for in (Mode.RETURN, Mode.RECEIVING):
        back = _resume(state)
        return accept(back, "voided", "no serial needed any more", beep=None)
    return void(state, event, now, cfg)


def _resume(state: LaneState) -> LaneState:
    return state.evolve(
        mode=state.serial_for or Mode.IN_SALE, pending_product=None, serial_for=None
    )


def _drop_and_take(state: LaneState, event: Input, now: Now, cfg: LaneSettings) -> Step:
    """Another item scanned, or the sale carried on, while a manager is called: what
    needed the manager is dropped (not done), and the input is taken as usual."""
    dropped, said = decline(state, event, now, cfg)
    after, effects = dispatch(dropped, event, now, cfg)
    if said.verdict is None:
        return after, effects
    if effects.verdict is None:  # e.g. TENDER: the ledger's answer comes next
        return after, replace(
            effects,
            verdict=said.verdict,
            prompt=effects.prompt or said.prompt,
            display=effects.display or said.display,
        )
    both = f"{said.verdict.message}; {effects.verdict.message}"
    return after, replace(effects, verdict=replace(effects.verdict, message=both))


def _released(state: LaneState, event: LedgerDone, now: Now, cfg: LaneSettings) -> Step:
    held, op = state.lock, state.pending
    assert held is not None and isinstance(op, RecordRelease)
    if event.refused:  # e.g. the ledger was busy: not recorded, so not released
        code, message = event.refused[0]
        still = state.evolve(pending=None)
        said = f"the release by {op.attendant} could not be recorded ({message}); try again"
        return still, Effects(prompt=said, verdict=Verdict("refused", code, said))
    back = state.evolve(mode=held.resume, lock=None, pending=None)
    said = f"released by {op.attendant} ({op.method}) after {held.code}"
    if held.pending is not None:
        after, effects = dispatch(back, held.pending, now, cfg)
        verdict = effects.verdict or Verdict("accepted", "released", said)
        return after, replace(
            effects,
            beep=effects.beep or Beep.STOP,
            light=effects.light or light_for(after.mode),
            display=effects.display or resting_display(after),
            verdict=replace(verdict, message=f"{said}; {verdict.message}"),
        )
    return accept(back, "released", said, beep=Beep.STOP)


# --------------------------------------------------------------------- the table

M, C = Mode, CommandName


def _cmd(name: CommandName) -> str:
    return f"command {name.value}"


TABLE: dict[tuple[Mode, str], Handler] = {
    (M.IDLE, "item"): scan_in_sale,
    (M.IDLE, _cmd(C.START)): start,
    (M.IDLE, _cmd(C.TENDER)): tender,
    (M.IDLE, _cmd(C.RETURN)): enter_return,
    (M.IDLE, _cmd(C.RECEIVE)): enter_receiving,
    (M.IDLE, _cmd(C.CANCEL)): cancel_sale,
    (M.IN_SALE, "item"): scan_in_sale,
    (M.IN_SALE, _cmd(C.START)): start,
    (M.IN_SALE, _cmd(C.VOID)): void,
    (M.IN_SALE, _cmd(C.CANCEL)): cancel_sale,
    (M.IN_SALE, _cmd(C.TENDER)): tender,
    (M.IN_SALE, _cmd(C.RETURN)): enter_return,
    (M.IN_SALE, _cmd(C.RECEIVE)): enter_receiving,
    (M.IN_SALE, "ledger done"): sale_saved,
    (M.AWAITING_SERIAL, "item"): _awaiting_serial,
    (M.AWAITING_SERIAL, _cmd(C.VOID)): _void_awaiting,
    (M.AWAITING_SERIAL, _cmd(C.CANCEL)): _cancel_awaiting,
    (M.AWAITING_SERIAL, _cmd(C.DONE)): _done_awaiting,
    (M.AWAITING_SERIAL, _cmd(C.TENDER)): tender,
    (M.RETURN, "item"): scan_in_return,
    (M.RETURN, _cmd(C.CANCEL)): leave_mode,
    (M.RETURN, _cmd(C.DONE)): leave_mode,
    (M.RETURN, "ledger done"): return_saved,
    (M.RECEIVING, "item"): scan_in_receiving,
    (M.RECEIVING, _cmd(C.VOID)): void_received,
    (M.RECEIVING, _cmd(C.CANCEL)): leave_mode,
    (M.RECEIVING, _cmd(C.DONE)): finish_receiving,
    (M.RECEIVING, "ledger done"): receiving_saved,
    (M.IDLE, _cmd(C.VOID)): void_sold,
    (M.IDLE, _cmd(C.COUNT)): start_count,
    (M.IDLE, _cmd(C.WRITEOFF)): enter_write_off,
    (M.MANAGER_NEEDED, "manager badge"): manager_badge,
    (M.MANAGER_NEEDED, "manager"): approve,
    (M.MANAGER_NEEDED, "badge"): not_a_manager,
    (M.MANAGER_NEEDED, "ledger done"): approval_done,
    (M.MANAGER_NEEDED, "item"): _drop_and_take,
    (M.MANAGER_NEEDED, _cmd(C.TENDER)): _drop_and_take,
    (M.MANAGER_NEEDED, _cmd(C.VOID)): _drop_and_take,
    (M.MANAGER_NEEDED, _cmd(C.DONE)): _drop_and_take,
    (M.MANAGER_NEEDED, _cmd(C.CANCEL)): decline,
    (M.WRITE_OFF, "item"): scan_write_off,
    (M.WRITE_OFF, _cmd(C.CANCEL)): leave_mode,
    (M.WRITE_OFF, _cmd(C.DONE)): leave_mode,
    (M.COUNTING, "item"): scan_in_count,
    (M.COUNTING, _cmd(C.DONE)): finish_count,
    (M.COUNTING, _cmd(C.CANCEL)): leave_count,
    (M.COUNTING, "ledger done"): count_saved,
    (M.ATTENDANT_NEEDED, "badge"): badge,
    (M.ATTENDANT_NEEDED, "manager badge"): badge,
    (M.ATTENDANT_NEEDED, "release"): release,
    (M.ATTENDANT_NEEDED, "ledger done"): _released,
    (M.ATTENDANT_NEEDED, "item"): still_locked,
    (M.ATTENDANT_NEEDED, "rejected"): still_locked,
    **{(M.ATTENDANT_NEEDED, _cmd(name)): still_locked for name in CommandName},
}

# Inputs every mode (but out of service) takes the same way.
ANY_MODE: dict[str, Handler] = {
    "rejected": bad_scan,
    "scanner trouble": scanner_trouble,
    "badge": not_locked,
    "release": not_locked,
    "manager badge": not_waiting,
    "manager": not_waiting,
    "printed": printed,
    "device": device_changed,
    "recovered": recovered,
    "busy": ledger_busy,
    "receipt owed": receipt_owed,
    "tick": tick,
    _cmd(C.REPRINT): reprint,
    _cmd(C.HELP): call_for_help,
    _cmd(C.STATUS): device_status,
}


# ----------------------------------------------------------------------- helpers


def _command_from(parsed: CommandCode, source: str) -> Command | str:
    try:
        name = CommandName(parsed.command)
    except ValueError:
        known = ", ".join(c.value for c in CommandName)
        return f"command {parsed.command!r} is not known; the lane knows {known}"
    return Command(name, parsed.argument, source)


def _attendant_only(state: LaneState, event: Command) -> bool:
    if event.name is CommandName.CANCEL:
        return state.basket is not None and bool(state.basket.lines)
    return event.name in ATTENDANT_ONLY


def _by_a_person(event: Input) -> bool:
    return isinstance(event, Scanned | Command | AttendantRelease | ManagerApproval | LedgerDone)


def _deadline(state: LaneState, now: Now, cfg: LaneSettings) -> float | None:
    if state.mode is Mode.AWAITING_SERIAL:
        return now.monotonic + cfg.serial_timeout_s
    if state.mode is Mode.RETURN or (state.mode is Mode.RECEIVING and not state.received):
        return now.monotonic + cfg.mode_timeout_s
    if state.mode in (Mode.MANAGER_NEEDED, Mode.WRITE_OFF):
        return now.monotonic + cfg.mode_timeout_s
    if state.mode is Mode.IN_SALE and cfg.self_checkout and state.basket and state.basket.lines:
        return now.monotonic + cfg.abandoned_sale_s
    return None


def _out_of_service(state: LaneState, message: str) -> Step:
    """The one way into OUT_OF_SERVICE. What was open (a basket, a delivery being
    scanned, a call for an attendant or a manager) is kept for when the ledger can be
    written again; the ledger operation under way failed, so it is not pending."""
    halted = state.evolve(
        mode=Mode.OUT_OF_SERVICE,
        failure=message,
        halted_in=state.mode,
        pending=None,
        deadline=None,
    )
    return halted, Effects(
        display=text.CLOSED,
        light=Light.RED_BLINKING,
        beep=Beep.REJECT,
        prompt=f"out of service: {message}",
        verdict=Verdict("refused", "out_of_service", message),
    )


def _back_in_service(state: LaneState) -> Step:
    """The one way out of OUT_OF_SERVICE: back to what the lane was doing."""
    mode = state.halted_in or Mode.IDLE
    if mode is Mode.COUNTING and state.document is None:
        mode = Mode.IDLE
    back = state.evolve(mode=mode, failure="", halted_in=None)
    said = f"the lane is back in service (it was out of service: {state.failure})"
    if back.basket is not None and back.basket.lines:
        said += f"; the basket of {back.basket.invoice} is still open: pay for it again"
    elif back.received:
        said += f"; the {len(back.received)} unit(s) scanned on PO {back.document} are kept"
    return accept(back, "back_in_service", said, beep=None)


def _remember(result: Step, **changes: Any) -> Step:
    """Keep what the outputs now show in the state, for the kiosk and for a repaint."""
    state, effects = result
    if effects.display is not None:
        changes["display"] = effects.display
    if effects.light is not None:
        changes["light"] = effects.light
    if effects.prompt is not None:
        changes["prompt"] = effects.prompt
    return (state.evolve(**changes) if changes else state), effects


def describe_table() -> list[tuple[str, str, str]]:
    """(mode, input, handler) for every row: the table as a person reads it."""
    rows = [(mode.value, kind, h.__name__.lstrip("_")) for (mode, kind), h in TABLE.items()]
    rows += [("any", kind, h.__name__.lstrip("_")) for kind, h in ANY_MODE.items()]
    return rows
