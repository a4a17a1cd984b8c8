"""What a scanned barcode means: a product, a unit, a plain label, a command, or a refusal.

Pure: no I/O and no clock. `parse(text, options)` returns exactly one of `ProductCode`,
`UnitCode`, `PlainLabel`, `CommandCode` or `Rejected`, and never raises, whatever the
text. A `Rejected` carries a reason code for the audit record and a sentence a cashier
can act on, quoting the bad value.

How text is read, in order:

1. Empty, longer than `options.max_length`, or holding a control character other than
   the GS1 group separator (GS, 0x1D): rejected.
2. An AIM symbology identifier (`]C1`, `]d2`, `]E0`, ...) at the start is split off.
   Scanner drivers already do this (`Scan.symbology_id`); pass that as `symbology_id`
   and the text without it. Text that still starts with one (typed by hand, a test) is
   split here, so the identifier is taken off exactly once either way.
3. Surrounding spaces are dropped; scanners set up with a space suffix are common.
4. `options.command_prefix` (`#CMD:VOID`, `#CMD:QTY:2`) makes a `CommandCode`.
5. `http://` or `https://` is a GS1 Digital Link URI.
6. A GS1 symbology (GS1-128, GS1 DataMatrix, GS1 QR, DataBar, DotCode), a GS or the
   configured `gs_stand_in` in the text, `(01)…` human-readable form, or text starting
   with `01` and 14 digits is a GS1 element string. Keyboard-wedge scanners often
   cannot type GS; they send `gs_stand_in` instead, which is read as GS.
7. Digits only:
   - 8, 12, 13 or 14 digits are a GTIN (EAN-8, UPC-A, EAN-13, GTIN-14) and must pass
     their check digit; 8 digits that fail as EAN-8 are tried as UPC-E, and with the
     EAN/UPC identifier `]E0` 6 to 8 digits are read as UPC-E.
   - 15 digits are an IMEI and must pass its Luhn check. No GTIN has 15 digits, so a
     failed check cannot be anything else valid: `Rejected("bad_imei")`.
   - 14 digits (outside EAN/UPC/ITF symbologies) may also be an IMEI printed without
     its check digit: the result carries them as `imei`, and the lane reads them as
     that unit when the ledger has it and no product with that GTIN
     (`daemon.rules.lane.imei`). Only the ledger can tell; the parse never guesses.
   - With `options.numeric_serials` the store has plain numeric serials of those
     lengths, so a GTIN or IMEI that fails its check is a `PlainLabel` instead.
8. Anything else is a `PlainLabel` (a serial or an internal product code), checked
   with `check_serial`. Per-product serial formats are the caller's to check.

A unit's serial from GS1 (AI 21) is also checked with `check_serial`, so a serial the
ledger could not store is refused here with the reason.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property, lru_cache

from biip import ParseConfig, ParseError
from biip.gs1_application_identifiers import GS1ApplicationIdentifier
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from biip.gs1_element_strings import GS1ElementStrings
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin
from biip.upc import Upc
from stdnum import imei as stdnum_imei

from daemon.rules.serials import SerialError, check_serial

GS = "\x1d"
DEFAULT_MAX_LENGTH = 512
RESCAN = "scan it again or type the number printed under the barcode"

# GS1 data never holds these, so any of them can stand in for GS (GS1 General
# Specifications, figure 7.11-1: the 82 characters a GS1 element string may contain).
_CSET82 = frozenset(
    "!\"%&'()*+,-./:;<=>?_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

_AIM_PREFIX = re.compile(r"\][A-Za-z][0-9A-Za-z]")
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_GS1_GTIN_START = re.compile(r"01[0-9]{14}", re.ASCII)
_COMMAND_NAME = re.compile(r"[A-Za-z0-9_]+", re.ASCII)

GS1_SYMBOLOGIES = frozenset({"]C1", "]e0", "]e1", "]e2", "]d2", "]Q3", "]J1"})
_EAN_UPC_SYMBOLOGIES = frozenset({"]E0", "]E3", "]E4", "]I1"})

SYMBOLOGY_NAMES = {
    "]C0": "Code 128",
    "]C1": "GS1-128",
    "]d1": "Data Matrix",
    "]d2": "GS1 DataMatrix",
    "]Q1": "QR Code",
    "]Q3": "GS1 QR Code",
    "]E0": "EAN-13 / UPC-A / UPC-E",
    "]E3": "EAN/UPC with add-on",
    "]E4": "EAN-8",
    "]e0": "GS1 DataBar",
    "]I1": "ITF-14",
    "]A0": "Code 39",
    "]J1": "GS1 DotCode",
}


@dataclass(frozen=True)
class BarcodeOptions:
    """How this store's barcodes are read (from the lane's configuration)."""

    command_prefix: str | None = "#CMD:"
    gs_stand_in: str | None = None
    numeric_serials: bool = False
    max_length: int = DEFAULT_MAX_LENGTH
    # Every scanner sends GS (or `gs_stand_in`) wherever a barcode has one, so text
    # without a separator had none: see `_hidden_field`.
    separators_sent: bool = False

    def __post_init__(self) -> None:
        stand_in = self.gs_stand_in
        if stand_in is not None and (len(stand_in) != 1 or stand_in in _CSET82 or stand_in == GS):
            raise ValueError(
                f"gs_stand_in {stand_in!r} must be one character that GS1 data never "
                "contains, such as | ^ ~ or #"
            )
        if self.command_prefix is not None and not self.command_prefix.strip():
            raise ValueError(
                f"command_prefix {self.command_prefix!r} is blank; use a prefix such as "
                "'#CMD:' or None to turn command barcodes off"
            )
        if self.max_length < 1:
            raise ValueError(f"max_length {self.max_length} must be at least 1")

    @cached_property
    def _biip_config(self) -> ParseConfig:
        separators = (GS,) if self.gs_stand_in is None else (GS, self.gs_stand_in)
        return ParseConfig(separator_chars=separators)


@dataclass(frozen=True)
class ProductCode:
    """A product barcode (EAN/UPC/GTIN, or GS1 with a GTIN and no serial).

    `imei`: the same 14 digits, which may instead be a phone's IMEI printed without
    its check digit; the lane reads them as that unit when the ledger says so
    (`daemon.rules.lane.imei`)."""

    code: str
    gtin: str | None
    symbology: str | None = None
    imei: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class UnitCode:
    """One physical unit: GTIN + serial from GS1, or a phone's IMEI."""

    gtin: str | None
    serial: str
    lot: str | None = None
    expiry: date | None = None
    imei: bool = False
    symbology: str | None = None


@dataclass(frozen=True)
class PlainLabel:
    """A label the lane looks up in the ledger: a serial or an internal product code."""

    text: str
    symbology: str | None = None


@dataclass(frozen=True)
class CommandCode:
    """A command barcode from the cashier's sheet, e.g. `#CMD:VOID`."""

    command: str
    argument: str = ""


@dataclass(frozen=True)
class Rejected:
    """A scan that cannot be used; `message` tells the cashier why and what to do.

    `imei`: 14 digits refused as a GTIN with a wrong check digit, which may instead be
    a phone's IMEI printed without its check digit (see `ProductCode.imei`)."""

    code: str
    message: str
    imei: str | None = field(default=None, compare=False)


ParseResult = ProductCode | UnitCode | PlainLabel | CommandCode | Rejected


@dataclass(frozen=True)
class _Body:
    """The text being read, with its symbology identifier already split off."""

    raw: str
    text: str
    symbology: str | None = field(default=None)


def split_symbology_identifier(text: str) -> tuple[str | None, str]:
    """Split a leading AIM symbology identifier: `"]C1010…"` → `("]C1", "010…")`."""
    if _AIM_PREFIX.match(text):
        return text[:3], text[3:]
    return None, text


def symbology_name(symbology: str | None) -> str:
    """A name a person recognises for an AIM identifier, e.g. `]d2` → `GS1 DataMatrix`."""
    if symbology is None:
        return "unknown symbology"
    return SYMBOLOGY_NAMES.get(symbology, f"symbology {symbology}")


def parse(text: str, options: BarcodeOptions, symbology_id: str | None = None) -> ParseResult:
    """Say what a scanned text is. Never raises; a refusal is a `Rejected`."""
    try:
        return _parse(text, options, symbology_id)
    except Exception as exc:  # a fault in a library must not stop the lane
        return Rejected(
            "unreadable",
            f"barcode {_quote(text)} could not be read ({type(exc).__name__}); {RESCAN}",
        )


def _parse(text: str, options: BarcodeOptions, symbology_id: str | None) -> ParseResult:
    if not isinstance(text, str):
        return Rejected("unreadable", f"barcode {text!r} is not text; {RESCAN}")
    if len(text) > options.max_length:
        return Rejected(
            "too_long",
            f"barcode {_quote(text)} is {len(text)} characters; the most accepted is "
            f"{options.max_length}. Check that two scans did not run together, then {RESCAN}",
        )
    problem = _control_character(text)
    if problem is not None:
        return problem
    if symbology_id is None:
        symbology_id, text = split_symbology_identifier(text)
    body = _Body(raw=text, text=text.strip(" "), symbology=symbology_id)
    if not body.text:
        return Rejected("empty", f"the scan was empty; {RESCAN}")

    prefix = options.command_prefix
    if prefix is not None and body.text.startswith(prefix):
        return _command(body.text, prefix)
    if body.text[:8].lower().startswith(("http://", "https://")):
        return _digital_link(body, options)
    if _looks_gs1(body, options):
        return _gs1_message(body, options)
    if _DIGITS.fullmatch(body.text):
        return _digits(body, options)
    return _plain_label(body)


def _quote(text: str, limit: int = 64) -> str:
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + "…"


def _control_character(text: str) -> Rejected | None:
    if text.isprintable() or text.replace(GS, "").isprintable():
        return None  # the common case, checked in C; isprintable() is False for all of C*
    for position, ch in enumerate(text):
        if ch != GS and unicodedata.category(ch)[0] == "C":
            return Rejected(
                "control_character",
                f"barcode {_quote(text)} has a control character (U+{ord(ch):04X}) at "
                f"position {position + 1}; check the scanner's prefix and suffix settings, "
                f"then {RESCAN}",
            )
    return None


def _command(text: str, prefix: str) -> ParseResult:
    name, _, argument = text[len(prefix) :].partition(":")
    if not _COMMAND_NAME.fullmatch(name):
        return Rejected(
            "bad_command",
            f"command barcode {_quote(text)} names no command; command barcodes read "
            f"{prefix}NAME or {prefix}NAME:ARGUMENT",
        )
    return CommandCode(command=name.upper(), argument=argument)


def _looks_gs1(body: _Body, options: BarcodeOptions) -> bool:
    text = body.text
    return (
        body.symbology in GS1_SYMBOLOGIES
        or GS in text
        or (options.gs_stand_in is not None and options.gs_stand_in in text)
        or text.startswith("(")
        or (len(text) > 14 and _GS1_GTIN_START.match(text) is not None)
    )


def _gs1_message(body: _Body, options: BarcodeOptions) -> ParseResult:
    stand_in = options.gs_stand_in
    text = body.text.lstrip(GS + (stand_in or ""))  # a leading FNC1 sent as GS
    try:
        if text.startswith("("):
            message = GS1Message.parse_hri(text, config=options._biip_config)
        else:
            message = GS1Message.parse(text, config=options._biip_config)
    except ParseError as exc:
        shown = body.text.replace(GS, "<GS>")
        return Rejected(
            "malformed_gs1",
            f"GS1 barcode {_quote(shown)} is malformed ({exc}); if the scanner cannot send "
            f"the group separator, set gs_stand_in to the character it sends; {RESCAN}",
        )
    if not text.startswith("("):  # the human-readable form delimits every field
        missing = _unended_field(text, message.element_strings, options)
        missing = missing or _hidden_field(text, message.element_strings, options)
        if missing is not None:
            return missing
    return _from_elements(message.element_strings, body, "GS1 barcode")


def _separators(options: BarcodeOptions) -> str:
    return GS + (options.gs_stand_in or "")


def _unended_field(
    text: str, elements: GS1ElementStrings, options: BarcodeOptions
) -> Rejected | None:
    """Refuse a variable-length field that is not last and that no separator ends.

    Such a field ran to its longest length and the reader went on with what followed
    as the next field (`21` and twenty characters, then `10LOT`). GS1 requires a
    separator there; without one the split is a guess, so it is refused.
    """
    separators = _separators(options)
    position = 0
    for index, element in enumerate(elements):
        position += len(element.ai.ai) + len(element.value)
        ended = position < len(text) and text[position] in separators
        if ended:
            position += 1
        elif element.ai.separator_required and index < len(elements) - 1:
            after = elements[index + 1]
            return Rejected(
                "missing_separator",
                f"GS1 barcode {_quote(_shown_gs(text))} has no group separator after its "
                f"({element.ai.ai}) {element.value!r}, so where that field ends and "
                f"({after.ai.ai}) begins is a guess; {_SEPARATOR_ADVICE}",
            )
    return None


def _hidden_field(
    text: str, elements: GS1ElementStrings, options: BarcodeOptions
) -> Rejected | None:
    """Refuse GS1 text that reads two ways because a group separator may be missing.

    A variable-length field such as the serial (21) or the lot (10) runs to the next
    GS or the end. A wedge scanner that cannot type GS turns `21SN1 GS 10ABC` into
    `21SN110ABC`, which parses cleanly as serial `SN110ABC` and no lot: a different
    unit. When the text has no separator at all and its last field, read shorter,
    leaves fields that parse (`10ABC`), the reading is ambiguous and is refused,
    whichever fields were in which order. Text with a separator shows that the scanner
    sends them, so none is missing; so does a store whose scanners are set up to send
    them (`separators_sent`, or a `gs_stand_in` they send instead).
    """
    if options.separators_sent or options.gs_stand_in is not None:
        return None
    if not elements or any(ch in text for ch in _separators(options)):
        return None
    last = elements[-1]
    if not last.ai.separator_required:
        return None
    start = len(text) - len(last.value)
    for cut in range(1, len(last.value)):
        rest = text[start + cut :]
        if not _starts_field(rest):
            continue
        try:
            split = GS1Message.parse(text[: start + cut] + GS + rest, config=options._biip_config)
        except ParseError:
            continue
        ais = [e.ai.ai for e in split.element_strings]
        if len(ais) != len(set(ais)):
            continue  # a field twice is no GS1 message
        other = ", ".join(
            f"({e.ai.ai}) {e.value!r}" for e in split.element_strings[len(elements) :]
        )
        return Rejected(
            "missing_separator",
            f"GS1 barcode {_quote(text)} has no group separator, so its ({last.ai.ai}) "
            f"{last.value!r} may really be {last.value[:cut]!r} followed by {other}; "
            f"{_SEPARATOR_ADVICE}",
        )
    return None


_SEPARATOR_ADVICE = (
    "set the scanner to send GS and the lane's barcode.separators_sent, or set "
    "gs_stand_in to the character it sends instead, then scan again"
)


def _starts_field(text: str) -> bool:
    """Whether `text` starts with a GS1 application identifier and a value it allows
    (a cheap test before parsing the whole text again)."""
    if not text[:2].isdigit():
        return False  # every AI is digits
    pattern = _field_start(text[:4])
    return pattern is not None and pattern.match(text) is not None


@lru_cache(maxsize=4096)
def _field_start(head: str) -> re.Pattern[str] | None:
    """The pattern of the AI that text starting with `head` (4 characters) holds."""
    try:
        ai = GS1ApplicationIdentifier.extract(head)
    except ParseError:
        return None
    return re.compile(ai.pattern.removesuffix("$"))


def _shown_gs(text: str) -> str:
    return text.replace(GS, "<GS>")


def _digital_link(body: _Body, options: BarcodeOptions) -> ParseResult:
    try:
        link = GS1DigitalLinkURI.parse(body.text, config=options._biip_config)
    except (ParseError, ValueError) as exc:  # ValueError: urllib refused the address
        return Rejected(
            "malformed_digital_link",
            f"web address {_quote(body.text)} is not a GS1 Digital Link for a product "
            f"({exc}); scan the product's barcode instead",
        )
    return _from_elements(link.element_strings, body, "GS1 Digital Link")


def _from_elements(elements: GS1ElementStrings, body: _Body, kind: str) -> ParseResult:
    found = {element.ai.ai: element for element in elements}
    gtin_element = found.get("01")
    gtin: str | None = None
    if gtin_element is not None:
        if gtin_element.gtin is None:
            return Rejected(
                "bad_check_digit",
                f"the GTIN {gtin_element.value} in {kind} {_quote(body.text)} fails its "
                f"check digit; the label may be misprinted, {RESCAN}",
            )
        gtin = gtin_element.gtin.as_gtin_14()
    serial_element = found.get("21")
    if serial_element is None:
        if gtin is None:
            present = ", ".join(f"({ai})" for ai in found) or "nothing"
            return Rejected(
                "not_a_product",
                f"{kind} {_quote(body.text)} holds {present} but no GTIN (01), so it is not "
                "a product; scan the product's own barcode",
            )
        return ProductCode(code=body.text, gtin=gtin, symbology=body.symbology)
    if gtin is None:
        return Rejected(
            "malformed_gs1",
            f"{kind} {_quote(body.text)} has a serial (21) but no GTIN (01); GS1 requires "
            f"both, {RESCAN}",
        )
    serial = serial_element.value
    try:
        check_serial(serial)
    except SerialError as problem:
        return Rejected("bad_serial", f"{problem} (from {kind} {_quote(body.text)})")
    lot = found.get("10")
    expiry = found.get("17")
    return UnitCode(
        gtin=gtin,
        serial=serial,
        lot=lot.value if lot is not None else None,
        expiry=expiry.date if expiry is not None else None,
        imei=False,
        symbology=body.symbology,
    )


def _digits(body: _Body, options: BarcodeOptions) -> ParseResult:
    text = body.text
    strict = body.symbology in _EAN_UPC_SYMBOLOGIES
    if body.symbology == "]E0" and len(text) in (6, 7, 8):
        upc = _upc_e(text)
        if upc is not None:
            return ProductCode(code=text, gtin=upc, symbology=body.symbology)
    if len(text) in (8, 12, 13, 14) or strict:
        # 14 digits in a symbology that is not EAN/UPC/ITF may be an IMEI without its
        # check digit (IMEI-14) as well as a GTIN-14: the ledger tells them apart.
        imei = text if len(text) == 14 and not strict else None
        gtin = _gtin(text)
        if gtin is None and len(text) == 8:
            gtin = _upc_e(text)
        if gtin is not None:
            return ProductCode(code=text, gtin=gtin, symbology=body.symbology, imei=imei)
        if options.numeric_serials and not strict:
            return _plain_label(body)
        return Rejected(
            "bad_check_digit",
            f"product barcode {text!r} fails its check digit; the label may be misprinted "
            f"or mistyped, {RESCAN}",
            imei=imei,
        )
    if len(text) == 15:
        if stdnum_imei.is_valid(text):
            return UnitCode(gtin=None, serial=text, imei=True, symbology=body.symbology)
        if options.numeric_serials:
            return _plain_label(body)
        return Rejected(
            "bad_imei",
            f"IMEI {text!r} fails its check digit; compare it with the IMEI on the box or "
            "dial *#06# on the phone, then type it",
        )
    return _plain_label(body)


def _gtin(text: str) -> str | None:
    try:
        return Gtin.parse(text).as_gtin_14()
    except ParseError:
        return None


def _upc_e(text: str) -> str | None:
    try:
        return Gtin.parse(Upc.parse(text).as_upc_a()).as_gtin_14()
    except ParseError:
        return None


def _plain_label(body: _Body) -> ParseResult:
    try:
        check_serial(body.text)
    except SerialError as problem:
        return Rejected("bad_label", f"{problem}; {RESCAN}")
    return PlainLabel(text=body.text, symbology=body.symbology)
