"""Receiving: units arrive against a purchase order and go into stock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from daemon.ledger.core import SALE_FIELDS, Outcome, UnitRef, uuids, values_problems
from daemon.ledger.errors import Problem
from daemon.ledger.expected import Expecting
from daemon.ledger.kinds import Kind
from daemon.rules.serials import serial_key
from daemon.rules.units import Op, Request
from daemon.rules.values import IDENTIFIER, NAME


class Receiving(Expecting):
    """Receiving units into stock (also against a supplier's notice: `Expecting`)."""

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
        self._refuse_if(
            values_problems(
                (IDENTIFIER, po, "purchase order"),
                (NAME, supplier, "supplier"),
                (IDENTIFIER, product, "product"),
                ("money", cost_cents, "cost"),
                ("quantity", quantity, "quantity"),
                (IDENTIFIER, branch, "branch"),
                (NAME, lot, "lot"),
            )
        )
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
        # Lot and expiry the supplier's notice gave, where the receipt names none.
        noted = self.expected_lots(po, product, serials) if lot is None and expiry is None else {}
        changes = []
        for ref, unit, allowed in decisions:
            unit_lot, unit_expiry = noted.get(
                serial_key(ref.serial), (lot, expiry.isoformat() if expiry else None)
            )
            new = {
                "state": allowed.state.value,
                "branch": allowed.branch,
                "po": po,
                "supplier": supplier,
                "cost_cents": cost_cents,
                "lot": unit_lot,
                "expiry": unit_expiry,
                "dest_branch": None,
                "pre_repair_state": None,
                "repair_ticket": None,
                **dict.fromkeys(SALE_FIELDS),
            }
            changes.append(
                self.unit_change(
                    Kind.RECEIVE,
                    ref,
                    unit,
                    new,
                    ("po", po),
                    {"party": supplier, "received_on": day},
                )
            )
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(f"received {len(changes)} unit(s) of {product} on PO {po}", uuids(sealed))
