"""Identifiers in EPCIS: units (EPCs), places and documents as URIs, and back.

A unit whose product has a GTIN is a GS1 Digital Link URI,
`https://id.gs1.org/01/{GTIN-14}/21/{serial}`; any other unit is posd's own
`urn:posd:unit:{product}:{serial}`. A branch with a GLN is
`https://id.gs1.org/414/{GLN}` (a terminal in it adds `/254/{terminal}`); without
one it is `urn:posd:branch:{branch}`. A document is `urn:posd:{type}:{number}`.
Every component is percent-encoded, so each URI reads back to what made it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

POSD_URN = "urn:posd:"
# posd's own terms (extension fields) in EPCIS documents: `posd:event`, `posd:kind`, …
POSD_NAMESPACE = "urn:posd:voc:"
GS1_RESOLVER = "https://id.gs1.org"
# GS1 AI 254 (GLN extension): up to 20 characters of GS1's character set 82.
_GLN_EXTENSION = re.compile(r"[!\"%&'()*+,./0-9:;<=>?A-Z_a-z-]{1,20}")
_DIGITS = re.compile(r"\d+")


def _component(text: str) -> str:
    # Letters, digits and - . _ ~ stay; everything else (/, :, %, spaces, non-ASCII)
    # is percent-encoded as UTF-8, so a component never splits the URI.
    return quote(text, safe="")


def gs1_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for the digits of a key without its last digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def is_gs1_key(digits: str, lengths: tuple[int, ...]) -> bool:
    """Whether `digits` is a GS1 key of one of `lengths` with a right check digit."""
    return (
        _DIGITS.fullmatch(digits) is not None
        and len(digits) in lengths
        and gs1_check_digit(digits[:-1]) == int(digits[-1])
    )


def gtin14(gtin: str) -> str:
    return gtin.rjust(14, "0")


def unit_uri(product: str, serial: str, gtin: str | None) -> str:
    """The EPC of a unit: Digital Link when its product has a GTIN."""
    if gtin:
        return f"{GS1_RESOLVER}/01/{gtin14(gtin)}/21/{_component(serial)}"
    return f"{POSD_URN}unit:{_component(product)}:{_component(serial)}"


def document_uri(doc_type: str, number: str) -> str:
    return f"{POSD_URN}{_component(doc_type)}:{_component(number)}"


def event_uri(event_uuid: str) -> str:
    return f"urn:uuid:{event_uuid}"


@dataclass(frozen=True)
class Places:
    """Where events happen: each branch's GLN, where one is configured."""

    gln: dict[str, str] = field(default_factory=dict)

    def branch(self, branch: str) -> str:
        gln = self.gln.get(branch)
        if gln:
            return f"{GS1_RESOLVER}/414/{gln}"
        return f"{POSD_URN}branch:{_component(branch)}"

    def terminal(self, branch: str, terminal: str) -> str:
        gln = self.gln.get(branch)
        if gln and _GLN_EXTENSION.fullmatch(terminal):
            return f"{GS1_RESOLVER}/414/{gln}/254/{terminal}"
        return f"{POSD_URN}terminal:{_component(terminal)}"


class BadGlnError(ValueError):
    """A GLN that is not 13 digits with a right check digit."""


def check_gln(gln: str) -> str:
    if not is_gs1_key(gln, (13,)):
        raise BadGlnError(f"GLN {gln[:20]!r} is not 13 digits with a right check digit")
    return gln


# -- reading EPCs back ------------------------------------------------------------


@dataclass(frozen=True)
class UnitId:
    """A unit as an EPC names it: by GTIN or by posd product code, and its serial."""

    serial: str
    gtin: str | None = None  # 14 digits
    product: str | None = None
    lot: str | None = None  # a Digital Link may carry the lot (AI 10) too


_DL = re.compile(
    r"https?://[^/?#\s]+(?:/[^?#\s]*)?/(?:01|gtin)/(?P<gtin>\d{8,14})"
    r"(?:/(?:22|cpv)/[^/?#]+)?(?:/(?:10|lot)/(?P<lot>[^/?#]+))?/(?:21|ser)/(?P<serial>[^/?#]+)"
    r"/?(?:\?[^#]*)?(?:#.*)?"
)
_SGTIN = re.compile(r"urn:epc:id:sgtin:(?P<company>\d{6,12})\.(?P<item>\d{1,7})\.(?P<serial>.+)")
_POSD_UNIT = re.compile(r"urn:posd:unit:(?P<product>[^:]+):(?P<serial>[^:]+)")


MAX_EPC_LENGTH = 400  # a Digital Link with every qualifier is well under this


class BadEpcError(ValueError):
    """An EPC that names no serialized unit posd can read."""


def read_unit(epc: str) -> UnitId:
    """The unit an EPC names (BadEpcError saying why when it names none)."""
    shown = epc[:80]
    if len(epc) > MAX_EPC_LENGTH:
        raise BadEpcError(
            f"EPC {shown!r}… is {len(epc):,} characters; an EPC is at most {MAX_EPC_LENGTH}"
        )
    if match := _DL.fullmatch(epc):
        gtin = gtin14(match["gtin"])
        if len(match["gtin"]) not in (8, 12, 13, 14) or not is_gs1_key(gtin, (14,)):
            raise BadEpcError(f"EPC {shown!r}: GTIN {match['gtin']} has a wrong check digit")
        lot = unquote(match["lot"]) if match["lot"] else None
        return UnitId(unquote(match["serial"]), gtin=gtin, lot=lot)
    if match := _SGTIN.fullmatch(epc):
        company, item = match["company"], match["item"]
        if len(company) + len(item) != 13:
            raise BadEpcError(f"EPC {shown!r}: company prefix and item reference are not 13 digits")
        body = item[0] + company + item[1:]
        return UnitId(unquote(match["serial"]), gtin=body + str(gs1_check_digit(body)))
    if match := _POSD_UNIT.fullmatch(epc):
        return UnitId(unquote(match["serial"]), product=unquote(match["product"]))
    raise BadEpcError(
        f"EPC {shown!r} names no serialized unit posd reads: a GS1 Digital Link with a serial"
        " (https://id.gs1.org/01/GTIN/21/SERIAL), an SGTIN (urn:epc:id:sgtin:…) or a posd"
        " unit (urn:posd:unit:PRODUCT:SERIAL)"
    )
