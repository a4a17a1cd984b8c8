"""Repairs and warranty: repair tickets with their chain of custody, warranty claims
decided line by line, and replacing a customer's unit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from daemon.ledger.core import (
    SALE_FIELDS,
    LedgerCore,
    Outcome,
    UnitRef,
    uuids,
    values_problems,
    warranty_end,
)
from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.events import Change, EventBody
from daemon.ledger.kinds import SALE_KINDS, Kind
from daemon.ledger.store import Unit
from daemon.rules.units import Op, Request, State
from daemon.rules.values import IDENTIFIER, NAME, NOTE
from daemon.rules.warranty import ClaimDecision, ClaimLine, SupplierTerms, decide_claim


class Repairs(LedgerCore):
    """Repair tickets, warranty claims and replacements."""

    def _not_sold_now(self, unit: Unit) -> str:
        """What the unit's history says about it having no customer now: returned (when,
        on which return), replaced, or never sold."""
        where = f"it is {unit.state.value} at {unit.branch}"
        for (body,) in self.db.execute(
            "SELECT body FROM events WHERE unit_id = ? ORDER BY id DESC", [unit.id]
        ):
            event = EventBody.parse(body)
            doc = f" ({event.doc.label})" if event.doc else ""
            if event.kind in (Kind.RETURN, Kind.REPLACE_OLD):
                what = "returned" if event.kind == Kind.RETURN else "replaced"
                return f"{unit.label} was {what} on {event.at[:10]}{doc}; {where}"
            if event.kind in SALE_KINDS:  # sold, and no customer now: the sale was corrected
                return f"{unit.label}'s sale on {event.at[:10]}{doc} was corrected; {where}"
        return f"{unit.label} was never sold; {where}"

    def repair_open(
        self,
        ticket: str,
        ref: UnitRef,
        *,
        actor: str,
        technician: str,
        intake_condition: str,
        fault: str,
        accessories: Sequence[str] = (),
        branch: str | None = None,
    ) -> Outcome:
        """Open a repair ticket: the unit goes into repair with its intake recorded."""
        branch = branch or self.branch
        problems = self._new_document("repair", ticket)
        problems += values_problems(
            (NAME, technician, "technician"),
            (NOTE, intake_condition, "intake condition"),
            (NOTE, fault, "fault"),
            *((NAME, accessory, "accessory") for accessory in accessories),
        )
        units, ref_problems = self._resolve([ref])
        problems += ref_problems
        decisions = self._decide_each([ref], units, Request(Op.REPAIR_OPEN, branch), problems)
        self._refuse_if(problems)
        _, unit, allowed = decisions[0]
        assert unit is not None
        new = {
            "state": allowed.state.value,
            "branch": allowed.branch,
            "pre_repair_state": unit.state.value,
            "repair_ticket": ticket,
        }
        data = {
            "party": unit.customer,
            "doc_status": "open",
            "technician": technician,
            "intake_condition": intake_condition,
            "fault": fault,
            "accessories": list(accessories),
        }
        sealed = self.record(
            self.stamp(actor, branch),
            [self.unit_change(Kind.REPAIR_OPEN, ref, unit, new, ("repair", ticket), data)],
        )
        return Outcome(f"repair {ticket} opened for {unit.label}", uuids(sealed))

    def repair_step(
        self,
        ticket: str,
        status: str,
        *,
        actor: str,
        technician: str | None = None,
        diagnosis: str | None = None,
        parts: Sequence[str] = (),
        note: str = "",
    ) -> Outcome:
        """Record a step of a repair: diagnosis, parts used, quality check, and so on."""
        self._refuse_if(
            values_problems(
                (IDENTIFIER, status, "repair status"),
                (NAME, technician, "technician"),
                (NOTE, diagnosis, "diagnosis"),
                (NOTE, note, "note"),
                *((NAME, part, "part") for part in parts),
            )
        )
        unit = self._unit_in_repair(ticket)
        ref = UnitRef(unit.product.code, unit.serial)
        problems: list[Problem] = []
        self._decide_each([ref], {ref: unit}, Request(Op.REPAIR_STEP, unit.branch), problems)
        self._refuse_if(problems)
        data = {
            "doc_status": status,
            "technician": technician,
            "diagnosis": diagnosis,
            "parts": list(parts),
            "note": note,
        }
        sealed = self.record(
            self.stamp(actor, unit.branch),
            [self.unit_change(Kind.REPAIR_STEP, ref, unit, {}, ("repair", ticket), data)],
        )
        return Outcome(f"repair {ticket}: {status}", uuids(sealed))

    def repair_close(
        self,
        ticket: str,
        *,
        actor: str,
        outcome: str,
        collected_by: str | None = None,
        disposition: State | None = None,
        branch: str | None = None,
    ) -> Outcome:
        """Close a repair. A repaired unit needs a passed quality check and goes back
        to where it was; an unrepairable one goes where `disposition` says."""
        self._refuse_if(values_problems((NAME, collected_by, "collected by")))
        unit = self._unit_in_repair(ticket)
        branch = branch or unit.branch
        ref = UnitRef(unit.product.code, unit.serial)
        problems: list[Problem] = []
        if outcome == "repaired":
            if self._document_status("repair", ticket) != "qc_passed":
                problems.append(
                    Problem("qc_required", f"repair {ticket} has no passed quality check yet")
                )
            disposition = None
        elif disposition is None:
            problems.append(
                Problem("bad_disposition", f"repair {ticket}: say where an {outcome} unit goes")
            )
        request = Request(Op.REPAIR_CLOSE, branch, disposition=disposition)
        decisions = self._decide_each([ref], {ref: unit}, request, problems)
        self._refuse_if(problems)
        allowed = decisions[0][2]
        new: dict[str, Any] = {
            "state": allowed.state.value,
            "branch": allowed.branch,
            "pre_repair_state": None,
            "repair_ticket": None,
        }
        if allowed.state is not State.SOLD:
            new.update(dict.fromkeys(SALE_FIELDS))
        data = {"doc_status": "closed", "outcome": outcome, "collected_by": collected_by}
        sealed = self.record(
            self.stamp(actor, branch),
            [self.unit_change(Kind.REPAIR_CLOSE, ref, unit, new, ("repair", ticket), data)],
        )
        return Outcome(
            f"repair {ticket} closed: {outcome}, unit {allowed.state.value}", uuids(sealed)
        )

    def warranty_claim(
        self,
        claim: str,
        ref: UnitRef,
        lines: Sequence[ClaimLine],
        *,
        actor: str,
        terms: SupplierTerms | None = None,
        damage_notes: str = "",
        claimed_on: date | None = None,
    ) -> Outcome:
        """Decide a warranty claim line by line; the decision may be partial."""
        problems = self._new_document("warranty_claim", claim)
        problems += values_problems((NOTE, damage_notes, "damage notes"))
        for line in lines:
            problems += values_problems(
                (NAME, line.description, "claim line"), ("money", line.amount_cents, "claim amount")
            )
        units, ref_problems = self._resolve([ref])
        problems += ref_problems
        unit = units.get(ref)
        decisions = self._decide_each(
            [ref], units, Request(Op.WARRANTY_CLAIM, self.branch), problems
        )
        if unit is not None and not unit.sold_on and not problems:
            problems.append(Problem("no_sale", self._not_sold_now(unit) + "; no warranty to claim"))
        self._refuse_if(problems)
        assert unit is not None and unit.sold_on is not None
        earlier = self.db.execute(
            "SELECT count(*) FROM events WHERE unit_id = ? AND kind = ?",
            [unit.id, Kind.REPAIR_OPEN],
        ).fetchone()[0]
        if unit.state is State.IN_REPAIR:
            earlier -= 1  # the repair this claim is for
        decision = decide_claim(
            purchased_on=date.fromisoformat(unit.sold_on),
            claimed_on=claimed_on or self.clock().date(),
            warranty_months=unit.product.warranty_months,
            lines=list(lines),
            earlier_repairs=earlier,
            terms=terms,
        )
        data = _claim_data(decision)
        data.update({"party": unit.customer, "damage_notes": damage_notes})
        _, unit, _ = decisions[0]
        sealed = self.record(
            self.stamp(actor),
            [self.unit_change(Kind.WARRANTY_CLAIM, ref, unit, {}, ("warranty_claim", claim), data)],
        )
        return Outcome(
            f"claim {claim}: {decision.status}; covered {decision.covered_cents / 100:.2f},"
            f" charged {decision.charged_cents / 100:.2f}",
            uuids(sealed),
            {"decision": data},
        )

    def replace(
        self,
        document: str,
        old: UnitRef,
        new: UnitRef,
        *,
        actor: str,
        old_disposition: State,
        reason: str = "",
        manager: str | None = None,
        branch: str | None = None,
    ) -> Outcome:
        """Replace a customer's unit: the new one is sold to the same customer on the
        same invoice; the old one's history goes on (repair, supplier, write-off).
        Both events name the other serial."""
        branch = branch or self.branch
        problems = self._new_document("replacement", document)
        problems += values_problems((NOTE, reason, "reason"), (NAME, manager, "manager"))
        units, ref_problems = self._resolve([old, new])
        problems += ref_problems
        old_decision = self._decide_each(
            [old], units, Request(Op.REPLACE_OLD, branch, disposition=old_disposition), problems
        )
        new_decision = self._decide_each(
            [new], units, Request(Op.REPLACE_NEW, branch, manager=manager), problems
        )
        old_unit = units.get(old)
        if old_unit is not None and old_unit.invoice is None and not problems:
            problems.append(
                Problem("not_sold", self._not_sold_now(old_unit) + "; there is nothing to replace")
            )
        self._refuse_if(problems)
        _, old_unit, old_allowed = old_decision[0]
        _, new_unit, new_allowed = new_decision[0]
        assert old_unit is not None and new_unit is not None
        doc = ("replacement", document)
        day = self.clock().date()
        changes: list[Change] = []
        old_new: dict[str, Any] = {
            "state": old_allowed.state.value,
            "branch": old_allowed.branch,
            **dict.fromkeys(SALE_FIELDS),
        }
        if old_allowed.state is State.IN_REPAIR:
            old_new["pre_repair_state"] = State.IN_STOCK.value
        else:
            old_new.update({"pre_repair_state": None, "repair_ticket": None})
        changes.append(
            self.unit_change(
                Kind.REPLACE_OLD,
                old,
                old_unit,
                old_new,
                doc,
                {
                    "party": old_unit.customer,
                    "replaced_by": [new.product, new_unit.serial],
                    "invoice": old_unit.invoice,
                    "reason": reason,
                    "doc_status": "done",
                },
            )
        )
        override = self._override_change(new, new_unit, new_allowed, manager, "replace", doc)
        if override:
            changes.append(override)
        changes.append(
            self.unit_change(
                Kind.REPLACE_NEW,
                new,
                new_unit,
                {
                    "state": new_allowed.state.value,
                    "branch": new_allowed.branch,
                    "invoice": old_unit.invoice,
                    "customer": old_unit.customer,
                    "sold_on": day.isoformat(),
                    "warranty_until": old_unit.warranty_until
                    or warranty_end(new_unit.product, day),
                },
                doc,
                {
                    "party": old_unit.customer,
                    "replaces": [old.product, old_unit.serial],
                    "invoice": old_unit.invoice,
                },
            )
        )
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(
            f"{new_unit.label} replaces {old_unit.label} for {old_unit.customer}", uuids(sealed)
        )

    def _unit_in_repair(self, ticket: str) -> Unit:
        row = self.db.execute(
            "SELECT p.code, u.serial FROM units u JOIN products p ON p.id = u.product_id"
            " WHERE u.repair_ticket = ?",
            [ticket],
        ).fetchone()
        unit = self.unit(row[0], row[1]) if row else None
        if unit is None:
            raise Refusal([Problem("unknown_ticket", f"no open repair ticket {ticket}")])
        return unit


def _claim_data(decision: ClaimDecision) -> dict[str, Any]:
    return {
        "doc_status": decision.status,
        "covered_cents": decision.covered_cents,
        "charged_cents": decision.charged_cents,
        "replacement_recommended": decision.replacement_recommended,
        "warranty_until": decision.warranty_until.isoformat(),
        "lines": [
            {
                "description": d.line.description,
                "amount_cents": d.line.amount_cents,
                "kind": d.line.kind.value,
                "cause": d.line.cause.value,
                "covered": d.covered,
                "reason": d.reason,
            }
            for d in decision.lines
        ],
    }
