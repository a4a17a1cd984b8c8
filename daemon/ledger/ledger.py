"""The ledger's operations: what a store does to its units, each one a set of events.

Every operation checks its whole document in one pass (all serials, all units,
every reason at once), asks the unit state machine (`daemon.rules.units`) for each
unit, and then writes all of its events in one durable transaction, or nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.events import Change, Sealed
from daemon.ledger.store import LedgerStore, Product, Unit
from daemon.rules.serials import (
    SerialError,
    check_serial,
    check_serial_rule,
    compile_serial_rule,
    serial_key,
)
from daemon.rules.units import Allowed, Flag, Op, Refused, Request, State, decide
from daemon.rules.warranty import ClaimDecision, ClaimLine, SupplierTerms, add_months, decide_claim

# Fields cleared when a unit leaves its customer.
_SALE_FIELDS = ("invoice", "customer", "sold_on", "warranty_until")


@dataclass(frozen=True)
class UnitRef:
    """A unit as someone names it: product code and serial as printed."""

    product: str
    serial: str


@dataclass(frozen=True)
class SaleLine:
    """One line of a sale: a serialized unit, or a plain item (serial None)."""

    product: str
    serial: str | None = None
    price_cents: int = 0
    quantity: int = 1


@dataclass
class Outcome:
    """What an operation did: its events and a sentence for the person who asked."""

    message: str
    events: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class Ledger(LedgerStore):
    """The serial ledger: every unit's passport. Open with `create` or `open`."""

    # -- products --------------------------------------------------------------

    def define_product(
        self,
        code: str,
        name: str,
        *,
        actor: str,
        gtin: str | None = None,
        serial_tracked: bool = True,
        serial_rule: str | None = None,
        warranty_months: int = 0,
        mask_serial: bool = False,
        price_cents: int = 0,
    ) -> Outcome:
        """Add a product, or change one. Serial tracking cannot be switched off once on."""
        existing = self.product(code)
        if existing and existing.serial_tracked and not serial_tracked:
            raise Refusal(
                [Problem("tracking_locked", f"{code}: serial tracking cannot be switched off")]
            )
        if serial_rule is not None:
            try:
                compile_serial_rule(serial_rule)
            except SerialError as exc:
                raise Refusal([Problem("bad_rule", str(exc))]) from None
        if gtin is not None and not (gtin.isdigit() and len(gtin) in (8, 12, 13, 14)):
            raise Refusal([Problem("bad_gtin", f"GTIN {gtin!r} must be 8, 12, 13 or 14 digits")])
        data = {
            "code": code,
            "name": name,
            "gtin": gtin,
            "serial_tracked": int(serial_tracked),
            "serial_rule": serial_rule,
            "warranty_months": warranty_months,
            "mask_serial": int(mask_serial),
            "price_cents": price_cents,
        }
        sealed = self.record(self.stamp(actor), [Change("product", data)])
        verb = "changed" if existing else "added"
        return Outcome(f"product {code} ({name}) {verb}", [s.uuid for s in sealed])

    # -- receiving -------------------------------------------------------------

    def receive(
        self,
        po: str,
        supplier: str,
        product: str,
        serials: Sequence[str],
        *,
        actor: str,
        cost_cents: int = 0,
        quantity: int | None = None,
        received_on: date | None = None,
        branch: str | None = None,
        lot: str | None = None,
        expiry: date | None = None,
    ) -> Outcome:
        """Receive units against a purchase order: quantity must equal distinct serials."""
        branch = branch or self.branch
        problems: list[Problem] = []
        distinct = {serial_key(s) for s in serials}
        if quantity is not None and quantity != len(distinct):
            problems.append(
                Problem(
                    "quantity_mismatch",
                    f"PO {po}: quantity {quantity} but {len(distinct)} distinct serials scanned",
                )
            )
        refs = [UnitRef(product, s) for s in serials]
        units, ref_problems = self._resolve(refs)
        problems += ref_problems
        decisions = self._decide_each(refs, units, Request(Op.RECEIVE, branch), problems)
        self._refuse_if(problems)
        day = (received_on or self.clock().date()).isoformat()
        changes = []
        for ref, unit, allowed in decisions:
            new = {
                "state": allowed.state.value,
                "branch": allowed.branch,
                "po": po,
                "supplier": supplier,
                "cost_cents": cost_cents,
                "lot": lot,
                "expiry": expiry.isoformat() if expiry else None,
                "dest_branch": None,
                "pre_repair_state": None,
                "repair_ticket": None,
                **dict.fromkeys(_SALE_FIELDS),
            }
            changes.append(
                self.unit_change(
                    "receive", ref, unit, new, ("po", po), {"party": supplier, "received_on": day}
                )
            )
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(f"received {len(changes)} unit(s) of {product} on PO {po}", _uuids(sealed))

    # -- selling and returns ---------------------------------------------------

    def sell(
        self,
        invoice: str,
        customer: str,
        lines: Sequence[SaleLine],
        *,
        actor: str,
        branch: str | None = None,
        manager: str | None = None,
        sold_on: date | None = None,
    ) -> Outcome:
        """Sell units (and plain items) on one invoice, bound to the customer.

        A unit at another branch or in transit needs `manager`: the override is
        recorded as its own event before the sale.
        """
        branch = branch or self.branch
        problems = self._new_document("invoice", invoice)
        unit_lines = [line for line in lines if line.serial is not None]
        refs = [UnitRef(line.product, line.serial or "") for line in unit_lines]
        units, ref_problems = self._resolve(refs)
        problems += ref_problems
        for line in lines:
            if line.serial is None and self.product(line.product) is None:
                problems.append(Problem("unknown_product", f"no product {line.product!r}"))
        request = Request(Op.SELL, branch, manager=manager)
        decisions = self._decide_each(refs, units, request, problems)
        self._refuse_if(problems)
        day = sold_on or self.clock().date()
        changes: list[Change] = []
        for (ref, unit, allowed), line in zip(decisions, unit_lines, strict=True):
            product = self._product_of(ref)
            override = self._override_change(
                ref, unit, allowed, manager, "sell", ("invoice", invoice)
            )
            if override:
                changes.append(override)
            new = {
                "state": allowed.state.value,
                "branch": allowed.branch,
                "invoice": invoice,
                "customer": customer,
                "sold_on": day.isoformat(),
                "warranty_until": _warranty_end(product, day),
                "dest_branch": None,
            }
            data = {"party": customer, "price_cents": line.price_cents}
            changes.append(self.unit_change("sell", ref, unit, new, ("invoice", invoice), data))
        for line in lines:
            if line.serial is None:
                changes.append(
                    Change(
                        "sell_item",
                        {
                            "party": customer,
                            "item": line.product,
                            "quantity": line.quantity,
                            "price_cents": line.price_cents,
                        },
                        doc=("invoice", invoice),
                    )
                )
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(
            f"invoice {invoice}: {len(lines)} line(s) sold to {customer}", _uuids(sealed)
        )

    def return_unit(
        self,
        invoice: str,
        product: str,
        serial: str,
        *,
        actor: str,
        condition: str,
        disposition: State,
        reason: str = "",
        branch: str | None = None,
    ) -> Outcome:
        """Take a unit back, only against the invoice that sold it.

        A different physical unit, even of the same model, is refused and the
        attempt is recorded in the ledger.
        """
        branch = branch or self.branch
        if not self._document_exists("invoice", invoice):
            raise Refusal(
                [Problem("unknown_invoice", f"there is no invoice {invoice} in the ledger")]
            )
        ref = UnitRef(product, serial)
        units, problems = self._resolve([ref])
        self._refuse_if(problems)
        unit = units[ref]
        request = Request(Op.RETURN, branch, disposition=disposition, invoice=invoice)
        verdict = decide(unit.view() if unit else None, request)
        if isinstance(verdict, Refused):
            sold = self.units_on_invoice(invoice)
            if unit is None or unit.invoice != invoice:
                listed = ", ".join(f"{u.product} {u.serial}" for u in sold) or "no units"
                message = (
                    f'invoice {invoice} sold {listed}, not {product} serial "{serial}";'
                    " only the unit an invoice sold can be returned on it"
                )
                verdict = Refused("wrong_unit", message)
            attempt = Change(
                "return_refused",
                {
                    "product": product,
                    "serial": serial,
                    "reason": verdict.code,
                    "message": verdict.message,
                    "condition": condition,
                },
                doc=("invoice", invoice),
            )
            if unit is not None:
                attempt = self.unit_change(
                    "return_refused", ref, unit, {}, ("invoice", invoice), attempt.data
                )
            sealed = self.record(self.stamp(actor, branch), [attempt])
            raise Refusal([Problem(verdict.code, verdict.message, serial)], recorded=sealed[0].uuid)
        assert unit is not None
        new: dict[str, Any] = {
            "state": verdict.state.value,
            "branch": verdict.branch,
            **dict.fromkeys(_SALE_FIELDS),
            "pre_repair_state": State.IN_STOCK.value if verdict.state is State.IN_REPAIR else None,
        }
        data = {
            "invoice": invoice,
            "condition": condition,
            "disposition": disposition.value,
            "reason": reason,
            "party": unit.customer,
        }
        doc = ("return", f"RET-{invoice}-{unit.serial_key}")
        sealed = self.record(
            self.stamp(actor, branch), [self.unit_change("return", ref, unit, new, doc, data)]
        )
        return Outcome(
            f"{unit.label} returned on invoice {invoice}; now {verdict.state.value}", _uuids(sealed)
        )

    def units_on_invoice(self, invoice: str) -> list[UnitRef]:
        """The units an invoice sold (including replacements sold on it)."""
        refs = []
        for row in self.db.query(
            "SELECT e.body FROM events e JOIN documents d ON d.id = e.doc_id"
            " WHERE d.type = 'invoice' AND d.number = ? AND e.kind = 'sell' ORDER BY e.id",
            [invoice],
        ):
            body = json.loads(row["body"])
            refs.append(UnitRef(body["product"], body["serial"]))
        for row in self.db.query(
            "SELECT e.body FROM events e WHERE e.kind = 'replace_new' AND e.unit_id IN"
            " (SELECT id FROM units WHERE invoice = ?)",
            [invoice],
        ):
            body = json.loads(row["body"])
            refs.append(UnitRef(body["product"], body["serial"]))
        return refs

    # -- transfers -------------------------------------------------------------

    def transfer_out(
        self,
        transfer: str,
        to_branch: str,
        refs: Sequence[UnitRef],
        *,
        actor: str,
        branch: str | None = None,
    ) -> Outcome:
        """Ship units to another branch: they are in transit until received there."""
        branch = branch or self.branch
        problems = self._new_document("transfer", transfer)
        if to_branch == branch:
            problems.append(Problem("same_branch", f"transfer {transfer} goes to its own branch"))
        units, ref_problems = self._resolve(refs)
        problems += ref_problems
        decisions = self._decide_each(refs, units, Request(Op.TRANSFER_OUT, branch), problems)
        self._refuse_if(problems)
        changes = [
            self.unit_change(
                "transfer_out",
                ref,
                unit,
                {"state": allowed.state.value, "dest_branch": to_branch},
                ("transfer", transfer),
                {
                    "party": to_branch,
                    "from_branch": branch,
                    "to_branch": to_branch,
                    "doc_status": "in_transit",
                },
            )
            for ref, unit, allowed in decisions
        ]
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(
            f"transfer {transfer}: {len(changes)} unit(s) to {to_branch}", _uuids(sealed)
        )

    def transfer_in(
        self, transfer: str, refs: Sequence[UnitRef], *, actor: str, branch: str | None = None
    ) -> Outcome:
        """Receive units of a transfer at their destination branch."""
        branch = branch or self.branch
        units, problems = self._resolve(refs)
        decisions = self._decide_each(refs, units, Request(Op.TRANSFER_IN, branch), problems)
        self._refuse_if(problems)
        changes = [
            self.unit_change(
                "transfer_in",
                ref,
                unit,
                {"state": allowed.state.value, "branch": allowed.branch, "dest_branch": None},
                ("transfer", transfer),
                {"doc_status": "received"},
            )
            for ref, unit, allowed in decisions
        ]
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(f"transfer {transfer}: {len(changes)} unit(s) received", _uuids(sealed))

    # -- repairs and warranty --------------------------------------------------

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
            [self.unit_change("repair_open", ref, unit, new, ("repair", ticket), data)],
        )
        return Outcome(f"repair {ticket} opened for {unit.label}", _uuids(sealed))

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
            [self.unit_change("repair_step", ref, unit, {}, ("repair", ticket), data)],
        )
        return Outcome(f"repair {ticket}: {status}", _uuids(sealed))

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
            new.update(dict.fromkeys(_SALE_FIELDS))
        data = {"doc_status": "closed", "outcome": outcome, "collected_by": collected_by}
        sealed = self.record(
            self.stamp(actor, branch),
            [self.unit_change("repair_close", ref, unit, new, ("repair", ticket), data)],
        )
        return Outcome(
            f"repair {ticket} closed: {outcome}, unit {allowed.state.value}", _uuids(sealed)
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
        units, ref_problems = self._resolve([ref])
        problems += ref_problems
        unit = units.get(ref)
        decisions = self._decide_each(
            [ref], units, Request(Op.WARRANTY_CLAIM, self.branch), problems
        )
        if unit is not None and not unit.sold_on and not problems:
            problems.append(Problem("no_sale", f"{unit.label} has no recorded sale date"))
        self._refuse_if(problems)
        assert unit is not None and unit.sold_on is not None
        earlier = self.db.execute(
            "SELECT count(*) FROM events WHERE unit_id = ? AND kind = 'repair_open'", [unit.id]
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
            [self.unit_change("warranty_claim", ref, unit, {}, ("warranty_claim", claim), data)],
        )
        return Outcome(
            f"claim {claim}: {decision.status}; covered {decision.covered_cents / 100:.2f},"
            f" charged {decision.charged_cents / 100:.2f}",
            _uuids(sealed),
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
            problems.append(Problem("not_sold", f"{old_unit.label} was never sold to anyone"))
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
            **dict.fromkeys(_SALE_FIELDS),
        }
        if old_allowed.state is State.IN_REPAIR:
            old_new["pre_repair_state"] = State.IN_STOCK.value
        else:
            old_new.update({"pre_repair_state": None, "repair_ticket": None})
        changes.append(
            self.unit_change(
                "replace_old",
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
                "replace_new",
                new,
                new_unit,
                {
                    "state": new_allowed.state.value,
                    "branch": new_allowed.branch,
                    "invoice": old_unit.invoice,
                    "customer": old_unit.customer,
                    "sold_on": day.isoformat(),
                    "warranty_until": old_unit.warranty_until
                    or _warranty_end(new_unit.product, day),
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
            f"{new_unit.label} replaces {old_unit.label} for {old_unit.customer}", _uuids(sealed)
        )

    # -- stock states and flags ------------------------------------------------

    def move(
        self,
        op: Op,
        refs: Sequence[UnitRef],
        *,
        actor: str,
        reason: str,
        manager: str | None = None,
        document: str | None = None,
        doc_type: str | None = None,
        branch: str | None = None,
    ) -> Outcome:
        """Quarantine, release, return to supplier, write off, mark lost or found, or
        relocate (a stock count found the unit here, not where the ledger had it)."""
        if op not in _MOVES:
            raise ValueError(f"{op.value} is not a stock move")
        branch = branch or self.branch
        units, problems = self._resolve(refs)
        decisions = self._decide_each(refs, units, Request(op, branch, manager=manager), problems)
        self._refuse_if(problems)
        doc = (doc_type or op.value, document or f"{op.value.upper()}-{uuid.uuid4().hex[:10]}")
        changes = []
        for ref, unit, allowed in decisions:
            assert unit is not None
            new: dict[str, Any] = {
                "state": allowed.state.value,
                "branch": allowed.branch,
                "dest_branch": None,
            }
            if allowed.state in (State.WRITTEN_OFF, State.RETURNED_TO_SUPPLIER, State.LOST):
                new.update({"repair_ticket": None, "pre_repair_state": None})
            changes.append(
                self.unit_change(
                    op.value, ref, unit, new, doc, {"reason": reason, "manager": manager}
                )
            )
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(f"{len(changes)} unit(s): {op.value.replace('_', ' ')}", _uuids(sealed))

    def set_flag(
        self,
        refs: Sequence[UnitRef],
        flag: Flag,
        *,
        actor: str,
        reason: str,
        on: bool = True,
        document: str | None = None,
        doc_type: str = "flag",
    ) -> Outcome:
        """Put a flag (stolen, recalled, conflict, on hold) on units, or take it off.

        `document` (of `doc_type`, e.g. a recall notice) is what the flag rests on."""
        units, problems = self._resolve(refs)
        op = Op.FLAG if on else Op.UNFLAG
        decisions = self._decide_each(refs, units, Request(op, self.branch, flag=flag), problems)
        self._refuse_if(problems)
        doc = (doc_type, document or f"FLAG-{uuid.uuid4().hex[:10]}")
        changes = []
        for ref, unit, _ in decisions:
            assert unit is not None
            flags = set(unit.flags) | {flag} if on else set(unit.flags) - {flag}
            if flags == set(unit.flags):
                continue  # already so: flags are idempotent
            changes.append(
                self.unit_change(
                    op.value,
                    ref,
                    unit,
                    {"flags": sorted(f.value for f in flags)},
                    doc,
                    {"flag": flag.value, "reason": reason},
                )
            )
        sealed = self.record(self.stamp(actor), changes) if changes else []
        verb = "flagged" if on else "cleared"
        return Outcome(f"{len(changes)} unit(s) {verb} {flag.value}", _uuids(sealed))

    def correct(self, event_uuid: str, *, actor: str, manager: str, reason: str) -> Outcome:
        """Undo a unit event with a further event that names it. Nothing is erased."""
        row = self.db.execute("SELECT body FROM events WHERE uuid = ?", [event_uuid]).fetchone()
        if row is None:
            raise Refusal([Problem("unknown_event", f"there is no event {event_uuid}")])
        body = json.loads(row[0])
        problems: list[Problem] = []
        if not manager:
            problems.append(Problem("needs_manager", "a correction needs a manager"))
        if "product" not in body or not body["set"]:
            problems.append(
                Problem("not_correctable", f"event {event_uuid} ({body['kind']}) changed no unit")
            )
            self._refuse_if(problems)
        ref = UnitRef(body["product"], body["serial"])
        unit = self.unit(ref.product, ref.serial)
        assert unit is not None
        if unit.last_event != event_uuid:
            problems.append(
                Problem(
                    "not_latest",
                    f"{unit.label} has later events; correct the latest ({unit.last_event}) first",
                )
            )
        if body["kind"] == "receive" and body["was"].get("state") is None:
            problems.append(
                Problem(
                    "first_receipt",
                    f"{unit.label} first arrived with this event; write it off (reason: received"
                    " in error) instead, so its history stays",
                )
            )
        self._refuse_if(problems)
        change = self.unit_change(
            "correction",
            ref,
            unit,
            dict(body["was"]),
            body.get("doc") and (body["doc"]["type"], body["doc"]["no"]),
            {
                "corrects": event_uuid,
                "corrected_kind": body["kind"],
                "corrected_price_cents": body["data"].get("price_cents", 0),
                "reason": reason,
                "manager": manager,
            },
        )
        sealed = self.record(self.stamp(actor), [change])
        return Outcome(f"event {event_uuid} ({body['kind']}) corrected", _uuids(sealed))

    # -- helpers ---------------------------------------------------------------

    def _resolve(self, refs: Sequence[UnitRef]) -> tuple[dict[UnitRef, Unit | None], list[Problem]]:
        """Check each ref's product and serial, and load the units (one query per 500)."""
        problems: list[Problem] = []
        keys: dict[UnitRef, str] = {}
        seen: dict[tuple[str, str], UnitRef] = {}
        products: dict[str, Product | None] = {}
        rules: dict[str, re.Pattern[str] | None] = {}
        for ref in refs:
            if ref.product not in products:
                product = products[ref.product] = self.product(ref.product)
                if product is not None and product.serial_rule:
                    rules[ref.product] = compile_serial_rule(product.serial_rule)
            product = products[ref.product]
            if product is None:
                problems.append(
                    Problem("unknown_product", f"no product {ref.product!r}", ref.serial)
                )
                continue
            if not product.serial_tracked:
                problems.append(
                    Problem("not_serialized", f"{ref.product} is not tracked by serial", ref.serial)
                )
                continue
            try:
                key = check_serial(ref.serial)
                check_serial_rule(key, rules.get(ref.product), product.code)
            except SerialError as exc:
                problems.append(Problem("bad_serial", str(exc), ref.serial))
                continue
            if (ref.product, key) in seen:
                problems.append(
                    Problem(
                        "duplicate_in_document", f'serial "{ref.serial}" appears twice', ref.serial
                    )
                )
                continue
            seen[(ref.product, key)] = ref
            keys[ref] = key
        found = self.units_by_key(keys.values())
        return {ref: found.get((ref.product, key)) for ref, key in keys.items()}, problems

    def _decide_each(
        self,
        refs: Sequence[UnitRef],
        units: dict[UnitRef, Unit | None],
        request: Request,
        problems: list[Problem],
    ) -> list[tuple[UnitRef, Unit | None, Allowed]]:
        decided = []
        for ref in refs:
            if ref not in units:
                continue  # already reported by _resolve
            unit = units[ref]
            verdict = decide(unit.view() if unit else None, request)
            if isinstance(verdict, Refused):
                message = verdict.message
                if unit is None:
                    message = f'{ref.product} serial "{ref.serial}": {message}'
                problems.append(
                    Problem(verdict.code, message, ref.serial, overridable=verdict.overridable)
                )
            else:
                decided.append((ref, unit, verdict))
        return decided

    def unit_change(
        self,
        kind: str,
        ref: UnitRef,
        unit: Unit | None,
        new: dict[str, Any],
        doc: tuple[str, str] | None,
        data: dict[str, Any],
    ) -> Change:
        """The event that moves `unit` (None: a unit new to the ledger) to the fields in
        `new`, remembering what they were, so a correction can restore them."""
        was: dict[str, Any] = {}
        if unit is None:
            # A unit's first event: nothing was there before, and unset fields stay unset.
            new = {name: value for name, value in new.items() if value is not None}
        else:
            for name in new:
                if name == "flags":
                    was[name] = sorted(f.value for f in unit.flags)
                else:
                    was[name] = unit.row[name]
        serial = unit.serial if unit else ref.serial.strip()
        return Change(
            kind,
            data,
            product=ref.product,
            serial=serial,
            doc=doc,
            set=new,
            was=was,
            unit_prev=unit.last_event if unit else None,
        )

    def _override_change(
        self,
        ref: UnitRef,
        unit: Unit | None,
        allowed: Allowed,
        manager: str | None,
        what: str,
        doc: tuple[str, str],
    ) -> Change | None:
        if not allowed.overridden:
            return None
        return self.unit_change(
            "override",
            ref,
            unit,
            {},
            doc,
            {"manager": manager, "overrode": list(allowed.overridden), "for": what},
        )

    def _product_of(self, ref: UnitRef) -> Product:
        product = self.product(ref.product)
        assert product is not None
        return product

    def _new_document(self, doc_type: str, number: str) -> list[Problem]:
        if not number.strip():
            return [Problem("bad_document", f"a {doc_type} needs a number")]
        if self._document_exists(doc_type, number):
            return [Problem("duplicate_document", f"{doc_type} {number} already exists")]
        return []

    def _document_exists(self, doc_type: str, number: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM documents WHERE type = ? AND number = ?", [doc_type, number]
            ).fetchone()
            is not None
        )

    def _document_status(self, doc_type: str, number: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM documents WHERE type = ? AND number = ?", [doc_type, number]
        ).fetchone()
        return row[0] if row else None

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

    @staticmethod
    def _refuse_if(problems: list[Problem]) -> None:
        if problems:
            raise Refusal(problems)


_MOVES = frozenset(
    {
        Op.QUARANTINE,
        Op.RELEASE,
        Op.RETURN_TO_SUPPLIER,
        Op.WRITE_OFF,
        Op.MARK_LOST,
        Op.MARK_FOUND,
        Op.RELOCATE,
    }
)


def _warranty_end(product: Product, day: date) -> str | None:
    if product.warranty_months <= 0:
        return None
    return add_months(day, product.warranty_months).isoformat()


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


def _uuids(sealed: Iterable[Sealed]) -> list[str]:
    return [s.uuid for s in sealed]
