"""Stock counts: scan every serialized unit on the shelves and compare with the ledger.

A count is a document. Opening it records its scope (a branch, optionally one
product); each scan is an event on the count (and in the unit's passport when the
ledger knows the unit). The report lists units the ledger places on those shelves
that were not scanned (missing), units scanned that the ledger places elsewhere or in
another state (unexpected, with where the ledger has them), units scanned twice, and
serials the ledger does not know. Closing the count records its figures, which give
the branch's inventory accuracy by serial over time. Resolving a difference (lost,
found, moved here) is an event on the count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.ledger.analytics import Table
from daemon.ledger.core import Outcome, UnitRef, values_problems
from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.events import Change, EventBody
from daemon.ledger.kinds import Kind, not_receipt
from daemon.ledger.ledger import Ledger
from daemon.ledger.queries import events_of
from daemon.ledger.reader import ReadStore
from daemon.ledger.store import LedgerStore, Unit
from daemon.rules.serials import SerialError, check_serial, serial_key
from daemon.rules.units import Op, State, where
from daemon.rules.values import IDENTIFIER

# How the counts a lane opens are numbered: C-<terminal>-0001, C-<terminal>-0002, …
COUNT_PREFIX = "C-"
# Where a unit on the shelf can be: what a count expects to find.
ON_SHELF = (State.IN_STOCK, State.QUARANTINED)


@dataclass(frozen=True)
class CountedUnit:
    product: str
    serial: str
    note: str = ""


@dataclass
class CountReport:
    count: str
    branch: str
    product: str | None
    expected: int
    found: int
    missing: list[CountedUnit] = field(default_factory=list)
    unexpected: list[CountedUnit] = field(default_factory=list)
    duplicates: list[CountedUnit] = field(default_factory=list)
    unknown: list[CountedUnit] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        """Share of the units the ledger expected here that were found here."""
        return round(self.found / self.expected, 4) if self.expected else 1.0


def _opening(store: LedgerStore, count: str) -> EventBody | None:
    """The event that opened the count, or None when there is no such count."""
    row = store.db.execute(
        "SELECT e.body FROM events e JOIN documents d ON d.id = e.doc_id"
        " WHERE d.type = 'count' AND d.number = ? AND e.kind = ?",
        [count, Kind.COUNT_OPEN],
    ).fetchone()
    return EventBody.parse(row[0]) if row else None


def _scope(store: LedgerStore, count: str) -> dict[str, Any]:
    opening = _opening(store, count)
    if opening is None:
        raise Refusal([Problem("unknown_count", f"there is no stock count {count}")])
    return dict(opening.data) | {"closed": _closed(store, count)}


def _closed(store: LedgerStore, count: str) -> bool:
    status = _status(store, count)
    return bool(status and status[0] == "closed")


def _status(store: LedgerStore, count: str) -> tuple[str | None] | None:
    """The count's (status,), or None when there is no such count."""
    row: tuple[str | None] | None = store.db.execute(
        "SELECT status FROM documents WHERE type = 'count' AND number = ?", [count]
    ).fetchone()
    return row


@dataclass(frozen=True)
class CountInProgress:
    """A count a lane is going on with: its number, scope and scans so far."""

    count: str
    product: str | None
    scanned: int
    resumed: bool  # False: it was opened just now


def open_or_resume(ledger: Ledger, argument: str, *, actor: str) -> CountInProgress:
    """A lane's COUNT: go on with count `argument` when it is open; otherwise open a new
    count (numbered by `next_count_number`) of product `argument`, or of every product
    when `argument` is empty. A closed count cannot be resumed."""
    status = _status(ledger, argument) if argument else None
    if status is not None:
        if status[0] == "closed":
            raise Refusal(
                [Problem("count_closed", f"count {argument} is closed; start a new COUNT")]
            )
        opening = _opening(ledger, argument)
        product = opening.data.get("product") if opening else None
        scanned = _scans(ledger, argument)
        return CountInProgress(argument, str(product) if product else None, scanned, True)
    product = argument or None
    number = next_count_number(ledger)
    open_count(ledger, number, actor=actor, product=product)
    return CountInProgress(number, product, 0, False)


def next_count_number(store: LedgerStore) -> str:
    """`C-<terminal>-0001`, then one up from the highest this terminal has used."""
    prefix = f"{COUNT_PREFIX}{store.terminal}-"
    row = store.db.execute(
        "SELECT number FROM documents WHERE type = 'count' AND number >= ? AND number < ?"
        " ORDER BY number DESC LIMIT 1",
        [prefix, prefix + "\U0010ffff"],
    ).fetchone()
    tail = str(row[0])[len(prefix) :] if row else ""
    return f"{prefix}{(int(tail) if tail.isdigit() else 0) + 1:04d}"


def _scans(store: LedgerStore, count: str) -> int:
    """How many scans the count has recorded (repeats included)."""
    row = store.db.execute(
        "SELECT count(*) FROM events e JOIN documents d ON d.id = e.doc_id"
        " WHERE d.type = 'count' AND d.number = ? AND e.kind = ?",
        [count, Kind.COUNT_SCAN],
    ).fetchone()
    return int(row[0]) if row else 0


def open_count(
    ledger: Ledger,
    count: str,
    *,
    actor: str,
    branch: str | None = None,
    product: str | None = None,
) -> Outcome:
    """Start a count of a branch's shelves (or of one product there)."""
    branch = branch or ledger.branch
    bad = values_problems((IDENTIFIER, count, "count number"), (IDENTIFIER, product, "product"))
    if bad:
        raise Refusal(bad)
    if ledger.db.execute(
        "SELECT 1 FROM documents WHERE type = 'count' AND number = ?", [count]
    ).fetchone():
        raise Refusal([Problem("duplicate_document", f"count {count} already exists")])
    if product is not None and ledger.product(product) is None:
        raise Refusal([Problem("unknown_product", f"no product {product!r}")])
    change = Change(
        Kind.COUNT_OPEN,
        {"branch": branch, "product": product, "doc_status": "open"},
        doc=("count", count),
    )
    sealed = ledger.record(ledger.stamp(actor, branch), [change])
    scope = f"product {product} at branch {branch}" if product else f"branch {branch}"
    return Outcome(f"count {count} opened for {scope}", [s.uuid for s in sealed])


def count_scan(ledger: Ledger, count: str, product: str, serial: str, *, actor: str) -> Outcome:
    """Record one scanned unit; the outcome says how it compares with the ledger."""
    bad = values_problems((IDENTIFIER, count, "count number"), (IDENTIFIER, product, "product"))
    if bad:
        raise Refusal(bad)
    scope = _scope(ledger, count)
    if scope["closed"]:
        raise Refusal([Problem("count_closed", f"count {count} is closed")])
    try:
        check_serial(serial)
    except SerialError as exc:
        raise Refusal([Problem("bad_serial", str(exc), serial)]) from None
    unit = ledger.unit(product, serial)
    seen = _scanned(ledger, count)
    verdict = _compare(unit, scope, (product, serial_key(serial)) in seen)
    data = {"product": product, "serial": serial, "verdict": verdict}
    doc = ("count", count)
    if unit is None:
        change = Change(Kind.COUNT_SCAN, data, doc=doc)
    else:
        change = ledger.unit_change(Kind.COUNT_SCAN, UnitRef(product, serial), unit, {}, doc, data)
    sealed = ledger.record(ledger.stamp(actor, scope["branch"]), [change])
    label = unit.label if unit else f'{product} serial "{serial}"'
    return Outcome(f"{label}: {verdict}", [s.uuid for s in sealed], {"verdict": verdict})


def _compare(unit: Unit | None, scope: dict[str, Any], already: bool) -> str:
    if already:
        return "scanned twice"
    if unit is None:
        return "not in the ledger"
    if unit.branch == scope["branch"] and unit.state in ON_SHELF:
        return "expected"
    return f"unexpected: the ledger has it {where(unit.view())}"


def _scanned(store: LedgerStore, count: str) -> list[tuple[str, str]]:
    """(product, serial key) of each scan of the count, in order, repeats included."""
    scans = []
    for (body,) in store.db.execute(
        "SELECT e.body FROM events e JOIN documents d ON d.id = e.doc_id"
        f" WHERE d.type = 'count' AND d.number = ? AND e.kind = ? AND {not_receipt('e.kind')}"
        " ORDER BY e.id",
        [count, Kind.COUNT_SCAN],
    ):
        data = EventBody.parse(body).data
        scans.append((data["product"], serial_key(data["serial"])))
    return scans


def count_report(store: LedgerStore, count: str) -> CountReport:
    """Missing, unexpected, doubly scanned and unknown units of a count."""
    scope = _scope(store, count)
    scans = _scanned(store, count)
    found_units = store.units_by_key(key for _, key in scans)
    sql = (
        "SELECT p.code, u.serial, u.serial_key FROM units u JOIN products p ON p.id = u.product_id"
        " WHERE u.branch = ? AND u.state IN (?, ?)"
    )
    params: list[Any] = [scope["branch"], *(s.value for s in ON_SHELF)]
    if scope.get("product"):
        sql += " AND p.code = ?"
        params.append(scope["product"])
    expected = {(code, key): serial for code, serial, key in store.db.execute(sql, params)}
    report = CountReport(count, scope["branch"], scope.get("product"), len(expected), 0)
    seen: set[tuple[str, str]] = set()
    for product, key in scans:
        unit = found_units.get((product, key))
        serial = unit.serial if unit else key
        if (product, key) in seen:
            report.duplicates.append(CountedUnit(product, serial, "scanned twice"))
            continue
        seen.add((product, key))
        if (product, key) in expected:
            report.found += 1
        elif unit is None:
            report.unknown.append(CountedUnit(product, serial, "not in the ledger"))
        else:
            report.unexpected.append(
                CountedUnit(product, serial, f"the ledger has it {where(unit.view())}")
            )
    for (product, key), serial in sorted(expected.items()):
        if (product, key) not in seen:
            report.missing.append(CountedUnit(product, serial, "not found on the shelf"))
    return report


def close_count(ledger: Ledger, count: str, *, actor: str) -> Outcome:
    """Close a count, recording its figures (the branch's accuracy by serial)."""
    scope = _scope(ledger, count)
    if scope["closed"]:
        raise Refusal([Problem("count_closed", f"count {count} is already closed")])
    report = count_report(ledger, count)
    data = {
        "doc_status": "closed",
        "branch": report.branch,
        "expected": report.expected,
        "found": report.found,
        "missing": len(report.missing),
        "unexpected": len(report.unexpected),
        "duplicates": len(report.duplicates),
        "unknown": len(report.unknown),
        "accuracy": report.accuracy,
    }
    sealed = ledger.record(
        ledger.stamp(actor, report.branch),
        [Change(Kind.COUNT_CLOSE, data, doc=("count", count))],
    )
    return Outcome(
        f"count {count} closed: {report.found} of {report.expected} found"
        f" (accuracy {report.accuracy:.1%}), {len(report.missing)} missing,"
        f" {len(report.unexpected)} unexpected, {len(report.duplicates)} scanned twice",
        [s.uuid for s in sealed],
        {"report": data},
    )


def resolve(
    ledger: Ledger,
    count: str,
    product: str,
    serial: str,
    *,
    actor: str,
    manager: str | None = None,
) -> Outcome:
    """Settle one difference of a count: a missing unit is marked lost; a unit found
    here that the ledger had as lost is marked found; one the ledger had elsewhere is
    relocated here. Each is an event on the count."""
    scope = _scope(ledger, count)
    unit = ledger.unit(product, serial)
    if unit is None:
        raise Refusal(
            [
                Problem(
                    "unknown_unit",
                    f'{product} serial "{serial}" is not in the ledger; receive it first',
                )
            ]
        )
    scanned = (product, unit.serial_key) in set(_scanned(ledger, count))
    if not scanned:
        op = Op.MARK_LOST
    elif unit.state is State.LOST:
        op = Op.MARK_FOUND
    else:
        op = Op.RELOCATE
    return ledger.move(
        op,
        [UnitRef(product, serial)],
        actor=actor,
        manager=manager,
        reason=f"stock count {count}",
        document=count,
        doc_type="count",
        branch=scope["branch"],
    )


def accuracy_by_branch(store: ReadStore) -> Table:
    """Inventory accuracy by serial, per branch, count by count."""
    rows = []
    for event in events_of(store, Kind.COUNT_CLOSE):
        data = event.data
        assert event.doc is not None
        rows.append(
            (
                data["branch"],
                event.day,
                event.doc.number,
                data["expected"],
                data["found"],
                data["missing"],
                data["unexpected"],
                data["accuracy"],
            )
        )
    return Table(
        "Inventory accuracy by serial",
        ("branch", "day", "count", "expected", "found", "missing", "unexpected", "accuracy"),
        rows,
    )
