"""Movements: transfers between branches, stock states (quarantine, release, return to
supplier, write-off, lost and found, relocation), flags, and corrections."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from daemon.ledger.core import LedgerCore, Outcome, UnitRef, uuids, values_problems
from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind
from daemon.rules.units import Flag, Op, Request, State, where
from daemon.rules.values import IDENTIFIER, NAME, NOTE


class Movements(LedgerCore):
    """Units moving between branches and states, flags, and corrections."""

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
        problems += values_problems((IDENTIFIER, to_branch, "destination branch"))
        if to_branch == branch:
            problems.append(Problem("same_branch", f"transfer {transfer} goes to its own branch"))
        units, ref_problems = self._resolve(refs)
        problems += ref_problems
        decisions = self._decide_each(refs, units, Request(Op.TRANSFER_OUT, branch), problems)
        self._refuse_if(problems)
        changes = [
            self.unit_change(
                Kind.TRANSFER_OUT,
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
        return Outcome(f"transfer {transfer}: {len(changes)} unit(s) to {to_branch}", uuids(sealed))

    def transfer_in(
        self, transfer: str, refs: Sequence[UnitRef], *, actor: str, branch: str | None = None
    ) -> Outcome:
        """Receive units of a transfer at their destination branch: `transfer` must be
        the transfer that sent each unit (refused `wrong_transfer` otherwise)."""
        branch = branch or self.branch
        self._refuse_if(values_problems((IDENTIFIER, transfer, "transfer number")))
        units, problems = self._resolve(refs)
        decisions = self._decide_each(refs, units, Request(Op.TRANSFER_IN, branch), problems)
        for ref, unit, _ in decisions:
            assert unit is not None  # only a unit in transit may be received
            sent_by = self._sending_transfer(unit.id)
            if sent_by != transfer:
                problems.append(
                    Problem(
                        "wrong_transfer",
                        f"{unit.label} was sent by transfer {sent_by or '(unknown)'},"
                        f" not {transfer}: receive it against {sent_by or 'its transfer'}",
                        ref.serial,
                    )
                )
        self._refuse_if(problems)
        changes = [
            self.unit_change(
                Kind.TRANSFER_IN,
                ref,
                unit,
                {"state": allowed.state.value, "branch": allowed.branch, "dest_branch": None},
                ("transfer", transfer),
                {"doc_status": "received"},
            )
            for ref, unit, allowed in decisions
        ]
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(f"transfer {transfer}: {len(changes)} unit(s) received", uuids(sealed))

    def _sending_transfer(self, unit_id: int) -> str | None:
        """The number of the transfer that last sent this unit on its way."""
        row = self.db.execute(
            "SELECT body FROM events WHERE kind = ? AND unit_id = ? ORDER BY id DESC LIMIT 1",
            [Kind.TRANSFER_OUT.value, unit_id],
        ).fetchone()
        doc = EventBody.parse(row[0]).doc if row else None
        return doc.number if doc else None

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
        self._refuse_if(
            values_problems(
                (NOTE, reason, "reason"),
                (NAME, manager, "manager"),
                (IDENTIFIER, document, "document"),
            )
        )
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
                    Kind.of(op), ref, unit, new, doc, {"reason": reason, "manager": manager}
                )
            )
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(f"{len(changes)} unit(s): {op.value.replace('_', ' ')}", uuids(sealed))

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
        self._refuse_if(
            values_problems((NOTE, reason, "reason"), (IDENTIFIER, document, "document"))
        )
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
                    Kind.of(op),
                    ref,
                    unit,
                    {"flags": sorted(f.value for f in flags)},
                    doc,
                    {"flag": flag.value, "reason": reason},
                )
            )
        sealed = self.record(self.stamp(actor), changes) if changes else []
        verb = "flagged" if on else "cleared"
        return Outcome(f"{len(changes)} unit(s) {verb} {flag.value}", uuids(sealed))

    def correct(self, event_uuid: str, *, actor: str, manager: str, reason: str) -> Outcome:
        """Undo a unit event with a further event that names it. Nothing is erased."""
        self._refuse_if(
            values_problems(
                (IDENTIFIER, event_uuid, "event id"),
                (NAME, manager, "manager"),
                (NOTE, reason, "reason"),
            )
        )
        event = self.event(event_uuid)
        if event is None:
            raise Refusal([Problem("unknown_event", f"there is no event {event_uuid}")])
        problems: list[Problem] = []
        if not manager:
            problems.append(Problem("needs_manager", "a correction needs a manager"))
        named = event.unit
        if named is None or not event.after:
            problems.append(
                Problem("not_correctable", f"event {event_uuid} ({event.kind}) changed no unit")
            )
            self._refuse_if(problems)
        assert named is not None
        ref = UnitRef(*named)
        unit = self.unit(ref.product, ref.serial)
        assert unit is not None
        if unit.last_event != event_uuid:
            problems.append(
                Problem(
                    "not_latest",
                    f"{unit.label} has later events; correct the latest ({unit.last_event}) first",
                )
            )
        if event.kind == Kind.RECEIVE and event.before.get("state") is None:
            problems.append(
                Problem(
                    "first_receipt",
                    f"{unit.label} first arrived with this event; write it off (reason: received"
                    " in error) instead, so its history stays",
                )
            )
        self._refuse_if(problems)
        change = self.unit_change(
            Kind.CORRECTION,
            ref,
            unit,
            dict(event.before),
            event.doc,
            {
                "corrects": event_uuid,
                "corrected_kind": event.kind,
                "corrected_price_cents": event.data.get("price_cents", 0),
                "reason": reason,
                "manager": manager,
            },
        )
        sealed = self.record(self.stamp(actor), [change])
        return Outcome(f"event {event_uuid} ({event.kind}) corrected", uuids(sealed))

    def void_sale(
        self,
        invoice: str,
        product: str,
        serial: str,
        *,
        actor: str,
        manager: str,
        reason: str,
        description: str | None = None,
    ) -> Outcome:
        """Undo the sale of one unit on a completed invoice with a correction, while that
        sale is the unit's latest event. `description` names the unit in messages (its
        product's name when not given)."""
        unit = self.unit(product, serial)
        name = description or (unit.product.name if unit else product)
        label = f'{name} serial "{serial}"'
        if unit is None or unit.state is not State.SOLD or unit.invoice != invoice:
            now = f"it is {where(unit.view())}" if unit is not None else "it is not in the ledger"
            message = f"{label} is no longer sold on invoice {invoice}: {now}"
            raise Refusal([Problem("not_on_invoice", message)])
        last = self.event(unit.last_event)
        if last is None or last.kind != Kind.SELL or last.doc is None or last.doc.number != invoice:
            kind = (last.kind if last is not None else "another event").replace("_", " ")
            raise Refusal(
                [
                    Problem(
                        "not_latest",
                        f"{label} has had a {kind} since it was sold on invoice {invoice}; "
                        "the sale cannot be voided at the lane any more",
                    )
                ]
            )
        return self.correct(unit.last_event, actor=actor, manager=manager, reason=reason)


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
