"""What every ledger operation shares: naming units, checking a whole document in one
pass against the unit state machine, and shaping the events an operation records.

`Ledger` (`daemon.ledger.ledger`) is this core with one part per kind of document:
receiving (`receiving.py`), selling and returns (`selling.py`), repairs and warranty
(`repairs.py`), and movements: transfers, stock states, flags and corrections
(`movements.py`). Every operation checks its whole document in one pass (all serials,
all units, every reason at once), asks the unit state machine (`daemon.rules.units`)
for each unit, and then writes all of its events in one durable transaction, or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Self

from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.events import Change, Sealed, Stamp
from daemon.ledger.kinds import Kind
from daemon.ledger.store import LedgerStore, Product, Unit
from daemon.rules.serials import (
    SerialError,
    SerialRule,
    check_serial,
    check_serial_rule,
    compile_serial_rule,
)
from daemon.rules.units import Allowed, Refused, Request, decide
from daemon.rules.values import IDENTIFIER, NAME, TextKind, money_problem, quantity_problem
from daemon.rules.warranty import add_months

# Fields cleared when a unit leaves its customer.
SALE_FIELDS = ("invoice", "customer", "sold_on", "warranty_until")


@dataclass(frozen=True)
class UnitRef:
    """A unit as someone names it: product code and serial as printed."""

    product: str
    serial: str


# What `values_problems` checks: (kind, value, what the message calls it). A kind is a
# TextKind, "money" or "quantity"; None values (optional fields left out) pass.
ValueCheck = tuple[TextKind | str, object, str]


def values_problems(*checks: ValueCheck) -> list[Problem]:
    """A `bad_value` problem for each value that is not of its kind (`daemon.rules.values`)."""
    problems = []
    for kind, value, what in checks:
        if value is None:
            continue
        if kind == "money":
            problem = money_problem(value, what)
        elif kind == "quantity":
            problem = quantity_problem(value, what)
        else:
            assert isinstance(kind, TextKind)
            problem = kind.problem(value, what)
        if problem is not None:
            problems.append(Problem("bad_value", problem))
    return problems


@dataclass
class Outcome:
    """What an operation did: its events and a sentence for the person who asked."""

    message: str
    events: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class LedgerCore(LedgerStore):
    """The checks and event shapes every part of `Ledger` uses."""

    @classmethod
    def create(cls, path: str | Path | None, *, terminal: str, branch: str, **options: Any) -> Self:
        """A new ledger (see `LedgerStore.create`); refused (`bad_value`) when the
        terminal or branch is not an id: both name MQTT topics and every event."""
        cls._refuse_if(
            values_problems((IDENTIFIER, terminal, "terminal id"), (IDENTIFIER, branch, "branch"))
        )
        return super().create(path, terminal=terminal, branch=branch, **options)

    def stamp(self, actor: str, branch: str | None = None) -> Stamp:
        """Who does an operation, where: refused (`bad_value`) when the actor is not a
        name or the branch not an id, so no event is ever by or at such a value."""
        self._refuse_if(values_problems((NAME, actor, "actor"), (IDENTIFIER, branch, "branch")))
        return super().stamp(actor, branch)

    def _resolve(self, refs: Sequence[UnitRef]) -> tuple[dict[UnitRef, Unit | None], list[Problem]]:
        """Check each ref's product and serial, and load the units (one query per 500)."""
        problems: list[Problem] = []
        keys: dict[UnitRef, str] = {}
        seen: dict[tuple[str, str], UnitRef] = {}
        products: dict[str, Product | None] = {}
        rules: dict[str, SerialRule | SerialError | None] = {}
        for ref in refs:
            if ref.product not in products:
                product = products[ref.product] = self.product(ref.product)
                if product is not None and product.serial_rule:
                    rules[ref.product] = _rule_of(product)
            product = products[ref.product]
            if product is None:
                problems.append(
                    Problem("unknown_product", f"no product {ref.product!r}", ref.serial)
                )
                continue
            rule = rules.get(ref.product)
            if isinstance(rule, SerialError):
                problems.append(Problem("bad_rule", str(rule), ref.serial))
                continue
            if not product.serial_tracked:
                problems.append(
                    Problem("not_serialized", f"{ref.product} is not tracked by serial", ref.serial)
                )
                continue
            try:
                key = check_serial(ref.serial)
                check_serial_rule(key, rule, product.code)
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
        kind: Kind,
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
            Kind.OVERRIDE,
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
        bad = values_problems((IDENTIFIER, number, f"{doc_type} number"))
        if bad:
            return bad
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

    @staticmethod
    def _refuse_if(problems: list[Problem]) -> None:
        if problems:
            raise Refusal(problems)


def _rule_of(product: Product) -> SerialRule | SerialError:
    """The product's serial rule, or why it cannot be used (a rule stored before rules
    were checked as they are now: the product must be defined again)."""
    assert product.serial_rule is not None
    try:
        return compile_serial_rule(product.serial_rule)
    except SerialError as problem:
        return SerialError(
            f"{product.code}: {problem}; define the product again with a rule that can"
        )


def warranty_end(product: Product, day: date) -> str | None:
    """The last day of a unit's warranty when sold on `day` (None: no warranty)."""
    if product.warranty_months <= 0:
        return None
    return add_months(day, product.warranty_months).isoformat()


def uuids(sealed: Iterable[Sealed]) -> list[str]:
    return [s.uuid for s in sealed]
