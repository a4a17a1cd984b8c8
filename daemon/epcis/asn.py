"""A supplier's advance ship notice in EPCIS 2.0 → the units a purchase order brings.

    notice = read_notice(data, po="PO-7", product_of_gtin=lookup)
    ledger.expect_units(notice.units)

ObjectEvents whose business step is `shipping` or `receiving` name the units and the
purchase order (`--po`, or the event's own `po` business transaction); a
`commissioning` event (or any of them) may give lot and expiry in its ILMD
(`cbvmda:lotNumber`, `cbvmda:itemExpirationDate`) or the lot in the EPC's Digital
Link. Other events (aggregation, other steps) are listed as not used. Everything that
cannot be read is a problem naming its event; one problem refuses the whole notice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import unquote

from daemon.epcis.identifiers import BadEpcError, UnitId, read_unit
from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.expected import ExpectedUnit
from daemon.rules.serials import serial_key

MAX_NOTICE_BYTES = 64 * 1024 * 1024
MAX_UNITS = 100_000  # the most a receipt takes (a quantity's limit)
MAX_PROBLEMS = 200  # reported; the count says how many more there were
_USED_STEPS = frozenset({"shipping", "receiving", "commissioning"})
_NAMES_PO = frozenset({"shipping", "receiving"})
_LOT_KEYS = ("cbvmda:lotNumber", "urn:epcglobal:cbv:mda:lotNumber")
_EXPIRY_KEYS = ("cbvmda:itemExpirationDate", "urn:epcglobal:cbv:mda:itemExpirationDate")
_STEP_FORMS = ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-", "cbv:BizStep-")
_PO_TYPES = frozenset({"po", "urn:epcglobal:cbv:btt:po", "https://ref.gs1.org/cbv/BTT-po"})

# A product code by GTIN-14 (None: no product has it).
ProductOfGtin = Callable[[str], str | None]


@dataclass
class ShipNotice:
    """What a notice says: the units to expect, and the events it has that posd does
    not use (by type and business step), for the person importing it to see."""

    units: list[ExpectedUnit] = field(default_factory=list)
    unused: Counter[str] = field(default_factory=Counter)
    events: int = 0


@dataclass
class _Unit:
    product: str
    serial: str
    label: str
    po: str | None = None
    supplier: str | None = None
    lot: str | None = None
    expiry: str | None = None
    source: str | None = None
    shipped: bool = False


def read_notice(
    data: bytes,
    *,
    po: str | None,
    product_of_gtin: ProductOfGtin,
    supplier: str | None = None,
) -> ShipNotice:
    """Read a notice, or raise Refusal with a problem per bad event."""
    document = _document(data)
    body = document.get("epcisBody")
    events = body.get("eventList") if isinstance(body, dict) else None
    if not isinstance(events, list):
        raise _refusal("not_epcis", "the document has no epcisBody.eventList")
    reader = _Reader(po, product_of_gtin, supplier)
    for number, event in enumerate(events, 1):
        reader.event(f"event {number}", event)
    notice = reader.finish()
    notice.events = len(events)
    return notice


def _refusal(code: str, message: str) -> Refusal:
    return Refusal([Problem(code, message + "; nothing was imported")])


def _document(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_NOTICE_BYTES:
        raise _refusal(
            "too_large",
            f"the notice is {len(data):,} bytes; the most is {MAX_NOTICE_BYTES:,}: split it",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _refusal("not_utf8", f"byte {error.start + 1} is not UTF-8 text") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise _refusal("malformed_json", "the JSON is nested too deeply") from None
    except ValueError as error:
        raise _refusal("malformed_json", f"the file is not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("type") != "EPCISDocument":
        raise _refusal("not_epcis", 'the file is not an EPCIS document ("type": "EPCISDocument")')
    return document


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _step(value: object) -> str | None:
    text = _text(value)
    if text is None:
        return None
    for form in _STEP_FORMS:
        if text.startswith(form):
            return text[len(form) :]
    return text


def _po_number(uri: str) -> str:
    """The document number a business transaction URI names."""
    if uri.startswith("urn:posd:po:"):
        return unquote(uri.removeprefix("urn:posd:po:"))
    if uri.startswith("urn:epcglobal:cbv:bt:"):
        return unquote(uri.rsplit(":", 1)[-1])
    return unquote(uri.rstrip("/").rsplit("/", 1)[-1])


class _Reader:
    def __init__(self, po: str | None, product_of_gtin: ProductOfGtin, supplier: str | None):
        self.po = po
        self.product_of_gtin = product_of_gtin
        self.supplier = supplier
        self.units: dict[tuple[str, str], _Unit] = {}
        self.problems: list[Problem] = []
        self.unused: Counter[str] = Counter()
        self.epcs = 0

    def problem(self, code: str, message: str, serial: str | None = None) -> None:
        self.problems.append(Problem(code, message, serial))

    def event(self, label: str, event: object) -> None:
        if not isinstance(event, dict):
            self.problem("bad_event", f"{label} is not an object")
            return
        kind = event.get("type")
        step = _step(event.get("bizStep"))
        if kind != "ObjectEvent" or step not in _USED_STEPS or event.get("action") == "DELETE":
            self.unused[f"{_text(kind) or '?'} {step or '(no business step)'}"[:80]] += 1
            return
        if event.get("action") not in ("ADD", "OBSERVE"):
            self.problem("bad_event", f"{label}: action {event.get('action')!r} is not ADD")
            return
        epcs = event.get("epcList")
        if not isinstance(epcs, list) or not all(isinstance(e, str) for e in epcs):
            self.problem("bad_event", f"{label}: epcList is not a list of EPC URIs")
            return
        if not epcs:
            self.problem(
                "no_serials", f"{label} names no serialized units (posd receives units by serial)"
            )
            return
        self.epcs += len(epcs)
        if self.epcs > MAX_UNITS:
            if self.epcs - len(epcs) <= MAX_UNITS:
                self.problem("too_many", f"{label}: a notice names at most {MAX_UNITS:,} units")
            return
        lot, expiry = self._ilmd(label, event.get("ilmd"))
        po = self._po(label, event) if step in _NAMES_PO else None
        if step in _NAMES_PO and po is None:
            return
        source = _text(event.get("eventID"))
        supplier = _text(event.get("posd:supplier")) or self.supplier
        for epc in epcs:
            self._unit(label, epc, step in _NAMES_PO, po, supplier, lot, expiry, source)

    def _ilmd(self, label: str, ilmd: object) -> tuple[str | None, str | None]:
        if ilmd is None:
            return None, None
        if not isinstance(ilmd, dict):
            self.problem("bad_event", f"{label}: ilmd is not an object")
            return None, None
        lot = next((ilmd[k] for k in _LOT_KEYS if k in ilmd), None)
        expiry = next((ilmd[k] for k in _EXPIRY_KEYS if k in ilmd), None)
        if lot is not None and not isinstance(lot, str):
            self.problem("bad_event", f"{label}: the lot number is not text")
            lot = None
        if expiry is not None:
            if not isinstance(expiry, str):
                self.problem("bad_event", f"{label}: the expiry date is not text")
                return lot, None
            try:
                expiry = date.fromisoformat(expiry[:10]).isoformat()
            except ValueError:
                self.problem("bad_date", f"{label}: expiry {expiry[:40]!r} is not a date")
                expiry = None
        return lot, expiry

    def _po(self, label: str, event: Mapping[str, Any]) -> str | None:
        named: list[str] = []
        transactions = event.get("bizTransactionList", [])
        if not isinstance(transactions, list):
            self.problem("bad_event", f"{label}: bizTransactionList is not a list")
            return None
        for entry in transactions:
            if not (isinstance(entry, dict) and isinstance(entry.get("bizTransaction"), str)):
                self.problem("bad_event", f"{label}: a business transaction has no URI")
                return None
            if _text(entry.get("type")) in _PO_TYPES:
                named.append(_po_number(entry["bizTransaction"]))
        if self.po is not None:
            if named and self.po not in named:
                self.problem(
                    "other_po",
                    f"{label} is for purchase order {', '.join(n[:40] for n in named)},"
                    f" not {self.po}",
                )
                return None
            return self.po
        if len(set(named)) != 1:
            what = "no purchase order" if not named else "several purchase orders"
            self.problem("which_po", f"{label} names {what}: give the PO (--po)")
            return None
        return named[0]

    def _unit(
        self,
        label: str,
        epc: str,
        shipped: bool,
        po: str | None,
        supplier: str | None,
        lot: str | None,
        expiry: str | None,
        source: str | None,
    ) -> None:
        try:
            unit_id = read_unit(epc)
        except BadEpcError as error:
            self.problem("bad_epc", f"{label}: {error}")
            return
        product = self._product(label, unit_id)
        if product is None:
            return
        key = (product, serial_key(unit_id.serial))
        unit = self.units.get(key)
        if unit is None:
            unit = self.units[key] = _Unit(product, unit_id.serial, label)
        if shipped:
            if unit.shipped and unit.po != po:
                self.problem(
                    "two_pos",
                    f"{label}: {product} serial {unit_id.serial!r} is also on PO {unit.po}"
                    f" ({unit.label})",
                    unit_id.serial,
                )
            unit.shipped, unit.po, unit.label = True, po, label
            unit.source = source or unit.source
            unit.supplier = supplier or unit.supplier
        for name, value in (("lot", unit_id.lot or lot), ("expiry", expiry)):
            if value is None:
                continue
            earlier = getattr(unit, name)
            if earlier is not None and earlier != value:
                self.problem(
                    "conflicting_" + name,
                    f"{label}: {product} serial {unit_id.serial!r} has {name} {value!r} here"
                    f" and {earlier!r} elsewhere in the notice",
                    unit_id.serial,
                )
            setattr(unit, name, value)

    def _product(self, label: str, unit_id: UnitId) -> str | None:
        if unit_id.product is not None:
            return unit_id.product
        assert unit_id.gtin is not None
        product = self.product_of_gtin(unit_id.gtin)
        if product is None:
            self.problem(
                "unknown_gtin",
                f"{label}: no product has GTIN {unit_id.gtin}; add it with"
                f" `posd product add CODE NAME --gtin {unit_id.gtin}`",
                unit_id.serial,
            )
        return product

    def finish(self) -> ShipNotice:
        if self.problems:
            shown = self.problems[:MAX_PROBLEMS]
            if len(self.problems) > MAX_PROBLEMS:
                more = len(self.problems) - MAX_PROBLEMS
                shown.append(Problem("more_problems", f"… and {more:,} more problems"))
            raise Refusal(shown)
        units = [
            ExpectedUnit(
                u.po or "",
                u.product,
                u.serial,
                u.supplier,
                u.lot,
                u.expiry,
                u.source[:200] if u.source else None,
                u.label,
            )
            for u in self.units.values()
            if u.shipped
        ]
        if not units:
            raise _refusal(
                "nothing_expected",
                "the notice has no shipping or receiving ObjectEvent naming serialized units",
            )
        return ShipNotice(units, self.unused)
