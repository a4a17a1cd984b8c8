"""Warranty claims: which lines of a repair the warranty covers and which are charged.

Pure: dates are passed in. A decision can be partial: a covered part with a charged
accessory, or covered labour for a defect with the cracked screen charged as damage.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class LineKind(StrEnum):
    PART = "part"
    LABOUR = "labour"
    ACCESSORY = "accessory"
    CONSUMABLE = "consumable"


class Cause(StrEnum):
    DEFECT = "defect"
    DAMAGE = "damage"
    WEAR = "wear"


@dataclass(frozen=True)
class ClaimLine:
    description: str
    amount_cents: int
    kind: LineKind = LineKind.PART
    cause: Cause = Cause.DEFECT


@dataclass(frozen=True)
class SupplierTerms:
    """What the supplier promises beyond the product's own warranty period."""

    parts_extra_months: int = 0
    # After this many earlier repairs of the same unit, offer a replacement.
    repairs_before_replacement: int = 3


@dataclass(frozen=True)
class LineDecision:
    line: ClaimLine
    covered: bool
    reason: str


@dataclass(frozen=True)
class ClaimDecision:
    lines: tuple[LineDecision, ...]
    covered_cents: int
    charged_cents: int
    replacement_recommended: bool
    warranty_until: date

    @property
    def status(self) -> str:
        """covered, partial or refused."""
        covered = [d.covered for d in self.lines]
        if covered and all(covered):
            return "covered"
        return "partial" if any(covered) else "refused"


_PLURAL = {LineKind.ACCESSORY: "accessories", LineKind.CONSUMABLE: "consumables"}


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the end of a shorter month."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def decide_claim(
    *,
    purchased_on: date,
    claimed_on: date,
    warranty_months: int,
    lines: list[ClaimLine],
    earlier_repairs: int,
    terms: SupplierTerms | None = None,
) -> ClaimDecision:
    """Decide each line of a claim, given when and what was bought and its history."""
    terms = terms or SupplierTerms()
    warranty_until = add_months(purchased_on, warranty_months)
    parts_until = add_months(warranty_until, terms.parts_extra_months)
    decisions = []
    for line in lines:
        covered, reason = _decide_line(line, claimed_on, warranty_until, parts_until, terms)
        decisions.append(LineDecision(line, covered, reason))
    covered_cents = sum(d.line.amount_cents for d in decisions if d.covered)
    charged_cents = sum(d.line.amount_cents for d in decisions if not d.covered)
    return ClaimDecision(
        lines=tuple(decisions),
        covered_cents=covered_cents,
        charged_cents=charged_cents,
        replacement_recommended=earlier_repairs >= terms.repairs_before_replacement,
        warranty_until=warranty_until,
    )


def _decide_line(
    line: ClaimLine, claimed_on: date, warranty_until: date, parts_until: date, terms: SupplierTerms
) -> tuple[bool, str]:
    if line.kind in (LineKind.ACCESSORY, LineKind.CONSUMABLE):
        return False, f"{_PLURAL[line.kind]} are not covered by the warranty"
    if line.cause is Cause.DAMAGE:
        return False, "damage is not a defect; the warranty does not cover it"
    if line.cause is Cause.WEAR:
        return False, "normal wear is not covered"
    if claimed_on <= warranty_until:
        return True, f"defect within the warranty (until {warranty_until.isoformat()})"
    if line.kind is LineKind.PART and claimed_on <= parts_until:
        return True, (
            f"the supplier covers parts {terms.parts_extra_months} months longer"
            f" (until {parts_until.isoformat()})"
        )
    return False, f"the warranty ended on {warranty_until.isoformat()}"
