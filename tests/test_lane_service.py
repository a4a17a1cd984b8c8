"""A busy ledger is "busy, try again", never a fault; out of service comes back by itself,
with what was open still open."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.rules.lane.types import (
    AttendantRelease,
    Busy,
    Command,
    CommandName,
    LaneState,
    Light,
    Mode,
    ServiceFault,
    ServiceRestored,
)
from tests.lane_fixtures import CABLE, CASHIER, LAPTOP, SELF, Driven, gtin, label, unit

BUSY = "ledger busy: another program is writing to it (an import?); try again"


def lines(state: LaneState) -> list[tuple[str, str | None]]:
    basket = state.basket
    return [] if basket is None else [(ln.product.code, ln.serial) for ln in basket.lines]


def test_busy_is_refused_with_its_reason_and_changes_nothing() -> None:
    for cfg in (CASHIER, SELF):
        lane = Driven(cfg)
        lane.scan(label("A-1", unit("A-1")))
        before = lane.state
        effects = lane.feed(Busy(BUSY))
        assert lane.last_code == "ledger_busy" and effects.verdict is not None
        assert "busy" in effects.verdict.message and "storage" not in effects.verdict.message
        assert effects.display == ("PLEASE WAIT", "BUSY: SCAN AGAIN")
        assert lane.state.mode is Mode.IN_SALE  # a self-checkout does not lock for it
        assert lines(lane.state) == lines(before)


def test_a_sale_the_ledger_was_too_busy_for_stays_open_to_pay_again() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("A-1", unit("A-1")))
    lane.feed(Command(CommandName.TENDER, "CARD"), refuse=(("ledger_busy", BUSY),))
    assert lane.last_code == "ledger_busy"
    assert lane.state.mode is Mode.IN_SALE and lines(lane.state) == [("LAP-X1", "A-1")]
    lane.feed(Command(CommandName.TENDER, "CARD"))
    assert lane.last_code == "sale_complete"


def test_a_release_that_could_not_be_recorded_does_not_release() -> None:
    lane = Driven(SELF)
    lane.feed(Command(CommandName.HELP))
    lane.feed(AttendantRelease("Mia", "pin"), refuse=(("ledger_busy", BUSY),))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED and lane.last_code == "ledger_busy"
    lane.feed(AttendantRelease("Mia", "pin"))
    assert lane.state.mode is Mode.IDLE and lane.last_code == "released"


def test_out_of_service_comes_back_to_the_open_basket() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("CABLE", product=CABLE))
    lane.scan(gtin(LAPTOP))
    lane.feed(ServiceFault("disk I/O error"))
    assert lane.state.mode is Mode.OUT_OF_SERVICE
    effects = lane.feed(ServiceRestored())
    assert lane.last_code == "back_in_service" and effects.verdict is not None
    assert "still open" in effects.verdict.message
    assert lane.state.mode is Mode.AWAITING_SERIAL and lane.state.pending_product == LAPTOP
    assert lines(lane.state) == [("CABLE", None)]
    assert effects.light is Light.AMBER


def test_a_locked_self_checkout_is_still_locked_when_it_comes_back() -> None:
    lane = Driven(SELF)
    lane.scan(label("A-1", unit("A-1")))
    lane.feed(Command(CommandName.HELP))
    lane.feed(ServiceFault("disk I/O error"))
    lane.feed(ServiceRestored())
    assert lane.state.mode is Mode.ATTENDANT_NEEDED and lane.state.lock is not None
    lane.feed(AttendantRelease("Mia", "pin"))
    assert lane.state.mode is Mode.IN_SALE and lines(lane.state) == [("LAP-X1", "A-1")]


def test_restored_in_service_is_nothing() -> None:
    lane = Driven(CASHIER)
    effects = lane.feed(ServiceRestored())
    assert lane.state.mode is Mode.IDLE and effects.verdict is None


FAULTS = st.sampled_from([Busy(BUSY), ServiceFault("disk I/O error"), ServiceRestored()])


@settings(max_examples=100, deadline=None)
@given(st.lists(FAULTS, max_size=12), st.booleans())
def test_faults_and_busy_never_lose_the_basket(faults: list[object], self_checkout: bool) -> None:
    lane = Driven(SELF if self_checkout else CASHIER)
    lane.scan(label("CABLE", product=CABLE))
    lane.scan(label("A-1", unit("A-1")))
    for fault in faults:
        lane.feed(fault)  # type: ignore[arg-type]
        assert lines(lane.state) == [("CABLE", None), ("LAP-X1", "A-1")]
    lane.feed(ServiceRestored())
    assert lane.state.mode is Mode.IN_SALE
