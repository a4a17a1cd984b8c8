"""The lane's ledger operations, carried out on the ledger thread (`LaneLedger.perform`).

Each takes one `LedgerOp` the rules decided on and turns it into ledger calls in one
durable transaction: a sale (with the override events of the units a manager let
through), a return, a delivery, an attendant's release, a manager's approval or a
refused attempt at one, a void of a sold line (a correction), a write-off, and the
steps of a stock count. A `Refusal` goes back to the rules as `LedgerDone(refused=...)`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from daemon.ledger import Ledger, Problem, Refusal, SaleLine, UnitRef
from daemon.ledger.lookup import ScanLookup
from daemon.ledger.stocktake import close_count, count_scan, open_count
from daemon.rules.lane.types import (
    CloseCount,
    CountScan,
    LedgerDone,
    LedgerOp,
    OpenCount,
    ReceiveUnits,
    RecordRefusedManager,
    RecordRelease,
    ReturnUnit,
    SellBasket,
    VoidSold,
    WriteOff,
)
from daemon.rules.units import Op, Refused, Request, State, decide, where

COUNT_PREFIX = "C-"


def perform(ledger: Ledger, lookup: ScanLookup, actor: str, op: LedgerOp) -> LedgerDone:
    """Carry out `op`; raises `Refusal` when the ledger says no."""
    if isinstance(op, SellBasket):
        _sell(ledger, lookup, actor, op)
    elif isinstance(op, ReturnUnit):
        ledger.return_unit(
            op.invoice,
            op.product,
            op.serial,
            actor=actor,
            condition=op.condition,
            disposition=op.disposition,
        )
    elif isinstance(op, ReceiveUnits):
        by_product: dict[str, list[str]] = defaultdict(list)
        for unit in op.units:
            by_product[unit.product.code].append(unit.serial)
        for code, serials in by_product.items():
            ledger.receive(op.po, op.supplier, code, serials, actor=actor, quantity=len(serials))
    elif isinstance(op, RecordRelease):
        ledger.record_release(op.attendant, method=op.method, code=op.code, message=op.message)
    elif isinstance(op, RecordRefusedManager):
        ledger.record_refused_manager(
            actor=actor,
            who=op.who,
            method=op.method,
            action=op.action,
            code=op.code,
            message=op.message,
        )
    elif isinstance(op, VoidSold):
        _void_sold(ledger, actor, op)
    elif isinstance(op, WriteOff):
        ledger.move(
            Op.WRITE_OFF,
            [UnitRef(op.product, op.serial)],
            actor=actor,
            reason=op.reason,
            manager=op.manager,
        )
    elif isinstance(op, OpenCount):
        return LedgerDone(op.op_id, details=_open_count(ledger, actor, op.argument))
    elif isinstance(op, CountScan):
        outcome = count_scan(ledger, op.count, op.product, op.serial, actor=actor)
        return LedgerDone(op.op_id, details=outcome.details)
    elif isinstance(op, CloseCount):
        outcome = close_count(ledger, op.count, actor=actor)
        return LedgerDone(op.op_id, details=outcome.details["report"])
    return LedgerDone(op.op_id)


def _sell(ledger: Ledger, lookup: ScanLookup, actor: str, op: SellBasket) -> None:
    basket = op.basket
    managers = list(dict.fromkeys(line.approved_by for line in basket.lines if line.approved_by))
    if managers:
        # The manager's name lets the ledger override any unit of the sale, so a unit
        # nobody approved is checked here first: it must need no override.
        _check_unapproved(lookup, op, ledger.branch)
    lines = [
        SaleLine(line.product.code, line.serial, line.price_cents, line.quantity)
        for line in basket.lines
    ]
    ledger.sell(
        basket.invoice,
        basket.customer,
        lines,
        actor=actor,
        manager=" and ".join(managers) or None,
    )


def _check_unapproved(lookup: ScanLookup, op: SellBasket, branch: str) -> None:
    problems = []
    for line in op.basket.lines:
        if line.serial is None or line.approved_by:
            continue
        for unit in lookup.units(line.serial):
            if unit.product.code != line.product.code:
                continue
            verdict = decide(unit.view, Request(Op.SELL, branch))
            if isinstance(verdict, Refused):
                problems.append(Problem(verdict.code, verdict.message, line.serial))
    if problems:
        raise Refusal(problems)


def _void_sold(ledger: Ledger, actor: str, op: VoidSold) -> None:
    unit = ledger.unit(op.product, op.serial)
    label = f'{op.description} serial "{op.serial}"'
    if unit is None or unit.state is not State.SOLD or unit.invoice != op.invoice:
        now = f"it is {where(unit.view())}" if unit is not None else "it is not in the ledger"
        raise Refusal(
            [Problem("not_on_invoice", f"{label} is no longer sold on invoice {op.invoice}: {now}")]
        )
    row = ledger.db.execute("SELECT body FROM events WHERE uuid = ?", [unit.last_event]).fetchone()
    body: dict[str, Any] = json.loads(row[0]) if row else {}
    if body.get("kind") != "sell" or (body.get("doc") or {}).get("no") != op.invoice:
        kind = str(body.get("kind", "another event")).replace("_", " ")
        raise Refusal(
            [
                Problem(
                    "not_latest",
                    f"{label} has had a {kind} since it was sold on invoice {op.invoice}; "
                    "the sale cannot be voided at the lane any more",
                )
            ]
        )
    ledger.correct(
        unit.last_event,
        actor=actor,
        manager=op.manager,
        reason=f"sale line voided at lane {ledger.terminal}",
    )


def _open_count(ledger: Ledger, actor: str, argument: str) -> dict[str, Any]:
    if argument:
        status = ledger.db.execute(
            "SELECT status FROM documents WHERE type = 'count' AND number = ?", [argument]
        ).fetchone()
        if status is not None:
            if status[0] == "closed":
                raise Refusal(
                    [Problem("count_closed", f"count {argument} is closed; start a new COUNT")]
                )
            return {
                "count": argument,
                "product": _count_product(ledger, argument),
                "scanned": _scans(ledger, argument),
                "resumed": True,
            }
    product = argument or None
    number = next_count_number(ledger)
    open_count(ledger, number, actor=actor, product=product)
    return {"count": number, "product": product, "scanned": 0, "resumed": False}


def next_count_number(ledger: Ledger) -> str:
    """`C-<terminal>-0001`, then one up from the highest this terminal has used."""
    prefix = f"{COUNT_PREFIX}{ledger.terminal}-"
    row = ledger.db.execute(
        "SELECT number FROM documents WHERE type = 'count' AND number >= ? AND number < ?"
        " ORDER BY number DESC LIMIT 1",
        [prefix, prefix + "\U0010ffff"],
    ).fetchone()
    tail = str(row[0])[len(prefix) :] if row else ""
    return f"{prefix}{(int(tail) if tail.isdigit() else 0) + 1:04d}"


def _count_product(ledger: Ledger, count: str) -> str | None:
    row = ledger.db.execute(
        "SELECT json_extract(e.body, '$.data.product') FROM events e"
        " JOIN documents d ON d.id = e.doc_id"
        " WHERE d.type = 'count' AND d.number = ? AND e.kind = 'count_open'",
        [count],
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def _scans(ledger: Ledger, count: str) -> int:
    row = ledger.db.execute(
        "SELECT count(*) FROM events e JOIN documents d ON d.id = e.doc_id"
        " WHERE d.type = 'count' AND d.number = ? AND e.kind = 'count_scan'",
        [count],
    ).fetchone()
    return int(row[0]) if row else 0
