"""A phone's IMEI printed with 14 digits (no check digit) is read as that phone, not as a
GTIN, where the ledger has such a phone; read against a real ledger through the lane's
own look-up, as the running lane does."""

from __future__ import annotations

import pytest

from daemon.ledger import Ledger
from daemon.ledger.lookup import ScanLookup
from daemon.rules.barcode import BarcodeOptions, ProductCode, Rejected, parse
from daemon.rules.lane.machine import plan_lookup
from daemon.rules.lane.types import (
    Command,
    CommandName,
    Mode,
    ReceiveUnits,
    Scanned,
    SellBasket,
)
from tests.lane_fixtures import CASHIER, Driven
from tests.ledger_fixtures import make_ledger

# A 14-digit IMEI that fails the GTIN check digit, and one that passes it by chance.
IMEI_BAD_GTIN = "35693803564380"
IMEI_GOOD_GTIN = "49015420323751"


@pytest.fixture
def ledger() -> Ledger:
    ledger = make_ledger(branch=CASHIER.branch)
    ledger.define_product(
        "PH14", "Phone 14", actor="setup", serial_rule="[0-9]{14,15}", gtin="05012345678900"
    )
    ledger.receive("PO-1", "Phones Ltd", "PH14", [IMEI_BAD_GTIN, IMEI_GOOD_GTIN], actor="ann")
    return ledger


def scan(lane: Driven, ledger: Ledger, text: str) -> None:
    """What the running lane does with a scan: parse, look up, decide."""
    parsed = parse(text, BarcodeOptions())
    facts = ScanLookup(ledger.db.conn).facts(plan_lookup(lane.state, parsed, lane.cfg))
    lane.feed(Scanned(parsed, facts))


@pytest.mark.parametrize("imei", [IMEI_BAD_GTIN, IMEI_GOOD_GTIN])
def test_a_14_digit_imei_scanned_in_a_sale_adds_that_phone(ledger: Ledger, imei: str) -> None:
    assert isinstance(parse(imei, BarcodeOptions()), ProductCode | Rejected)  # not a unit yet
    lane = Driven(CASHIER)
    scan(lane, ledger, imei)
    assert lane.last_code == "unit_added"
    assert lane.state.basket is not None
    assert [(line.product.code, line.serial) for line in lane.state.basket.lines] == [
        ("PH14", imei)
    ]


@pytest.mark.parametrize("imei", [IMEI_BAD_GTIN, IMEI_GOOD_GTIN])
def test_a_14_digit_imei_answers_the_lane_waiting_for_the_phone_serial(
    ledger: Ledger, imei: str
) -> None:
    lane = Driven(CASHIER)
    scan(lane, ledger, "5012345678900")  # the phone's product barcode
    assert lane.state.mode is Mode.AWAITING_SERIAL
    scan(lane, ledger, imei)
    assert lane.last_code == "unit_added"
    lane.feed(Command(CommandName.TENDER))
    sold = [op for op in lane.ops if isinstance(op, SellBasket)]
    assert [line.serial for line in sold[0].basket.lines] == [imei]


def test_a_new_phone_is_received_by_its_14_digit_imei(ledger: Ledger) -> None:
    lane = Driven(CASHIER)
    lane.feed(Command(CommandName.RECEIVE, "Phones Ltd"))
    scan(lane, ledger, "PO-9")
    scan(lane, ledger, "5012345678900")
    scan(lane, ledger, "35693803564399")  # not in the ledger yet
    assert lane.state.mode is Mode.AWAITING_SERIAL  # taken: the next one, please
    lane.feed(Command(CommandName.DONE))
    (received,) = [op for op in lane.ops if isinstance(op, ReceiveUnits)]
    assert [(u.product.code, u.serial) for u in received.units] == [("PH14", "35693803564399")]


def test_digits_that_are_a_products_gtin_and_a_phones_imei_are_refused_not_guessed(
    ledger: Ledger,
) -> None:
    ledger.define_product("CASE", "Case of phones", actor="setup", gtin=IMEI_GOOD_GTIN)
    lane = Driven(CASHIER)
    scan(lane, ledger, IMEI_GOOD_GTIN)
    assert lane.effects[-1].verdict is not None
    assert lane.effects[-1].verdict.outcome == "refused"
    assert (
        "GTIN of Case of phones and also the IMEI of Phone 14" in lane.effects[-1].verdict.message
    )
    assert lane.state.basket is None or not lane.state.basket.lines


def test_a_gtin_14_that_is_no_units_serial_is_still_a_product(ledger: Ledger) -> None:
    ledger.define_product(
        "CASE", "Case of cables", actor="setup", gtin="10036000291459", serial_tracked=False
    )
    lane = Driven(CASHIER)
    scan(lane, ledger, "10036000291459")
    assert lane.last_code == "item_added"


def test_a_mistyped_gtin_14_that_is_no_units_serial_is_still_refused(ledger: Ledger) -> None:
    lane = Driven(CASHIER)
    scan(lane, ledger, "10036000291458")
    assert lane.effects[-1].verdict is not None
    assert lane.effects[-1].verdict.outcome == "refused"
    assert "fails its check digit" in lane.effects[-1].verdict.message
