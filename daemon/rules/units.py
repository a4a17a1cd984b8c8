"""The unit state machine: which operation may move a unit from which state to which.

Pure: no I/O and no clock. Given what the ledger knows about a unit (`UnitView`) and
what someone asks to do (`Request`), `decide` returns `Allowed` with the next state
and branch, or `Refused` with a reason code and a sentence that says where the unit
is and why it cannot be done. The ledger applies the decision; nothing else changes
a unit's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    IN_STOCK = "in_stock"
    SOLD = "sold"
    IN_TRANSIT = "in_transit"
    IN_REPAIR = "in_repair"
    QUARANTINED = "quarantined"
    RETURNED_TO_SUPPLIER = "returned_to_supplier"
    WRITTEN_OFF = "written_off"
    LOST = "lost"


class Flag(StrEnum):
    STOLEN = "stolen"
    RECALLED = "recalled"
    CONFLICT = "conflict"
    ON_HOLD = "on_hold"


class Op(StrEnum):
    RECEIVE = "receive"
    SELL = "sell"
    RETURN = "return"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    REPAIR_OPEN = "repair_open"
    REPAIR_STEP = "repair_step"
    REPAIR_CLOSE = "repair_close"
    WARRANTY_CLAIM = "warranty_claim"
    REPLACE_OLD = "replace_old"
    REPLACE_NEW = "replace_new"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    RETURN_TO_SUPPLIER = "return_to_supplier"
    WRITE_OFF = "write_off"
    MARK_LOST = "mark_lost"
    MARK_FOUND = "mark_found"
    RELOCATE = "relocate"
    FLAG = "flag"
    UNFLAG = "unflag"


S = State
# For each operation: the states it may start from, and the states it may lead to.
# A single target is the only outcome; several targets mean the request's
# `disposition` chooses one of them.
TRANSITIONS: dict[Op, dict[State | None, frozenset[State]]] = {
    Op.RECEIVE: {
        None: frozenset({S.IN_STOCK}),
        S.RETURNED_TO_SUPPLIER: frozenset({S.IN_STOCK}),
    },
    Op.SELL: {S.IN_STOCK: frozenset({S.SOLD}), S.IN_TRANSIT: frozenset({S.SOLD})},
    Op.RETURN: {
        S.SOLD: frozenset(
            {S.IN_STOCK, S.QUARANTINED, S.IN_REPAIR, S.RETURNED_TO_SUPPLIER, S.WRITTEN_OFF}
        )
    },
    Op.TRANSFER_OUT: {S.IN_STOCK: frozenset({S.IN_TRANSIT})},
    Op.TRANSFER_IN: {S.IN_TRANSIT: frozenset({S.IN_STOCK})},
    Op.REPAIR_OPEN: {
        S.SOLD: frozenset({S.IN_REPAIR}),
        S.IN_STOCK: frozenset({S.IN_REPAIR}),
        S.QUARANTINED: frozenset({S.IN_REPAIR}),
    },
    Op.REPAIR_STEP: {S.IN_REPAIR: frozenset({S.IN_REPAIR})},
    Op.REPAIR_CLOSE: {
        S.IN_REPAIR: frozenset(
            {S.SOLD, S.IN_STOCK, S.QUARANTINED, S.RETURNED_TO_SUPPLIER, S.WRITTEN_OFF}
        )
    },
    Op.WARRANTY_CLAIM: {S.SOLD: frozenset({S.SOLD}), S.IN_REPAIR: frozenset({S.IN_REPAIR})},
    Op.REPLACE_OLD: {
        source: frozenset({S.IN_REPAIR, S.QUARANTINED, S.RETURNED_TO_SUPPLIER, S.WRITTEN_OFF})
        for source in (S.SOLD, S.IN_REPAIR)
    },
    Op.REPLACE_NEW: {S.IN_STOCK: frozenset({S.SOLD})},
    Op.QUARANTINE: {S.IN_STOCK: frozenset({S.QUARANTINED})},
    Op.RELEASE: {S.QUARANTINED: frozenset({S.IN_STOCK})},
    Op.RETURN_TO_SUPPLIER: {
        source: frozenset({S.RETURNED_TO_SUPPLIER})
        for source in (S.IN_STOCK, S.QUARANTINED, S.IN_REPAIR)
    },
    Op.WRITE_OFF: {
        source: frozenset({S.WRITTEN_OFF})
        for source in (S.IN_STOCK, S.QUARANTINED, S.IN_REPAIR, S.LOST)
    },
    Op.MARK_LOST: {
        source: frozenset({S.LOST}) for source in (S.IN_STOCK, S.IN_TRANSIT, S.QUARANTINED)
    },
    Op.MARK_FOUND: {S.LOST: frozenset({S.IN_STOCK})},
    # A count found the unit at this branch: it stays on the shelf, here.
    Op.RELOCATE: {
        S.IN_STOCK: frozenset({S.IN_STOCK}),
        S.QUARANTINED: frozenset({S.QUARANTINED}),
        S.IN_TRANSIT: frozenset({S.IN_STOCK}),
    },
    Op.FLAG: {state: frozenset({state}) for state in State},
    Op.UNFLAG: {state: frozenset({state}) for state in State},
}

# Operations that need a manager's name on the request.
MANAGER_ONLY = frozenset({Op.WRITE_OFF})

# Flags that stop a unit from going to a customer.
BLOCKS_SALE = (Flag.STOLEN, Flag.RECALLED, Flag.CONFLICT, Flag.ON_HOLD)
_SALE_OPS = frozenset({Op.SELL, Op.REPLACE_NEW})

# Operations that only the branch holding the unit may do; the bool says whether a
# manager may override.
_BRANCH_BOUND: dict[Op, bool] = {
    Op.SELL: True,
    Op.REPLACE_NEW: True,
    Op.TRANSFER_OUT: False,
}

# Where a unit is no longer "active" for its product: the serial may be received
# again (the same physical unit coming back from the supplier).
INACTIVE_STATES = frozenset({S.RETURNED_TO_SUPPLIER})

_STATE_WORDS = {
    S.IN_STOCK: "in stock",
    S.SOLD: "sold",
    S.IN_TRANSIT: "in transit",
    S.IN_REPAIR: "in repair",
    S.QUARANTINED: "quarantined",
    S.RETURNED_TO_SUPPLIER: "returned to the supplier",
    S.WRITTEN_OFF: "written off",
    S.LOST: "marked lost",
}


@dataclass(frozen=True)
class UnitView:
    """What the ledger knows about a unit, as far as decisions need it."""

    label: str  # how a person names the unit, e.g. 'Laptop X1 serial "SN-1"'
    state: State
    branch: str
    flags: frozenset[Flag] = frozenset()
    invoice: str | None = None
    dest_branch: str | None = None
    pre_repair_state: State | None = None


@dataclass(frozen=True)
class Request:
    """What someone asks to do to a unit."""

    op: Op
    branch: str
    disposition: State | None = None
    invoice: str | None = None
    manager: str | None = None
    flag: Flag | None = None


@dataclass(frozen=True)
class Allowed:
    state: State
    branch: str
    overridden: tuple[str, ...] = field(default=())  # reason codes a manager overrode


@dataclass(frozen=True)
class Refused:
    code: str
    message: str
    overridable: bool = False


def where(unit: UnitView) -> str:
    """A sentence fragment saying where a unit is and in what state."""
    words = _STATE_WORDS[unit.state]
    if unit.state is S.SOLD:
        text = f"sold at branch {unit.branch}"
        if unit.invoice:
            text += f" on invoice {unit.invoice}"
    elif unit.state is S.IN_TRANSIT:
        text = f"in transit from branch {unit.branch} to branch {unit.dest_branch}"
    else:
        text = f"{words} at branch {unit.branch}"
    if unit.flags:
        text += " (flagged " + ", ".join(sorted(f.value for f in unit.flags)) + ")"
    return text


def decide(unit: UnitView | None, request: Request) -> Allowed | Refused:
    """Decide whether `request` may happen to `unit` (None: the ledger has no such unit)."""
    op = request.op
    table = TRANSITIONS[op]
    if unit is None:
        if None in table:
            return Allowed(S.IN_STOCK, request.branch)
        return Refused("unknown_unit", "this unit is not in the ledger")

    if op is Op.RECEIVE and unit.state not in table:
        return Refused(
            "already_active", f"{unit.label} is already {where(unit)}; it cannot be received again"
        )
    if op is Op.RECEIVE and Flag.STOLEN in unit.flags:
        return Refused("flag_stolen", f"{unit.label} is flagged stolen; call a manager")
    if op in MANAGER_ONLY and not request.manager:
        return Refused("needs_manager", f"{op.value.replace('_', ' ')} needs a manager")
    if op in _SALE_OPS:
        for flag in BLOCKS_SALE:
            if flag in unit.flags:
                return Refused(
                    f"flag_{flag.value}",
                    f"{unit.label} is flagged {flag.value.replace('_', ' ')} and cannot be sold",
                )
    if unit.state not in table:
        return _refuse_state(unit, request)

    overridden: list[str] = []
    if op in _SALE_OPS and unit.state is S.IN_TRANSIT:
        refusal = Refused(
            "in_transit",
            f"{unit.label} is {where(unit)}; receive it at its branch first",
            overridable=True,
        )
        if not request.manager:
            return refusal
        overridden.append(refusal.code)
    if op in _BRANCH_BOUND and unit.state is not S.IN_TRANSIT and unit.branch != request.branch:
        refusal = Refused(
            "wrong_branch",
            f"{unit.label} is {where(unit)}, not at branch {request.branch}",
            overridable=_BRANCH_BOUND[op],
        )
        if not (refusal.overridable and request.manager):
            return refusal
        overridden.append(refusal.code)
    if op is Op.TRANSFER_IN and unit.dest_branch != request.branch:
        return Refused(
            "wrong_destination", f"{unit.label} is {where(unit)}, not to branch {request.branch}"
        )
    if op is Op.RETURN and request.invoice != unit.invoice:
        return Refused(
            "wrong_invoice",
            f"{unit.label} was not sold on invoice {request.invoice}; it is {where(unit)}",
        )

    targets = table[unit.state]
    target = _choose_target(unit, request, targets)
    if isinstance(target, Refused):
        return target
    branch = unit.branch if op in (Op.TRANSFER_OUT, Op.FLAG, Op.UNFLAG) else request.branch
    return Allowed(target, branch, tuple(overridden))


def _choose_target(unit: UnitView, request: Request, targets: frozenset[State]) -> State | Refused:
    if len(targets) == 1:
        return next(iter(targets))
    if request.op is Op.REPAIR_CLOSE and request.disposition is None:
        # A repaired unit goes back to where it was before the repair.
        return unit.pre_repair_state or S.IN_STOCK
    if request.disposition in targets:
        return request.disposition
    choices = ", ".join(sorted(t.value for t in targets))
    given = request.disposition.value if request.disposition else "none"
    return Refused(
        "bad_disposition",
        f"{request.op.value.replace('_', ' ')} needs a disposition of {choices}; got {given}",
    )


def _refuse_state(unit: UnitView, request: Request) -> Refused:
    op = request.op
    if op in _SALE_OPS and unit.state is S.SOLD:
        return Refused("already_sold", f"{unit.label} is already {where(unit)}")
    if op is Op.RETURN:
        return Refused(
            "not_sold", f"{unit.label} is {where(unit)}; only a sold unit can be returned"
        )
    if op in _SALE_OPS:
        return Refused(
            unit.state.value, f"{unit.label} is {where(unit)}; only a unit in stock can be sold"
        )
    action = op.value.replace("_", " ")
    allowed = ", ".join(sorted(_STATE_WORDS[s] for s in TRANSITIONS[op] if s is not None))
    return Refused(
        "wrong_state",
        f"{unit.label} is {where(unit)}; {action} needs a unit that is {allowed}",
    )
