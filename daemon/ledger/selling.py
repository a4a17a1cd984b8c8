"""Selling and returns: units bound to an invoice and a customer, and taken back only
against the invoice that sold them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from daemon.ledger.kinds import Kind
from daemon.rules.units import Op, Refused, Request, State, decide
from daemon.rules.values import IDENTIFIER, NAME, NOTE


@dataclass(frozen=True)
class SaleLine:
    """One line of a sale: a serialized unit, or a plain item (serial None).

    `approved_by`: the manager who let this unit through where it needs an override
    (it is at another branch, or in transit)."""

    product: str
    serial: str | None = None
    price_cents: int = 0
    quantity: int = 1
    approved_by: str | None = None


class Selling(LedgerCore):
    """Selling units and plain items on an invoice, and taking units back."""

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

        A unit at another branch or in transit needs a manager: its line's
        `approved_by`, or `manager`, who approves every line of the sale. The
        override is recorded as its own event before the sale. A line nobody
        approved that needs an override refuses the whole sale.
        """
        branch = branch or self.branch
        problems = self._new_document("invoice", invoice)
        problems += values_problems((NAME, customer, "customer"), (NAME, manager, "manager"))
        for line in lines:
            problems += _line_problems(line)
        self._refuse_if(problems)
        unit_lines = [line for line in lines if line.serial is not None]
        refs = [UnitRef(line.product, line.serial or "") for line in unit_lines]
        units, ref_problems = self._resolve(refs)
        problems += ref_problems
        for line in lines:
            if line.serial is not None:
                continue
            product = self.product(line.product)
            if product is None:
                problems.append(Problem("unknown_product", f"no product {line.product!r}"))
            elif product.serial_tracked:
                problems.append(
                    Problem(
                        "serial_required",
                        f"{line.product} ({product.name}) is tracked by serial: sell each unit"
                        f" by its serial ({line.product}/SERIAL), not as a plain item",
                    )
                )
        decisions = []
        for ref, line in zip(refs, unit_lines, strict=True):
            request = Request(Op.SELL, branch, manager=line.approved_by or manager)
            decisions += self._decide_each([ref], units, request, problems)
        self._refuse_if(problems)
        day = sold_on or self.clock().date()
        changes: list[Change] = []
        for (ref, unit, allowed), line in zip(decisions, unit_lines, strict=True):
            product = self._product_of(ref)
            override = self._override_change(
                ref, unit, allowed, line.approved_by or manager, "sell", ("invoice", invoice)
            )
            if override:
                changes.append(override)
            new = {
                "state": allowed.state.value,
                "branch": allowed.branch,
                "invoice": invoice,
                "customer": customer,
                "sold_on": day.isoformat(),
                "warranty_until": warranty_end(product, day),
                "dest_branch": None,
            }
            data = {"party": customer, "price_cents": line.price_cents}
            changes.append(self.unit_change(Kind.SELL, ref, unit, new, ("invoice", invoice), data))
        for line in lines:
            if line.serial is None:
                changes.append(
                    Change(
                        Kind.SELL_ITEM,
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
        return Outcome(f"invoice {invoice}: {len(lines)} line(s) sold to {customer}", uuids(sealed))

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
        self._refuse_if(
            values_problems(
                (IDENTIFIER, invoice, "invoice"),
                (IDENTIFIER, product, "product"),
                (NOTE, condition, "condition"),
                (NOTE, reason, "reason"),
            )
        )
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
                Kind.RETURN_REFUSED,
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
                    Kind.RETURN_REFUSED, ref, unit, {}, ("invoice", invoice), attempt.data
                )
            sealed = self.record(self.stamp(actor, branch), [attempt])
            raise Refusal([Problem(verdict.code, verdict.message, serial)], recorded=sealed[0].uuid)
        assert unit is not None
        new: dict[str, Any] = {
            "state": verdict.state.value,
            "branch": verdict.branch,
            **dict.fromkeys(SALE_FIELDS),
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
            self.stamp(actor, branch), [self.unit_change(Kind.RETURN, ref, unit, new, doc, data)]
        )
        return Outcome(
            f"{unit.label} returned on invoice {invoice}; now {verdict.state.value}", uuids(sealed)
        )

    def units_on_invoice(self, invoice: str) -> list[UnitRef]:
        """The units an invoice sold (including replacements sold on it)."""
        sold = self.db.execute(
            "SELECT e.body FROM events e JOIN documents d ON d.id = e.doc_id"
            " WHERE d.type = 'invoice' AND d.number = ? AND e.kind = ? ORDER BY e.id",
            [invoice, Kind.SELL],
        ).fetchall()
        replacements = self.db.execute(
            "SELECT e.body FROM events e WHERE e.kind = ? AND e.unit_id IN"
            " (SELECT id FROM units WHERE invoice = ?)",
            [Kind.REPLACE_NEW, invoice],
        ).fetchall()
        refs = []
        for (text,) in [*sold, *replacements]:
            unit = EventBody.parse(text).unit
            assert unit is not None
            refs.append(UnitRef(*unit))
        return refs


def _line_problems(line: SaleLine) -> list[Problem]:
    what = line.product[:40]
    problems = values_problems(
        (IDENTIFIER, line.product, "product"),
        ("money", line.price_cents, f"price of {what}"),
        ("quantity", line.quantity, f"quantity of {what}"),
        (NAME, line.approved_by, "approving manager"),
    )
    if line.serial is not None and line.quantity != 1:
        problems.append(
            Problem("bad_value", f"{what} serial {line.serial!r}: a unit is sold one at a time")
        )
    return problems
