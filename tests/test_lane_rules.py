"""The lane's state machine, pure: tables of inputs and what the customer and cashier see."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.rules.barcode import PlainLabel, ProductCode, UnitCode
from daemon.rules.lane.machine import TABLE, describe_table, plan_lookup, step
from daemon.rules.lane.text import WIDTH
from daemon.rules.lane.types import (
    AttendantRelease,
    Beep,
    Command,
    CommandName,
    DeviceChanged,
    LaneState,
    Light,
    LookupPlan,
    ManagerApproval,
    Mode,
    Now,
    Printed,
    ReceiveUnits,
    RecordRelease,
    Recovered,
    ReturnUnit,
    Scanned,
    SellBasket,
    ServiceFault,
    Tick,
)
from daemon.rules.units import Flag, State
from tests.lane_fixtures import (
    CABLE,
    CASHIER,
    LAPTOP,
    NOW,
    PHONE,
    SELF,
    TABLET,
    Driven,
    command,
    gs1,
    gtin,
    invoice,
    label,
    rejected,
    unit,
)

S, F = State, Flag

# ------------------------------------------------------------ one scan, every verdict

# (what is scanned, code, second display line). First line: the product's name.
UNIT_VERDICTS = [
    ("LX-1", unit("LX-1"), "unit_added", "TOTAL        1299.00"),
    ("LX-1", unit("LX-1", S.SOLD, invoice="INV-1"), "already_sold", "ALREADY SOLD"),
    ("LX-1", unit("LX-1", S.QUARANTINED), "quarantined", "QUARANTINED"),
    ("LX-1", unit("LX-1", S.IN_REPAIR), "in_repair", "IN REPAIR"),
    ("LX-1", unit("LX-1", S.WRITTEN_OFF), "written_off", "WRITTEN OFF"),
    ("LX-1", unit("LX-1", S.LOST), "lost", "REPORTED LOST"),
    ("LX-1", unit("LX-1", S.RETURNED_TO_SUPPLIER), "returned_to_supplier", "NOT IN STOCK"),
    ("LX-1", unit("LX-1", flags=(F.STOLEN,)), "flag_stolen", "BLOCKED: SEE STAFF"),
    ("LX-1", unit("LX-1", flags=(F.RECALLED,)), "flag_recalled", "RECALLED"),
    ("LX-1", unit("LX-1", flags=(F.CONFLICT,)), "flag_conflict", "UNDER REVIEW"),
    ("LX-1", unit("LX-1", flags=(F.ON_HOLD,)), "flag_on_hold", "ON HOLD"),
    ("LX-1", unit("LX-1", branch="SOUTH"), "wrong_branch", "OTHER BRANCH"),
    ("LX-1", unit("LX-1", S.IN_TRANSIT, dest="NORTH"), "in_transit", "IN TRANSIT"),
]


# A manager may override these at a cashier's lane (test_lane_manager).
OVERRIDABLE = ("wrong_branch", "in_transit")


@pytest.mark.parametrize(
    ("text", "found", "code", "second"), [v for v in UNIT_VERDICTS if v[2] not in OVERRIDABLE]
)
def test_a_cashier_sees_each_verdict_on_one_scan(text, found, code, second) -> None:
    lane = Driven(CASHIER)
    effects = lane.scan(label(text, found))
    assert effects.verdict is not None and effects.verdict.code == code
    accepted = code == "unit_added"
    assert effects.display == (
        "Laptop X1    1299.00" if accepted else "Laptop X1",
        second,
    )
    assert effects.light is (Light.GREEN if accepted else Light.RED)
    assert effects.beep is (Beep.ACCEPT if accepted else Beep.REJECT)
    assert lane.state.mode is (Mode.IN_SALE if accepted else Mode.IDLE)
    if not accepted:
        assert 'serial "LX-1"' in effects.verdict.message  # the cashier reads which unit


@pytest.mark.parametrize(("text", "found", "code", "second"), UNIT_VERDICTS[1:])
def test_a_self_checkout_locks_and_calls_an_attendant_on_each_refusal(
    text, found, code, second
) -> None:
    lane = Driven(SELF)
    effects = lane.scan(label(text, found))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED
    assert lane.state.lock is not None and lane.state.lock.code == code
    assert effects.display == ("PLEASE WAIT", "ATTENDANT CALLED")
    assert (effects.light, effects.beep) == (Light.RED_BLINKING, Beep.ATTENDANT)


# Lane refusals that are not about one unit's state: (inputs, code, display).
LANE_REFUSALS = [
    ([label("NOPE-1")], "unknown_unit", ("NOT ACCEPTED", "UNKNOWN SERIAL")),
    ([gtin(None)], "unknown_product", ("NOT ACCEPTED", "UNKNOWN ITEM")),
    (
        [label("SN-7", unit("SN-7"), unit("SN-7", product=TABLET))],
        "ambiguous_serial",
        ("NOT ACCEPTED", "SCAN PRODUCT FIRST"),
    ),
    (
        [label("LX-1", unit("LX-1")), label("lx-1", unit("LX-1"))],
        "duplicate_in_basket",
        ("Laptop X1", "SCANNED TWICE"),
    ),
    ([rejected()], "bad_scan", ("SCAN FAILED", "PLEASE SCAN AGAIN")),
    ([command("FLY")], "unknown_command", ("NOT ACCEPTED", "UNKNOWN COMMAND")),
    ([command("TENDER", "CASH")], "empty_basket", ("NOT ACCEPTED", "NOTHING TO PAY")),
    (
        [gtin(LAPTOP), label("LX-9")],
        "unknown_unit",
        ("Laptop X1", "UNKNOWN SERIAL"),
    ),
]


@pytest.mark.parametrize(("inputs", "code", "display"), LANE_REFUSALS)
def test_lane_refusals_say_what_to_do(inputs, code, display) -> None:
    lane = Driven(CASHIER)
    for scanned in inputs:
        effects = lane.scan(scanned)
    assert lane.last_code == code
    assert effects.display == display
    assert effects.prompt  # a sentence for the cashier


def test_a_bad_scan_does_not_lock_a_self_checkout() -> None:
    lane = Driven(SELF)
    lane.scan(rejected())
    assert lane.state.mode is Mode.IDLE and lane.last_code == "bad_scan"


# ------------------------------------------------------------------- selling flows


def test_product_barcode_then_serial_sells_that_unit() -> None:
    lane = Driven(CASHIER)
    effects = lane.scan(gtin(LAPTOP))
    assert lane.state.mode is Mode.AWAITING_SERIAL
    assert effects.display == ("Laptop X1", "SCAN SERIAL NUMBER") and effects.light is Light.AMBER
    lane.scan(label("LX-1", unit("LX-1"), unit("LX-1", product=TABLET)))
    assert lane.state.mode is Mode.IN_SALE
    assert lane.state.basket is not None
    assert [(line.product.code, line.serial) for line in lane.state.basket.lines] == [
        ("LAP-X1", "LX-1")
    ]


def test_one_gs1_datamatrix_gives_product_and_serial() -> None:
    lane = Driven(CASHIER)
    effects = lane.scan(gs1(LAPTOP, "LX-1", unit("LX-1")))
    assert lane.last_code == "unit_added"
    assert effects.display == ("Laptop X1    1299.00", "TOTAL        1299.00")


def test_plain_items_need_no_serial_and_serials_are_never_asked_twice() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("CABLE", product=CABLE))
    lane.scan(label("CABLE", product=CABLE))
    assert lane.state.basket is not None and lane.state.basket.total_cents == 3000


def test_void_takes_a_line_off_and_the_total_follows() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("LX-1", unit("LX-1")))
    lane.scan(label("CABLE", product=CABLE))
    effects = lane.feed(Command(CommandName.VOID, "1"))
    assert effects.display == ("VOID Laptop X1", "TOTAL          15.00")
    effects = lane.feed(Command(CommandName.VOID, "7"))
    assert lane.last_code == "nothing_to_void" and "lines 1 to 1" in (effects.prompt or "")


def test_paying_writes_the_sale_then_prints_and_opens_the_drawer_for_cash() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("LX-1", unit("LX-1")))
    lane.scan(label("CABLE", product=CABLE))
    effects = lane.feed(Command(CommandName.TENDER, "CASH:1400"))
    (op,) = lane.ops
    assert isinstance(op, SellBasket) and op.basket.invoice == "T-001-000001"
    assert effects.display == ("THANK YOU", "CHANGE         86.00")
    assert effects.receipt is not None and effects.open_drawer
    assert [line.description for line in effects.receipt.lines] == ["Laptop X1", "USB cable"]
    assert effects.receipt.lines[0].warranty_ends is not None
    assert effects.receipt.tenders == (("Cash", 140000),)
    assert lane.state.mode is Mode.IDLE and lane.state.basket is None
    lane.scan(label("LX-2", unit("LX-2")))
    assert lane.state.basket is not None and lane.state.basket.invoice == "T-001-000002"


@pytest.mark.parametrize(
    ("argument", "code"),
    [("CASH:10", "short_tender"), ("CASH:ten", "bad_tender"), ("CARD", "sale_complete")],
)
def test_tender_amounts(argument: str, code: str) -> None:
    lane = Driven(CASHIER)
    lane.scan(label("LX-1", unit("LX-1")))
    effects = lane.feed(Command(CommandName.TENDER, argument))
    assert lane.last_code == code
    assert not effects.open_drawer  # a card opens no drawer; a refusal neither


def test_a_sale_the_ledger_refuses_stays_open_with_the_reason() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("LX-1", unit("LX-1")))
    refusal = (("already_sold", 'Laptop X1 serial "LX-1" is already sold at branch SOUTH'),)
    effects = lane.feed(Command(CommandName.TENDER, "CARD"), refuse=refusal)
    assert lane.state.mode is Mode.IN_SALE and effects.receipt is None
    assert effects.display == ("NOT ACCEPTED", "ALREADY SOLD")


def test_tender_waits_for_a_serial_that_is_still_owed() -> None:
    lane = Driven(CASHIER)
    lane.scan(gtin(LAPTOP))
    lane.feed(Command(CommandName.TENDER, "CARD"))
    assert lane.last_code == "serial_expected" and not lane.ops


# ------------------------------------------------------------------------- returns

SOLD = unit("LX-1", S.SOLD, invoice="T-001-000007")


def test_a_return_takes_back_only_the_unit_the_invoice_sold() -> None:
    lane = Driven(CASHIER)
    lane.feed(Command(CommandName.RETURN))
    assert lane.state.display == ("RETURNS", "SCAN THE RECEIPT")
    lane.scan(invoice("T-001-000007", SOLD))
    assert lane.state.display == ("RETURN  T-001-000007", "SCAN THE UNIT")
    wrong = (("wrong_unit", 'invoice T-001-000007 sold Laptop X1 "LX-1", not "LX-2"'),)
    effects = lane.scan(label("LX-2", unit("LX-2")), refuse=wrong)
    assert effects.display == ("Laptop X1", "WRONG UNIT") and effects.light is Light.RED
    assert isinstance(lane.ops[-1], ReturnUnit) and lane.ops[-1].serial == "LX-2"
    effects = lane.scan(label("LX-1", SOLD))
    assert effects.display == ("RETURN ACCEPTED", "REFUND       1299.00")
    assert effects.receipt is not None and effects.receipt.total_cents == -129900
    assert lane.state.mode is Mode.RETURN  # more units may come back on the invoice


def test_a_return_needs_a_known_invoice_first() -> None:
    lane = Driven(CASHIER)
    lane.feed(Command(CommandName.RETURN))
    lane.scan(label("LX-1", SOLD))  # the unit before the receipt: read as an invoice
    lane.scan(invoice("NOPE", exists=False))
    assert lane.last_code == "unknown_invoice" and lane.state.document is None
    lane.scan(gs1(LAPTOP, "LX-1", SOLD))
    assert lane.last_code == "invoice_expected"


def test_a_wrong_unit_on_a_self_checkout_return_locks_the_lane() -> None:
    lane = Driven(SELF)
    lane.state = replace(lane.state, mode=Mode.RETURN)
    lane.scan(invoice("T-001-000007", SOLD))
    lane.scan(label("LX-2", unit("LX-2")), refuse=(("wrong_unit", "not that unit"),))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED and lane.state.lock.resume is Mode.RETURN


# ----------------------------------------------------------------------- receiving


def test_receiving_a_delivery_scan_by_scan() -> None:
    lane = Driven(CASHIER)
    lane.feed(Command(CommandName.RECEIVE, "Acme"))
    lane.scan(label("PO-1001"))
    assert lane.state.document == "PO-1001"
    lane.scan(gtin(LAPTOP))
    for serial in ("LX-7", "LX-8"):
        effects = lane.scan(label(serial))
        assert lane.state.mode is Mode.AWAITING_SERIAL  # the next serial of the same product
    assert effects.display == ("Laptop X1", "UNITS              2")
    lane.scan(label("LX-7"))
    assert lane.last_code == "duplicate_in_document"
    lane.scan(label("LX-1", unit("LX-1", S.SOLD)))
    assert lane.last_code == "already_active"
    effects = lane.feed(Command(CommandName.DONE))
    (op,) = lane.ops
    assert isinstance(op, ReceiveUnits) and op.supplier == "Acme"
    assert [u.serial for u in op.units] == ["LX-7", "LX-8"]
    assert effects.display == ("RECEIVED 2 UNITS", "PO           PO-1001")
    assert lane.state.mode is Mode.IDLE


# --------------------------------------------------------------- attendant and locks


def test_only_an_attendant_releases_a_locked_lane_and_the_release_is_recorded() -> None:
    lane = Driven(SELF)
    lane.scan(label("LX-1", unit("LX-1")))
    lane.scan(label("LX-3", unit("LX-3", S.SOLD)))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED
    for ignored in (label("LX-2", unit("LX-2")), command("TENDER", "CARD"), label("MIA?")):
        effects = lane.scan(ignored)
        assert lane.state.mode is Mode.ATTENDANT_NEEDED
        assert effects.verdict is not None and effects.verdict.outcome == "ignored"
    effects = lane.scan(label("BADGE-0042"))
    release = lane.ops[-1]
    assert isinstance(release, RecordRelease)
    assert (release.attendant, release.method, release.code) == ("Mia", "badge", "already_sold")
    assert lane.state.mode is Mode.IN_SALE
    assert effects.beep is Beep.STOP and effects.light is Light.GREEN
    assert effects.display == ("Laptop X1    1299.00", "TOTAL        1299.00")


def test_attendant_only_commands_run_once_the_attendant_releases() -> None:
    lane = Driven(SELF)
    lane.scan(label("LX-1", unit("LX-1")))
    lane.feed(Command(CommandName.VOID))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED and lane.state.lock.code == "attendant_only"
    lane.feed(AttendantRelease("Mia", "pin"))
    assert lane.state.mode is Mode.IN_SALE and lane.state.basket.lines == ()
    assert "released by Mia (pin)" in lane.effects[-1].verdict.message


def test_help_calls_an_attendant_and_a_release_outside_a_lock_does_nothing() -> None:
    lane = Driven(CASHIER)
    lane.feed(AttendantRelease("Mia", "pin"))
    assert lane.last_code == "not_locked" and not lane.ops
    lane.feed(Command(CommandName.HELP, source="button"))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED


# ------------------------------------------------------------------------ deadlines


def test_a_serial_not_scanned_in_time_drops_the_item() -> None:
    lane = Driven(CASHIER)
    lane.scan(gtin(LAPTOP))
    lane.clock += 29
    lane.feed(Tick())
    assert lane.state.mode is Mode.AWAITING_SERIAL
    lane.clock += 2
    effects = lane.feed(Tick())
    assert lane.state.mode is Mode.IN_SALE and effects.display == (
        "Laptop X1",
        "SERIAL NOT SCANNED",
    )


def test_an_abandoned_self_checkout_basket_calls_an_attendant() -> None:
    lane = Driven(SELF)
    lane.scan(label("LX-1", unit("LX-1")))
    lane.clock += SELF.abandoned_sale_s + 1
    lane.feed(Tick())
    assert lane.state.lock is not None and lane.state.lock.code == "abandoned_basket"


# --------------------------------------------------------------- receipts, restarts


def test_a_receipt_that_did_not_print_is_owed_and_can_be_reprinted() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("CABLE", product=CABLE))
    lane.feed(Command(CommandName.TENDER, "CARD"))
    effects = lane.feed(Printed("T-001-000001", ok=False, reason="printer error (paper out)"))
    assert effects.display == ("THANK YOU", "RECEIPT TO FOLLOW")
    assert "paper out" in effects.prompt and lane.state.receipt_waiting == "T-001-000001"
    assert lane.feed(Command(CommandName.REPRINT)).reprint
    lane.feed(Printed("T-001-000001", ok=True))
    assert lane.state.receipt_waiting is None


def test_reprint_with_nothing_printed_yet_is_refused() -> None:
    lane = Driven(CASHIER)
    assert not lane.feed(Command(CommandName.REPRINT)).reprint
    assert lane.last_code == "nothing_to_reprint"


@pytest.mark.parametrize(
    ("saved", "display"),
    [
        (True, ("LAST SALE SAVED", "T-001-000004 1299.00")),
        (False, ("LAST SALE NOT SAVED", "PLEASE SCAN AGAIN")),
    ],
)
def test_after_a_restart_the_display_says_whether_the_last_sale_was_saved(saved, display) -> None:
    lane = Driven(CASHIER)
    effects = lane.feed(Recovered("T-001-000004", saved, 129900))
    assert effects.display == display


@pytest.mark.parametrize(
    ("later", "kept"),
    [
        (Tick(), True),  # time passing: a screen that connects now still reads it
        (Printed("T-001-000004", True), True),
        (DeviceChanged("printer", False, "paper out"), True),
        ("scan", False),  # the customer scans again: said, and done with
        (Command(CommandName.HELP), False),
    ],
)
def test_the_restart_notice_stays_until_someone_uses_the_lane(later, kept) -> None:
    lane = Driven(SELF)
    lane.feed(Recovered("T-001-000004", False))
    assert lane.state.notice is not None and lane.state.notice.code == "last_sale_lost"
    assert lane.state.notice.invoice == "T-001-000004"
    if later == "scan":
        lane.scan(label("LX-1", unit("LX-1")))
    else:
        lane.feed(later)
    assert (lane.state.notice is not None) is kept


def test_the_restart_notice_of_a_saved_sale_names_its_total() -> None:
    lane = Driven(CASHIER)
    lane.feed(Recovered("T-001-000004", True, 129900))
    assert lane.state.notice is not None
    assert (lane.state.notice.code, lane.state.notice.total_cents) == ("last_sale_saved", 129900)


# ------------------------------------------------------------------ out of service


def test_out_of_service_has_one_way_in_and_ignores_everything_after() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("LX-1", unit("LX-1")))
    effects = lane.feed(ServiceFault("database or disk is full"))
    assert lane.state.mode is Mode.OUT_OF_SERVICE
    assert effects.display == ("LANE CLOSED", "OUT OF SERVICE")
    for later in (Command(CommandName.TENDER, "CARD"), AttendantRelease("Mia", "pin")):
        assert lane.feed(later).verdict.outcome == "ignored"
    assert lane.state.mode is Mode.OUT_OF_SERVICE and not lane.ops


def test_no_row_of_the_table_leads_out_of_service() -> None:
    assert Mode.OUT_OF_SERVICE not in {mode for mode, _ in TABLE}
    modes = {row[0] for row in describe_table()}
    assert {m.value for m in Mode} - {"out_of_service"} <= modes


# ---------------------------------------------------------- what is looked up when

PLANS = [
    (Mode.IDLE, PlainLabel("LX-1"), LookupPlan(serial="LX-1", product_code="LX-1")),
    (Mode.IDLE, ProductCode("4006381333931", "04006381333931"), LookupPlan(gtin="04006381333931")),
    (
        Mode.IDLE,
        UnitCode("04006381333931", "LX-1"),
        LookupPlan(gtin="04006381333931", serial="LX-1"),
    ),
    (Mode.RETURN, PlainLabel("T-001-000007"), LookupPlan(invoice="T-001-000007")),
    (Mode.RECEIVING, PlainLabel("PO-1001"), LookupPlan()),
    (Mode.IDLE, PlainLabel("BADGE-0042"), LookupPlan()),
    (Mode.ATTENDANT_NEEDED, PlainLabel("LX-1"), LookupPlan()),
]


@pytest.mark.parametrize(("mode", "parsed", "plan"), PLANS)
def test_the_ledger_is_asked_only_what_the_decision_needs(mode, parsed, plan) -> None:
    assert plan_lookup(LaneState(mode=mode), parsed, SELF) == plan


# ------------------------------------------------------------ invariants, any order

UNITS = [
    unit("A-1"),
    unit("A-2", S.SOLD, invoice="X"),
    unit("A-3", flags=(F.STOLEN,)),
    unit("A-4", branch="SOUTH"),
    unit("P-1", product=PHONE),
]
INPUTS = st.one_of(
    st.sampled_from(UNITS).map(lambda u: Scanned(PlainLabel(u.serial), label(u.serial, u)[1])),
    st.just(Scanned(*gtin(LAPTOP))),
    st.just(Scanned(*label("CABLE", product=CABLE))),
    st.just(Scanned(*rejected())),
    st.just(Scanned(*label("BADGE-0042"))),
    st.sampled_from(list(CommandName)).map(lambda name: Command(name, "")),
    st.just(Tick()),
    st.just(AttendantRelease("Mia", "pin")),
    st.just(Scanned(*label("BADGE-9001"))),
    st.sampled_from([ManagerApproval("Max", "pin"), ManagerApproval(None, "pin")]),
    st.sampled_from(["1", "", "X:A-2"]).map(lambda arg: Command(CommandName.VOID, arg)),
    st.just(DeviceChanged("display", False, "unplugged")),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(INPUTS, max_size=25), st.booleans())
def test_whatever_comes_in_the_lane_keeps_its_promises(events, self_checkout) -> None:
    cfg = SELF if self_checkout else CASHIER
    lane = Driven(cfg)
    for event in events:
        lane.clock += 10
        lane.feed(event)
        state = lane.state
        assert state.mode is not Mode.OUT_OF_SERVICE
        assert all(len(line) <= WIDTH for line in state.display)
        if state.basket is not None:
            units = [(ln.product.code, ln.key) for ln in state.basket.lines if ln.key]
            assert len(units) == len(set(units))  # a unit is never twice in a basket
            assert all(key != "A-2" and key != "A-3" for _, key in units)
            # A unit at another branch only ever with a manager's name on it.
            assert all(ln.approved_by == "Max" for ln in state.basket.lines if ln.key == "A-4")
        assert (state.mode is Mode.ATTENDANT_NEEDED) == (state.lock is not None)
        assert (state.mode is Mode.MANAGER_NEEDED) == (state.approval is not None)
        if not self_checkout and state.lock is not None:
            assert state.lock.code == "help_requested"  # a cashier's lane locks on HELP only


def test_the_now_passed_in_is_the_only_clock() -> None:
    state, _ = step(LaneState(), Scanned(*gtin(LAPTOP)), Now(5.0, NOW.wall), CASHIER)
    assert state.deadline == 5.0 + CASHIER.serial_timeout_s
