"""Stock count mode: an employee scans every serialized unit on the shelves.

`COUNT` opens a count of the branch (`COUNT:LAP-X1`: of one product; `COUNT:<number>`
goes on with a count still open, e.g. after a restart). Each scan is recorded on the
count in the ledger, and the display says at once what the ledger makes of it:
expected here, unexpected (and where the ledger has it), scanned twice, or unknown,
with the light and buzzer. A product barcode says which product the serials that
follow belong to. `DONE` closes the count and shows its figures; the full report
(missing serials, unexpected units, doubles) is on the kiosk. `CANCEL` leaves the
count open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.rules.barcode import PlainLabel, ProductCode, UnitCode
from daemon.rules.lane import text
from daemon.rules.lane.steps import Step, accept, prompt, refuse, staff, with_op
from daemon.rules.lane.types import (
    Beep,
    CloseCount,
    Command,
    CountScan,
    Effects,
    LaneSettings,
    LaneState,
    LedgerDone,
    Light,
    Mode,
    Now,
    OpenCount,
    ProductFacts,
    Scanned,
    Verdict,
)
from daemon.rules.units import State, UnitView

UNKNOWN_PRODUCT = "?"  # what a serial nobody knows is counted under, with no product

# The ledger's verdict on a scan (its first words): display words, light, beep, code.
_VERDICTS: dict[str, tuple[str, Light, Beep, str]] = {
    "expected": ("EXPECTED", Light.GREEN, Beep.ACCEPT, "count_expected"),
    "unexpected": ("UNEXPECTED", Light.RED, Beep.REJECT, "count_unexpected"),
    "scanned twice": ("SCANNED TWICE", Light.AMBER, Beep.REJECT, "count_scanned_twice"),
    "not in the ledger": ("UNKNOWN SERIAL", Light.RED, Beep.REJECT, "count_unknown"),
}

# Where an unexpected unit is, in a few words for the pole display.
_WHERE = {
    State.SOLD: "SOLD",
    State.IN_TRANSIT: "IN TRANSIT",
    State.IN_REPAIR: "IN REPAIR",
    State.QUARANTINED: "QUARANTINED",
    State.RETURNED_TO_SUPPLIER: "AT SUPPLIER",
    State.WRITTEN_OFF: "WRITTEN OFF",
    State.LOST: "MARKED LOST",
}


def start_count(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if state.basket is not None and state.basket.lines:
        return refuse(state, cfg, "sale_open", "pay or CANCEL the open sale before a count")
    sending, op_id = with_op(state)
    op = OpenCount(op_id, event.argument.strip())
    counting = sending.evolve(
        mode=Mode.COUNTING,
        basket=None,
        document=None,
        pending_product=None,
        count_product=None,
        counted=0,
        pending=op,
    )
    return counting, Effects(ledger=op)


def scan_in_count(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    """One unit on the shelf (or a product barcode for the serials that follow)."""
    parsed, facts = event.parsed, event.facts
    assert state.document is not None
    if isinstance(parsed, ProductCode) or (
        isinstance(parsed, PlainLabel) and not facts.units and facts.product is not None
    ):
        code = parsed.code if isinstance(parsed, ProductCode) else parsed.text
        return _product_next(state, facts.product, code, cfg)
    wanted_code = state.pending_product.code if state.pending_product else None
    if isinstance(parsed, UnitCode):
        if parsed.gtin is not None and facts.product is None:
            return refuse(
                state,
                staff(cfg),
                "unknown_product",
                f"GTIN {parsed.gtin} is not a product in the ledger; its serial "
                f'"{parsed.serial}" is not counted',
            )
        if facts.product is not None:
            wanted_code = facts.product.code
        serial = parsed.serial
    else:
        assert isinstance(parsed, PlainLabel)
        serial = parsed.text
    units = [u for u in facts.units if u.product.code == wanted_code] or list(facts.units)
    if state.count_product is not None:
        theirs = [u for u in units if u.product.code == state.count_product]
        if units and not theirs:
            return refuse(
                state,
                staff(cfg),
                "not_in_count",
                f"{units[0].view.label} is not counted: this count is of "
                f"{state.count_product} only",
                units[0].product.name,
            )
        units = theirs
    if len(units) > 1:
        names = " and ".join(sorted(u.product.name for u in units))
        return refuse(
            state,
            staff(cfg),
            "ambiguous_serial",
            f'serial "{serial}" belongs to {names}; scan the product\'s barcode, then the serial',
        )
    if units:
        product, name, printed = units[0].product.code, units[0].product.name, units[0].serial
    else:
        product = wanted_code or state.count_product or UNKNOWN_PRODUCT
        name = state.pending_product.name if state.pending_product else ""
        printed = serial
    sending, op_id = with_op(state)
    view = units[0].view if units else None
    op = CountScan(op_id, state.document, product, printed, name, view)
    return sending.evolve(pending=op), Effects(ledger=op)


def _product_next(
    state: LaneState, product: ProductFacts | None, code: str, cfg: LaneSettings
) -> Step:
    if product is None:
        return refuse(state, staff(cfg), "unknown_product", f"barcode {code} is not a product")
    if not product.serial_tracked:
        return refuse(
            state,
            staff(cfg),
            "not_serialized",
            f"{product.name} has no serials; it is not counted here",
        )
    if state.count_product is not None and product.code != state.count_product:
        return refuse(
            state,
            staff(cfg),
            "not_in_count",
            f"this count is of {state.count_product} only, not {product.name}",
        )
    following = state.evolve(pending_product=product)
    return prompt(
        following,
        "count_product",
        f"counting {product.name}: scan each unit's serial",
        (text.line(f"COUNT {product.name}"), text.row("SCANNED", str(state.counted))),
    )


def finish_count(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    assert state.document is not None
    sending, op_id = with_op(state)
    op = CloseCount(op_id, state.document)
    return sending.evolve(pending=op), Effects(ledger=op)


def leave_count(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    count = state.document
    idle = state.evolve(
        mode=Mode.IDLE, document=None, pending_product=None, count_product=None, counted=0
    )
    if count is None:
        return accept(idle, "mode_left", "back to selling", text.WELCOME, beep=None)
    message = (
        f"count {count} stays open with {state.counted} scan(s) recorded; COUNT:{count} "
        "goes on with it, and DONE then closes it"
    )
    return accept(idle, "count_left_open", message, text.WELCOME, beep=None)


def count_saved(state: LaneState, event: LedgerDone, now: Now, cfg: LaneSettings) -> Step:
    op = state.pending
    state = state.evolve(pending=None)
    if isinstance(op, OpenCount):
        return _opened(state, event, cfg)
    if isinstance(op, CountScan):
        return _scanned(state, op, event, cfg)
    assert isinstance(op, CloseCount)
    return _closed(state, op, event, cfg)


def _opened(state: LaneState, event: LedgerDone, cfg: LaneSettings) -> Step:
    if event.refused:
        code, message = event.refused[0]
        idle = state.evolve(mode=Mode.IDLE, document=None)
        return refuse(idle, staff(cfg), code, message, "STOCK COUNT")
    count = str(event.details["count"])
    product = event.details.get("product")
    scanned = int(event.details.get("scanned", 0))
    counting = state.evolve(
        document=count, count_product=product, counted=scanned, pending_product=None
    )
    scope = f"product {product}" if product else f"branch {cfg.branch}"
    verb = "goes on" if event.details.get("resumed") else "opened"
    message = f"count {count} of {scope} {verb}: scan every unit, then DONE"
    return accept(
        counting,
        "count_open",
        message,
        (text.line(f"COUNT {count}"), "SCAN EVERY UNIT"),
        beep=None,
    )


def _scanned(state: LaneState, op: CountScan, event: LedgerDone, cfg: LaneSettings) -> Step:
    if event.refused:
        code, message = event.refused[0]
        return state, Effects(
            display=(text.line(op.description or op.serial), text.refusal(code).words),
            light=Light.RED,
            beep=Beep.REJECT,
            prompt=message,
            verdict=Verdict("refused", code, message),
        )
    verdict = str(event.details.get("verdict", ""))
    kind = next((k for k in _VERDICTS if verdict.startswith(k)), "not in the ledger")
    words, light, beep, code = _VERDICTS[kind]
    if kind == "unexpected":
        words = text.line(f"UNEXPECTED {_where_words(op.view, cfg)}")
    counted = state.evolve(counted=state.counted + 1)
    label = (f"{op.description} " if op.description else "") + f'serial "{op.serial}"'
    message = f"{label}: {verdict}"
    first = text.line(op.description if kind != "not in the ledger" else op.serial)
    outcome = "accepted" if kind == "expected" else "refused"
    return counted, Effects(
        display=(first, words),
        light=light,
        beep=beep,
        prompt=message,
        verdict=Verdict(outcome, code, message),
    )


def _where_words(where: UnitView | None, cfg: LaneSettings) -> str:
    if where is None:
        return ""
    if where.state is State.IN_STOCK and where.branch != cfg.branch:
        return f"AT {where.branch}"
    return _WHERE.get(where.state, "")


def _closed(state: LaneState, op: CloseCount, event: LedgerDone, cfg: LaneSettings) -> Step:
    if event.refused:
        code, message = event.refused[0]
        return refuse(state, staff(cfg), code, message, "STOCK COUNT")
    figures: Mapping[str, Any] = event.details
    idle = state.evolve(
        mode=Mode.IDLE,
        document=None,
        pending_product=None,
        count_product=None,
        counted=0,
        last_count=op.count,
    )
    found, expected = int(figures["found"]), int(figures["expected"])
    missing, doubles = int(figures["missing"]), int(figures["duplicates"])
    extra = int(figures["unexpected"]) + int(figures["unknown"])
    second = f"MISS {missing} UNEXP {extra} DBL {doubles}"
    if len(second) > text.WIDTH:
        second = f"M{missing} U{extra} D{doubles}"
    message = (
        f"count {op.count} closed: {found} of {expected} found, {missing} missing, "
        f"{figures['unexpected']} unexpected, {figures['unknown']} unknown, "
        f"{doubles} scanned twice"
    )
    beep = Beep.ACCEPT if not (missing or extra) else Beep.REJECT
    return idle, Effects(
        display=(text.line(f"FOUND {found}/{expected}"), text.line(second)),
        light=Light.GREEN if not (missing or extra) else Light.AMBER,
        beep=beep,
        prompt=message,
        verdict=Verdict("accepted", "count_closed", message),
    )
