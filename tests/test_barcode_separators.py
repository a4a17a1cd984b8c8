"""GS1 element strings with and without their group separators: read exactly as meant,
or refused as ambiguous; never read as a different unit, whatever the order of fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.rules.barcode import GS, BarcodeOptions, ProductCode, Rejected, UnitCode, parse

PLAIN = BarcodeOptions()
CARET = BarcodeOptions(gs_stand_in="^")
SENT = BarcodeOptions(separators_sent=True)
GTIN = "09506000134352"


def with_check_digit(payload: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    return payload + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class Field:
    ai: str
    value: str
    variable: bool  # GS1 requires a separator after it unless it is last


def element_string(fields: list[Field], separator: str | None) -> str:
    """The fields in order, each variable-length one that is not last ended by
    `separator` (None: the separator dropped, as a wedge scanner that cannot type GS does)."""
    text = ""
    for index, field in enumerate(fields):
        text += field.ai + field.value
        if field.variable and index < len(fields) - 1 and separator is not None:
            text += separator
    return text


SERIAL_CHARS = st.sampled_from("ABCXYZ0123456789-./")
LOT_CHARS = st.sampled_from("ABC0123456789")
DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2049, 12, 28))


@st.composite
def unit_fields(draw: st.DrawFn) -> list[Field]:
    """A GTIN, usually a serial, and some of lot, expiry, production date, an extra
    product id and a count, in any order."""
    gtin = with_check_digit(draw(st.text("0123456789", min_size=13, max_size=13)))
    fields = [Field("01", gtin, False)]
    if draw(st.integers(0, 4)):  # most of the time
        fields.append(Field("21", draw(st.text(SERIAL_CHARS, min_size=1, max_size=20)), True))
    if draw(st.booleans()):
        fields.append(Field("10", draw(st.text(LOT_CHARS, min_size=1, max_size=20)), True))
    if draw(st.booleans()):
        fields.append(Field("17", draw(DAYS).strftime("%y%m%d"), False))
    if draw(st.booleans()):
        fields.append(Field("11", draw(DAYS).strftime("%y%m%d"), False))
    if draw(st.booleans()):
        fields.append(Field("240", draw(st.text(LOT_CHARS, min_size=1, max_size=30)), True))
    if draw(st.booleans()):
        fields.append(Field("30", draw(st.text("0123456789", min_size=1, max_size=8)), True))
    return draw(st.permutations(fields))


def reads_as_meant(result: object, fields: list[Field]) -> bool:
    meant = {f.ai: f.value for f in fields}
    expiry = meant.get("17")
    if "21" not in meant:
        return isinstance(result, ProductCode) and result.gtin == meant["01"]
    return (
        isinstance(result, UnitCode)
        and result.gtin == meant["01"]
        and result.serial == meant["21"]
        and result.lot == meant.get("10")
        and (result.expiry.strftime("%y%m%d") if result.expiry else None) == expiry
    )


@settings(max_examples=400, deadline=None)
@given(unit_fields())
def test_with_its_separators_an_element_string_reads_exactly_as_meant(
    fields: list[Field],
) -> None:
    text = element_string(fields, GS)
    result = parse(text, PLAIN, "]d2")
    if GS not in text and isinstance(result, Rejected):
        # One variable-length field, last: nothing shows this scanner sends GS, and the
        # field read shorter leaves fields that parse. Refused, never guessed.
        assert result.code == "missing_separator"
        return
    assert reads_as_meant(result, fields), (text, result)
    assert reads_as_meant(parse(element_string(fields, "^"), CARET, "]d2"), fields)
    assert reads_as_meant(parse(text, SENT, "]d2"), fields)


@settings(max_examples=600, deadline=None)
@given(unit_fields())
def test_without_its_separators_an_element_string_is_read_as_meant_or_refused(
    fields: list[Field],
) -> None:
    text = element_string(fields, None)
    result = parse(text, PLAIN, "]d2")
    if isinstance(result, Rejected):
        return
    assert reads_as_meant(result, fields), (text, result)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        # serial then lot, GS dropped: today's reading would be serial "SN1210ABC"
        (
            f"01{GTIN}21SN12{'10ABC'}",
            "(21) 'SN1210ABC' may really be 'SN12' followed by (10) 'ABC'",
        ),
        # lot then serial, GS dropped: the lot would swallow the serial
        (f"01{GTIN}10ABC12321SN12345", "followed by (21) 'SN12345'"),
        # the GTIN after the serial: 01 + 14 digits read into the serial
        (f"21SN1201{GTIN}", f"(21) 'SN1201{GTIN}' may really be 'SN1"),
        # a serial of twenty characters with no separator after it: read up to its
        # longest length, the rest would be taken as the next field
        (f"01{GTIN}21{'S' * 20}10LOT", "no group separator after its (21)"),
    ],
)
def test_a_missing_separator_is_refused_naming_the_ambiguity(text: str, says: str) -> None:
    result = parse(text, PLAIN, "]d2")
    assert isinstance(result, Rejected)
    assert result.code == "missing_separator"
    assert says in result.message
    assert "gs_stand_in" in result.message


def test_a_serial_of_the_longest_length_with_its_separator_is_read() -> None:
    result = parse(f"01{GTIN}21{'S' * 20}{GS}10LOT", PLAIN)
    assert result == UnitCode(GTIN, "S" * 20, "LOT", None)


def test_a_store_whose_scanners_send_separators_reads_a_lone_serial_as_printed() -> None:
    # "21SN10234" could be serial "SN" and lot "234" with GS dropped; a store that
    # says its scanners send GS (or its stand-in) reads the serial as printed.
    assert isinstance(parse(f"01{GTIN}21SN10234", PLAIN), Rejected)
    assert parse(f"01{GTIN}21SN10234", SENT) == UnitCode(GTIN, "SN10234", None, None)
    assert parse(f"01{GTIN}21SN10234", CARET) == UnitCode(GTIN, "SN10234", None, None)


def test_a_lone_serial_that_cannot_end_early_is_read_without_a_separator() -> None:
    assert parse(f"01{GTIN}17201225" + "21SN-4F7K", PLAIN) == UnitCode(
        GTIN, "SN-4F7K", None, date(2020, 12, 25)
    )
