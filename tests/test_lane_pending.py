"""While the lane waits for a serial, nothing the customer or cashier does is dropped.

A scan that does not answer the lane's question (a unit or barcode of another product,
an unknown serial, a unit that may not be sold) is refused with the reason, and the
item that waits for its serial keeps waiting: it is completed (its unit goes into the
basket or is taken back), explicitly dropped (VOID, CANCEL, the serial deadline, each
with a verdict that says so), or still pending. It never vanishes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.rules.barcode import ProductCode, UnitCode
from daemon.rules.lane.types import (
    AttendantRelease,
    Command,
    CommandName,
    Facts,
    LaneState,
    ManagerApproval,
    Mode,
    ProductFacts,
    ReturnUnit,
    Scanned,
    Tick,
)
from daemon.rules.units import Flag, State
from tests.lane_fixtures import (
    CABLE,
    CASHIER,
    LAPTOP,
    PHONE,
    SELF,
    Driven,
    command,
    gtin,
    invoice,
    label,
    rejected,
    unit,
)

PHONE_UNIT = unit("P-1", product=PHONE)


def phone_gs1() -> tuple:
    return (UnitCode(PHONE.gtin, "P-1"), Facts(product=PHONE, units=(PHONE_UNIT,)))


def phone_barcode() -> tuple:
    return (ProductCode(PHONE.gtin[1:], PHONE.gtin), Facts(product=PHONE))


def waiting_for_laptop(cfg=CASHIER) -> Driven:
    lane = Driven(cfg)
    lane.scan(label("CABLE", product=CABLE))
    lane.scan(gtin(LAPTOP))
    assert lane.state.mode is Mode.AWAITING_SERIAL
    return lane


def lines(state: LaneState) -> list[tuple[str, str | None]]:
    basket = state.basket
    return [] if basket is None else [(ln.product.code, ln.serial) for ln in basket.lines]


# ------------------------------------------------- what is refused, and what it says

OTHER_ITEMS = [
    (phone_gs1(), "wrong_product", "Phone S9"),
    (label("P-1", PHONE_UNIT), "wrong_product", "Phone S9"),
    (phone_barcode(), "serial_expected", "Phone S9"),
    (label("CABLE", product=CABLE), "serial_expected", "USB cable"),
    (label("NOPE-9"), "unknown_unit", "NOPE-9"),
    (label("A-2", unit("A-2", State.SOLD, invoice="X")), "already_sold", "already sold"),
]


def test_a_scan_of_another_product_is_refused_and_the_item_keeps_waiting() -> None:
    for scanned, code, named in OTHER_ITEMS:
        for cfg in (CASHIER, SELF):
            lane = waiting_for_laptop(cfg)
            effects = lane.scan(scanned)
            assert lane.last_code == code, (scanned, cfg.self_checkout)
            assert effects.verdict is not None and effects.verdict.outcome == "refused"
            assert named in effects.verdict.message
            assert "Laptop X1" in effects.verdict.message  # what the lane still waits for
            assert lines(lane.state) == [("CABLE", None)]  # nothing added, nothing gone
            assert lane.state.pending_product == LAPTOP
            if lane.state.mode is Mode.ATTENDANT_NEEDED:  # a sold unit locks a self-checkout
                assert lane.state.lock is not None
                assert lane.state.lock.resume is Mode.AWAITING_SERIAL
            else:
                assert lane.state.mode is Mode.AWAITING_SERIAL
                assert effects.display is not None and effects.display[0] == "Laptop X1"
    # ... and the laptop's own serial still goes in after all that.
    lane = waiting_for_laptop()
    for scanned, _, _ in OTHER_ITEMS:
        lane.scan(scanned)
    lane.scan(label("A-1", unit("A-1")))
    assert lines(lane.state) == [("CABLE", None), ("LAP-X1", "A-1")]
    assert lane.state.mode is Mode.IN_SALE and lane.state.pending_product is None


def test_a_wrong_product_refusal_reads_well_on_the_pole_display() -> None:
    lane = waiting_for_laptop()
    effects = lane.scan(phone_gs1())
    assert effects.display == ("Laptop X1", "SCAN SERIAL FIRST")


def test_a_return_waiting_for_a_serial_never_takes_back_another_product() -> None:
    laptop = unit("A-2", State.SOLD, invoice="INV-1")
    lane = Driven(CASHIER)
    lane.feed(Command(CommandName.RETURN))
    lane.scan(invoice("INV-1", laptop))
    lane.scan(gtin(LAPTOP))
    assert lane.state.mode is Mode.AWAITING_SERIAL
    for scanned in (phone_gs1(), phone_barcode()):
        lane.scan(scanned)
        assert lane.last_code in ("wrong_product", "serial_expected")
        assert not [op for op in lane.ops if isinstance(op, ReturnUnit)]
        assert lane.state.pending_product == LAPTOP
    lane.scan(label("A-2", laptop))
    returned = [op for op in lane.ops if isinstance(op, ReturnUnit)]
    assert [(op.product, op.serial) for op in returned] == [("LAP-X1", "A-2")]


def test_receiving_keeps_its_product_after_a_whole_gs1_unit() -> None:
    lane = Driven(CASHIER)
    lane.feed(Command(CommandName.RECEIVE))
    lane.scan(label("PO-1"))
    lane.scan(gtin(LAPTOP))
    lane.scan((UnitCode(PHONE.gtin, "P-9"), Facts(product=PHONE)))
    assert lane.last_code == "unit_received"
    lane.scan(label("L-9"))  # a laptop serial: the lane still takes them in a row
    assert lane.last_code == "unit_received"
    assert [(u.product.code, u.serial) for u in lane.state.received] == [
        ("PHN-S9", "P-9"),
        ("LAP-X1", "L-9"),
    ]


# --------------------------------------------- any order: never vanished, state by state

UNITS = [
    unit("A-1"),
    unit("A-5"),
    unit("A-2", State.SOLD, invoice="INV-1"),
    unit("A-3", flags=(Flag.STOLEN,)),
    unit("A-4", branch="SOUTH"),
]
INPUTS = st.one_of(
    st.sampled_from(UNITS).map(lambda u: Scanned(*label(u.serial, u))),
    st.sampled_from([phone_gs1(), phone_barcode(), label("P-1", PHONE_UNIT)]).map(
        lambda s: Scanned(*s)
    ),
    st.just(Scanned(*gtin(LAPTOP))),
    st.just(Scanned(*label("CABLE", product=CABLE))),
    st.just(Scanned(*label("NOPE-9"))),
    st.just(Scanned(*rejected())),
    st.just(Scanned(*invoice("INV-1", UNITS[2]))),
    st.just(Scanned(*command("TENDER", "CASH"))),
    st.sampled_from(list(CommandName)).map(lambda name: Command(name, "")),
    st.just(Tick()),
    st.just(AttendantRelease("Mia", "pin")),
    st.sampled_from([ManagerApproval("Max", "pin"), ManagerApproval(None, "pin")]),
)

# Verdicts that drop a waiting item, each saying so.
DROPPED_EXPLICITLY = {"voided", "cancelled", "serial_timeout", "mode_left", "sale_complete"}


def owed(state: LaneState, mode: Mode) -> ProductFacts | None:
    """The product whose serial the lane owes for a line of `mode` (a sale or a return),
    also while an attendant or a manager is called in the middle of it."""
    resume = state.mode
    for _ in range(3):
        if resume is Mode.ATTENDANT_NEEDED and state.lock is not None:
            resume = state.lock.resume
        elif resume is Mode.MANAGER_NEEDED and state.approval is not None:
            resume = state.approval.resume
    if resume is Mode.AWAITING_SERIAL and state.serial_for is mode:
        return state.pending_product
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(INPUTS, max_size=30), st.booleans())
def test_a_pending_line_is_completed_cancelled_or_still_pending(events, self_checkout) -> None:
    lane = Driven(SELF if self_checkout else CASHIER)
    for event in events:
        lane.clock += 7
        before = lane.state
        ops_before = len(lane.ops)
        lane.feed(event)
        after = lane.state
        for mode in (Mode.IN_SALE, Mode.RETURN):
            waiting = owed(before, mode)
            if waiting is None:
                continue
            if owed(after, mode) == waiting:
                assert lines(after) == lines(before), event  # nothing slipped in or out
                continue
            new_ops = lane.ops[ops_before:]
            if mode is Mode.IN_SALE and after.basket is not None:
                added = lines(after)[len(lines(before)) :]
                if lines(after)[: len(lines(before))] == lines(before) and [
                    code for code, _ in added
                ] == [waiting.code]:
                    continue  # completed: its unit is in the basket
            if mode is Mode.RETURN and any(
                isinstance(op, ReturnUnit) and op.product == waiting.code for op in new_ops
            ):
                continue  # completed: the ledger was asked to take that unit back
            assert lane.last_code in DROPPED_EXPLICITLY, (event, lane.last_code)
