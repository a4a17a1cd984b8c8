"""What the lane tells the journal about each ledger operation: one entry an engineer
finds with `journalctl -u posd POSD_SERIAL=…`, for sales, returns and refusals alike."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.journal import encode_entry, record_fields
from daemon.lane import logbook
from daemon.rules.lane.types import (
    Basket,
    BasketLine,
    LedgerDone,
    ProductFacts,
    ReturnUnit,
    SellBasket,
    Tender,
)
from daemon.rules.units import State

LAPTOP = ProductFacts("LAP-X1", "Laptop X1", 129900)
CABLE = ProductFacts("CABLE", "USB cable", 1500, serial_tracked=False)


def sale(*serials: str) -> SellBasket:
    lines = [BasketLine(LAPTOP, 129900, serial=s, key=s) for s in serials]
    lines.append(BasketLine(CABLE, 1500))
    return SellBasket(7, Basket("T-1-000042", "walk-in customer", tuple(lines)), Tender("CARD"))


def journal_fields(
    caplog: pytest.LogCaptureFixture,
) -> tuple[logging.LogRecord, dict[str, list[str]]]:
    (record,) = caplog.records
    fields: dict[str, list[str]] = {}
    for name, value in record_fields(record):
        fields.setdefault(name, []).append(str(value))
    return record, fields


def test_a_sale_is_one_entry_naming_its_invoice_and_every_unit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="daemon.lane")
    logbook.record(sale("LX-1", "LX-2"), LedgerDone(7))
    record, fields = journal_fields(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "sell: T-1-000042 LAP-X1/LX-1, LAP-X1/LX-2"
    assert fields == {
        "POSD_DOC": ["T-1-000042"],
        "POSD_EVENT": ["sell"],
        "POSD_OUTCOME": ["done"],
        "POSD_PRODUCT": ["LAP-X1"],
        "POSD_SERIAL": ["LX-1", "LX-2"],
    }


def test_a_refused_return_is_a_warning_with_its_reason_codes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="daemon.lane")
    op = ReturnUnit(8, "INV-9", "LAP-X1", "LX-5", "boxed", State.IN_STOCK)
    logbook.record(op, LedgerDone(8, (("not_on_invoice", "INV-9 did not sell LX-5"),)))
    record, fields = journal_fields(caplog)
    assert record.levelno == logging.WARNING
    assert "INV-9 did not sell LX-5" in record.getMessage()
    assert fields["POSD_EVENT"] == ["return"]
    assert fields["POSD_OUTCOME"] == ["refused"]
    assert fields["POSD_REASON"] == ["not_on_invoice"]
    assert fields["POSD_SERIAL"] == ["LX-5"]


@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5))
def test_any_serial_text_makes_a_journal_entry_the_journal_accepts(serials: list[str]) -> None:
    handler = _Keep()
    logger = logging.getLogger("daemon.lane")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        logbook.record(sale(*serials), LedgerDone(7))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    (record,) = handler.records
    entry = encode_entry(record_fields(record))
    for serial in serials:
        assert serial.encode("utf-8", errors="surrogateescape") in entry


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
