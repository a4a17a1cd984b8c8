"""What a scanned barcode means: products, units, labels, commands, and clear refusals."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.rules.barcode import (
    GS,
    BarcodeOptions,
    CommandCode,
    PlainLabel,
    ProductCode,
    Rejected,
    UnitCode,
    parse,
    split_symbology_identifier,
    symbology_name,
)

PLAIN = BarcodeOptions()
CARET = BarcodeOptions(gs_stand_in="^")

# The example GTIN of the GS1 General Specifications (GS1 prefix 950, for examples).
GTIN = "09506000134352"


@pytest.mark.parametrize(
    ("text", "gtin"),
    [
        ("4006381333931", "04006381333931"),  # EAN-13
        ("96385074", "00000096385074"),  # EAN-8
        ("036000291452", "00036000291452"),  # UPC-A
        ("10036000291459", "10036000291459"),  # GTIN-14 on a case
        ("04252614", "00042100005264"),  # UPC-E, expanded to its UPC-A
    ],
)
def test_product_barcodes_give_the_gtin_in_14_digits(text: str, gtin: str) -> None:
    assert parse(text, PLAIN) == ProductCode(code=text, gtin=gtin, symbology=None)


@pytest.mark.parametrize("text", ["4006381333932", "96385075", "036000291453", "10036000291458"])
def test_a_product_barcode_with_a_wrong_check_digit_is_refused_quoting_it(text: str) -> None:
    result = parse(text, PLAIN)
    assert isinstance(result, Rejected)
    assert result.code == "bad_check_digit"
    assert text in result.message


def test_the_ean_identifier_reads_six_digits_as_upc_e() -> None:
    assert parse("]E0425261", PLAIN) == ProductCode("425261", "00042100005264", "]E0")


def test_an_ean_scan_is_checked_even_when_the_store_has_numeric_serials() -> None:
    numeric = BarcodeOptions(numeric_serials=True)
    assert parse("4006381333932", numeric) == PlainLabel("4006381333932")
    rejected = parse("]E04006381333932", numeric)
    assert isinstance(rejected, Rejected) and rejected.code == "bad_check_digit"


# GS1 element strings, after the examples in the GS1 General Specifications (§3, §7.8).
GS1_UNITS = [
    # fixed-length fields first and the serial last: no separator needed
    (f"01{GTIN}17201225" + "21SN12345", "SN12345", None, date(2020, 12, 25)),
    # lot then serial: the lot must be ended by GS
    (f"01{GTIN}10ABC123{GS}21SN12345", "SN12345", "ABC123", None),
    # day 00 means the last day of the month
    (f"01{GTIN}17201200" + f"10L1{GS}21S.1/2", "S.1/2", "L1", date(2020, 12, 31)),
    # a leading FNC1 sent as GS by the scanner
    (f"{GS}01{GTIN}21SN-9", "SN-9", None, None),
    # the human-readable form printed under the symbol
    (f"(01){GTIN}(17)201225(10)ABC123(21)SN12345", "SN12345", "ABC123", date(2020, 12, 25)),
]


@pytest.mark.parametrize(("text", "serial", "lot", "expiry"), GS1_UNITS)
def test_gs1_element_strings_give_gtin_serial_lot_and_expiry(
    text: str, serial: str, lot: str | None, expiry: date | None
) -> None:
    assert parse(text, PLAIN) == UnitCode(GTIN, serial, lot, expiry, imei=False, symbology=None)


@pytest.mark.parametrize("symbology", ["]C1", "]d2", "]Q3"])
def test_gs1_symbologies_are_recorded_with_the_unit(symbology: str) -> None:
    result = parse(f"{symbology}01{GTIN}10ABC123{GS}21SN12345", PLAIN)
    assert result == UnitCode(GTIN, "SN12345", "ABC123", None, symbology=symbology)


def test_a_wedge_scanner_stand_in_character_is_read_as_the_group_separator() -> None:
    result = parse(f"]d201{GTIN}10ABC123^21SN12345", CARET)
    assert result == UnitCode(GTIN, "SN12345", "ABC123", None, symbology="]d2")


def test_a_dropped_group_separator_is_refused_rather_than_read_as_a_long_lot() -> None:
    result = parse(f"01{GTIN}10ABC12321SN12345", PLAIN)
    assert isinstance(result, Rejected)
    assert result.code == "missing_separator"
    assert "'ABC123'" in result.message and "'SN12345'" in result.message
    assert "gs_stand_in" in result.message


def test_gs1_with_a_gtin_and_no_serial_is_a_product() -> None:
    assert parse(f"]C101{GTIN}", PLAIN) == ProductCode(f"01{GTIN}", GTIN, "]C1")
    assert parse(f"01{GTIN}17201225", PLAIN) == ProductCode(f"01{GTIN}17201225", GTIN)


@pytest.mark.parametrize(
    ("text", "code", "quoted"),
    [
        ("]C101095060001343532110", "bad_check_digit", "09506000134353"),
        (f"01{GTIN}17201399", "malformed_gs1", "17201399"),  # month 13
        ("]C1" + "00106141411234567897", "not_a_product", "(00)"),  # a pallet's SSCC
        (f"01{GTIN}21SN+1", "bad_serial", "SN+1"),  # GS1 allows +, the ledger does not
        ("]d2" + "21SN1", "malformed_gs1", "no GTIN"),
    ],
)
def test_bad_gs1_barcodes_are_refused_with_the_reason(text: str, code: str, quoted: str) -> None:
    result = parse(text, PLAIN)
    assert isinstance(result, Rejected)
    assert result.code == code
    assert quoted in result.message


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            f"https://id.gs1.org/01/{GTIN}/21/SN123",
            UnitCode(GTIN, "SN123", None, None),
        ),
        (
            f"https://brand.example.com/01/{GTIN}/10/ABC1/21/SN123?17=251231",
            UnitCode(GTIN, "SN123", "ABC1", date(2025, 12, 31)),
        ),
        (
            f"https://id.gs1.org/01/{GTIN}",
            ProductCode(f"https://id.gs1.org/01/{GTIN}", GTIN),
        ),
    ],
)
def test_gs1_digital_link_uris_are_read_like_element_strings(
    uri: str, expected: ProductCode | UnitCode
) -> None:
    assert parse(uri, PLAIN) == expected


@pytest.mark.parametrize(
    ("uri", "code"),
    [
        ("https://id.gs1.org/01/09506000134353/21/SN123", "bad_check_digit"),
        ("https://shop.example.com/about-us", "malformed_digital_link"),
    ],
)
def test_bad_digital_links_are_refused(uri: str, code: str) -> None:
    result = parse(uri, PLAIN)
    assert isinstance(result, Rejected) and result.code == code
    assert uri[:30] in result.message


def test_an_imei_whose_luhn_check_passes_is_a_unit() -> None:
    assert parse("490154203237518", PLAIN) == UnitCode(None, "490154203237518", imei=True)


def test_an_imei_whose_luhn_check_fails_is_refused() -> None:
    result = parse("490154203237519", PLAIN)
    assert isinstance(result, Rejected) and result.code == "bad_imei"
    assert "490154203237519" in result.message


def test_a_store_with_15_digit_serials_gets_a_failed_imei_as_a_plain_label() -> None:
    numeric = BarcodeOptions(numeric_serials=True)
    assert parse("490154203237519", numeric) == PlainLabel("490154203237519")


@pytest.mark.parametrize("text", ["SN-1", "C02XK1ZZJG5J", "ab/12.3:x_y", "12345", "]C0LAPTOP-7"])
def test_other_text_is_a_plain_label_for_the_ledger(text: str) -> None:
    symbology, body = split_symbology_identifier(text)
    assert parse(text, PLAIN) == PlainLabel(body, symbology)


@pytest.mark.parametrize(
    ("text", "code", "quoted"),
    [
        ("SN\t1", "control_character", "U+0009"),
        ("\x00SN1", "control_character", "U+0000"),
        ("SN1\r", "control_character", "position 4"),
        ("SN\u200b1", "control_character", "U+200B"),  # zero-width space
        ("SN 1", "bad_label", "a space"),
        ("SN#1", "bad_label", "'#'"),
        ("", "empty", "empty"),
        ("   ", "empty", "empty"),
        ("]C1", "empty", "empty"),
        ("X" * 600, "too_long", "600 characters"),
        ("S" * 65, "bad_label", "65 characters"),
    ],
)
def test_unusable_text_is_refused_with_a_reason_a_cashier_can_read(
    text: str, code: str, quoted: str
) -> None:
    result = parse(text, PLAIN)
    assert isinstance(result, Rejected)
    assert result.code == code
    assert quoted in result.message


def test_command_barcodes_are_recognised_by_the_configured_prefix() -> None:
    assert parse("#CMD:VOID", PLAIN) == CommandCode("VOID", "")
    assert parse("]C0#CMD:qty:3", PLAIN) == CommandCode("QTY", "3")
    assert parse("!!RETURN", BarcodeOptions(command_prefix="!!")) == CommandCode("RETURN", "")
    refused = parse("#CMD:", PLAIN)
    assert isinstance(refused, Rejected) and refused.code == "bad_command"


def test_command_barcodes_are_plain_text_when_commands_are_turned_off() -> None:
    result = parse("#CMD:VOID", BarcodeOptions(command_prefix=None))
    assert isinstance(result, Rejected) and result.code == "bad_label"


def test_a_symbology_given_by_the_driver_is_used_instead_of_looking_for_one() -> None:
    assert parse(f"01{GTIN}21SN1", PLAIN, symbology_id="]d2") == UnitCode(
        GTIN, "SN1", symbology="]d2"
    )
    assert symbology_name("]d2") == "GS1 DataMatrix"


@pytest.mark.parametrize("stand_in", ["1", "A", "-", "ab", GS])
def test_a_stand_in_that_gs1_data_can_contain_is_refused_at_configuration(stand_in: str) -> None:
    with pytest.raises(ValueError, match="gs_stand_in"):
        BarcodeOptions(gs_stand_in=stand_in)


# Property tests: whatever arrives, the answer is a result or a clear refusal.

RESULTS = (ProductCode, UnitCode, PlainLabel, CommandCode, Rejected)


def _assert_clear(result: object) -> None:
    assert isinstance(result, RESULTS)
    if isinstance(result, Rejected):
        assert result.code and result.code != "unreadable"
        assert len(result.message) > 20


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_a_result_or_a_clear_refusal(text: str) -> None:
    _assert_clear(parse(text, CARET))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_from_a_scanner_give_a_result_or_a_clear_refusal(data: bytes) -> None:
    _assert_clear(parse(data.decode("utf-8", "surrogateescape"), PLAIN))


GS1_ALPHABET = st.sampled_from(list("0123456789ABCDEFXYZabc-./"))
GS1_PIECES = st.lists(
    st.sampled_from(
        ["01", GTIN, "21", "10", "17", "201225", GS, "^", "(", ")", "]C1", "]d2", "https://", "/"]
    )
    | st.text(GS1_ALPHABET, max_size=6),
    max_size=10,
)


@settings(max_examples=400, deadline=None)
@given(GS1_PIECES)
def test_gs1_lookalike_text_gives_a_result_or_a_clear_refusal(pieces: list[str]) -> None:
    _assert_clear(parse("".join(pieces), CARET))


def _with_check_digit(payload: str) -> str:
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(payload)))
    return payload + str((10 - total % 10) % 10)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.text("0123456789", min_size=13, max_size=13),
    serial=st.text(st.sampled_from("ABCXYZ0123456789-./"), min_size=1, max_size=20),
    lot=st.none() | st.text(st.sampled_from("ABC0123456789"), min_size=1, max_size=20),
)
def test_every_unit_reads_the_same_as_element_string_stand_in_and_digital_link(
    payload: str, serial: str, lot: str | None
) -> None:
    gtin = _with_check_digit(payload)
    lot_part = f"10{lot}{GS}" if lot is not None else ""
    expected = UnitCode(gtin, serial, lot, None)
    plain = parse(f"01{gtin}{lot_part}21{serial}", PLAIN)
    if lot is None and isinstance(plain, Rejected):
        # With no separator in the text, a serial that could end early before fields
        # that parse (serial "0100": "01" and lot "0") reads two ways: never guessed.
        assert plain.code == "missing_separator"
    else:
        assert plain == expected
    assert parse(f"01{gtin}{lot_part.replace(GS, '^')}21{serial}", CARET) == expected
    lot_path = f"/10/{lot}" if lot is not None else ""
    link = f"https://id.gs1.org/01/{gtin}{lot_path}/21/{quote(serial, safe='')}"
    assert parse(link, PLAIN) == expected
