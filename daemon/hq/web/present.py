"""How the dashboard says things to a store manager: times in the store's zone, money,
rates as percentages, counts with thousands separators, and an event's details in
words ("Price 1,249.00", "Override by manager Mia: unit was in transit").

    say = Presenter(ZoneInfo("Europe/Berlin"))
    say.when("2026-11-23T09:00:00Z")          # '23 Nov 2026 10:00'
    say.cell("excess_cents", 150000)          # '1,500.00'
    say.details("override", {"manager": "Mia", "overrode": ["in_transit"], "for": "sell"})

Every function takes what HQ stored, whatever it is: a value it cannot read is shown
as it is (the templates escape it), never an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

# Event fields in words; any other field is shown by its name with `_` as spaces.
FIELD_LABELS = {
    "price_cents": "Price",
    "cost_cents": "Cost",
    "corrected_price_cents": "Price corrected",
    "corrected_kind": "Corrects a",
    "corrects": "Corrects event",
    "merge_of": "Merges event",
    "resolved_by": "Resolved by event",
    "fork": "Between events",
    "po": "Purchase order",
    "sold_on": "Sold on",
    "warranty_until": "Warranty until",
    "dest_branch": "Going to branch",
    "repair_ticket": "Repair ticket",
    "pre_repair_state": "State before repair",
    "doc_status": "Document",
}
# Why a manager let a unit through, by the refusal's code.
OVERRIDE_WORDS = {
    "in_transit": "unit was in transit",
    "wrong_branch": "unit was at another branch",
    "needs_manager": "it needs a manager",
}
# Fields holding an event id: shown short, as the conflict queue shows them.
EVENT_ID_FIELDS = frozenset({"corrects", "merge_of", "resolved_by", "fork", "last_event"})
TIME_FIELDS = frozenset({"day", "expiry", "until"})
RATE_FIELDS = frozenset({"accuracy"})
WORD_FIELDS = frozenset(
    {"state", "flag", "flags", "kind", "corrected_kind", "pre_repair_state", "doc_status"}
)
# Who the other side of an event is, by its kind; a transfer's is its branch, said already.
PARTY_LABELS = {
    "receive": "Supplier",
    "return_to_supplier": "Supplier",
    "sell": "Customer",
    "return": "Customer",
    "return_refused": "Customer",
}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EVENT_ID = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{4})([0-9a-f]{8})\b"
)


@dataclass(frozen=True)
class Presenter:
    """Says values the way the store reads them; `zone` None is the system's zone."""

    zone: tzinfo | None = None

    @property
    def zone_name(self) -> str:
        zone = self.zone or datetime.now().astimezone().tzinfo
        return str(getattr(zone, "key", None) or (zone.tzname(None) if zone else "") or "local")

    def when(self, value: object) -> str:
        """A stored time (ISO text, or seconds since 1970) as '23 Nov 2026 10:00' in the
        store's zone; a date alone as '23 Nov 2026'; anything else as it is."""
        if value is None or value == "":
            return ""
        moment = _moment(value)
        if moment is None:
            return str(value)
        if not isinstance(moment, datetime):
            return f"{moment.day} {moment:%b %Y}"
        try:
            local = moment.astimezone(self.zone) if self.zone else moment.astimezone()
        except (OverflowError, ValueError, OSError):
            return str(value)
        return f"{local.day} {local:%b %Y %H:%M}"

    def cell(self, column: str, value: object) -> str:
        """A table cell, by what its column holds (money, a rate, a time, a count)."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if column.endswith("_cents") and _is_number(value):
            return money(value)  # type: ignore[arg-type]
        if (column.endswith("_rate") or column in RATE_FIELDS) and _is_number(value):
            return percent(value)  # type: ignore[arg-type]
        if column in TIME_FIELDS or column.endswith(("_on", "_at", "_until", "_since")):
            return self.when(value)
        if column in EVENT_ID_FIELDS:
            return short_ids(value)
        if column in WORD_FIELDS:
            return words(value)
        if _is_number(value):
            return number(value)  # type: ignore[arg-type]
        if isinstance(value, list | tuple):
            return ", ".join(self.cell(column, v) for v in value)
        if isinstance(value, Mapping):
            return "; ".join(f"{label(str(k))} {self.cell(str(k), v)}" for k, v in value.items())
        # An event id in a message (a conflict's reason names both events) is shown short.
        return _EVENT_ID.sub(lambda m: "…" + m.group(2), str(value))

    def details(self, kind: str, data: Mapping[str, Any]) -> list[str]:
        """An event's details as phrases: 'Price 1,249.00', 'Customer Dana'."""
        if kind == "override":
            return [self.override(data)]
        phrases = []
        for key, value in sorted(data.items(), key=lambda item: str(item[0])):
            if value in (None, "", [], {}):
                continue
            name = str(key)
            if name == "party":
                if kind not in PARTY_LABELS:
                    continue
                phrases.append(f"{PARTY_LABELS[kind]} {value}")
                continue
            phrases.append(f"{label(name)} {self.cell(name, value)}")
        return phrases

    def override(self, data: Mapping[str, Any]) -> str:
        manager = data.get("manager")
        who = f"manager {manager}" if manager else "a manager"
        codes = data.get("overrode") or []
        if not isinstance(codes, list | tuple):
            codes = [codes]
        why = " and ".join(OVERRIDE_WORDS.get(str(c), words(c)) for c in codes)
        return f"Override by {who}" + (f": {why}" if why else "")


def label(field: str) -> str:
    """A stored field's name in words: price_cents -> 'Price', return_rate -> 'Return rate'."""
    if field in FIELD_LABELS:
        return FIELD_LABELS[field]
    text = field.removesuffix("_cents").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def words(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(words(v) for v in value)
    return str(value).replace("_", " ")


def number(value: float) -> str:
    """1234567 -> '1,234,567'; 0.5 -> '0.50'."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    return f"{value:,.2f}" if math.isfinite(value) else str(value)


def money(cents: float) -> str:
    """Integer cents as '1,249.00'."""
    if isinstance(cents, float) and not math.isfinite(cents):
        return str(cents)
    whole, part = divmod(abs(int(cents)), 100)
    return f"{'-' if cents < 0 else ''}{whole:,}.{part:02d}"


def percent(ratio: float) -> str:
    """A ratio as the charts show it: 0.125 -> '12.5%'."""
    return f"{ratio * 100:,.1f}%" if math.isfinite(ratio) else str(ratio)


def short_ids(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(short_ids(v) for v in value)
    text = str(value)
    return "…" + text[-8:] if len(text) > 12 else text


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _moment(value: object) -> datetime | date | None:
    try:
        if _is_number(value):
            return datetime.fromtimestamp(float(value), UTC)  # type: ignore[arg-type]
        text = str(value).strip()
        if len(text) == 10 and _DATE.fullmatch(text):
            return date.fromisoformat(text)
        if not _DATE.match(text):
            return None
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    # HQ and the terminals write UTC; a time without a zone is UTC too.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
