"""Turning serial history into decisions: the analytics tables.

Counts come from `activity` (kept per product, supplier, branch and day by the
projection in the same transaction as the events); per-unit questions (repeat
repairs) read only the repair events through the partial `events_kind` index, never
the receipts that make up most of the log.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind, not_receipt
from daemon.ledger.queries import passport, search
from daemon.ledger.reader import ReadStore


@dataclass(frozen=True)
class Table:
    """A report: named columns and rows, ready for text, JSON or CSV."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def supplier_failure(store: ReadStore) -> Table:
    """Returns and repairs per unit received, per supplier and model."""
    rows = store.db.execute(
        "SELECT a.supplier, p.code, sum(received), sum(returned), sum(repaired)"
        " FROM activity a JOIN products p ON p.id = a.product_id"
        " GROUP BY a.supplier, p.code HAVING sum(received) > 0"
    ).fetchall()
    table = [
        (supplier, product, received, returned, repaired, _rate(returned + repaired, received))
        for supplier, product, received, returned, repaired in rows
    ]
    table.sort(key=lambda r: (-r[5], r[0], r[1]))
    return Table(
        "Supplier failure rates",
        ("supplier", "product", "received", "returned", "repaired", "failure_rate"),
        table,
    )


def _repair_tickets(store: ReadStore) -> dict[int, list[tuple[str, str, str]]]:
    """For each unit that was repaired: (opened at, technician, ticket), in order."""
    by_unit: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for unit_id, body in store.db.execute(
        f"SELECT unit_id, body FROM events WHERE kind = ? AND {not_receipt()} ORDER BY id",
        [Kind.REPAIR_OPEN],
    ):
        event = EventBody.parse(body)
        ticket = event.doc.number if event.doc else ""
        by_unit[unit_id].append((event.at, event.data.get("technician") or "", ticket))
    return by_unit


def repeated_defects(store: ReadStore, *, at_least: int = 2) -> Table:
    """Models whose units come back for repair again and again."""
    repaired_units: dict[str, int] = defaultdict(int)
    repeat_units: dict[str, int] = defaultdict(int)
    products = dict(
        store.db.execute(
            "SELECT u.id, p.code FROM units u JOIN products p ON p.id = u.product_id"
            f" WHERE u.id IN (SELECT unit_id FROM events WHERE kind = ? AND {not_receipt()})",
            [Kind.REPAIR_OPEN],
        ).fetchall()
    )
    for unit_id, tickets in _repair_tickets(store).items():
        code = products[unit_id]
        repaired_units[code] += 1
        if len(tickets) >= at_least:
            repeat_units[code] += 1
    sold = dict(
        store.db.execute(
            "SELECT p.code, sum(a.sold) FROM activity a JOIN products p ON p.id = a.product_id"
            " GROUP BY p.code"
        ).fetchall()
    )
    rows = [
        (
            code,
            sold.get(code, 0),
            repaired_units[code],
            repeat_units[code],
            _rate(repeat_units[code], sold.get(code, 0)),
        )
        for code in sorted(repaired_units)
        if repeat_units[code]
    ]
    rows.sort(key=lambda r: (-r[3], r[0]))
    return Table(
        f"Models with units repaired {at_least} or more times",
        ("product", "sold", "units_repaired", "units_repaired_repeatedly", "repeat_rate"),
        rows,
    )


def technician_repeats(store: ReadStore, *, within_days: int = 90) -> Table:
    """Technicians whose repaired units came back for another repair within N days."""
    repairs: dict[str, int] = defaultdict(int)
    repeats: dict[str, int] = defaultdict(int)
    for tickets in _repair_tickets(store).values():
        for (opened, technician, _), (next_opened, _, _) in _pairs(tickets):
            repairs[technician] += 1
            if next_opened is not None and _days_between(opened, next_opened) <= within_days:
                repeats[technician] += 1
    rows = [(t, repairs[t], repeats[t], _rate(repeats[t], repairs[t])) for t in repairs]
    rows.sort(key=lambda r: (-r[3], r[0]))
    return Table(
        f"Technicians with repeat repairs of the same unit within {within_days} days",
        ("technician", "repairs", "repeat_repairs", "repeat_rate"),
        rows,
    )


def _pairs(
    tickets: list[tuple[str, str, str]],
) -> list[tuple[tuple[str, str, str], tuple[str | None, str, str]]]:
    """Each repair with the next repair of the same unit (None when there is none)."""
    nexts: list[tuple[str | None, str, str]] = [*tickets[1:], (None, "", "")]
    return list(zip(tickets, nexts, strict=True))


def _days_between(earlier: str, later: str) -> float:
    start = datetime.fromisoformat(earlier.replace("Z", "+00:00"))
    end = datetime.fromisoformat(later.replace("Z", "+00:00"))
    return (end - start) / timedelta(days=1)


def branch_returns(store: ReadStore, *, unusual_factor: float = 2.0) -> Table:
    """Return rate per branch against the chain's; 'unusual' beyond a factor of it."""
    rows = store.db.execute(
        "SELECT branch, sum(sold), sum(returned) FROM activity GROUP BY branch"
    ).fetchall()
    total_sold = sum(r[1] for r in rows)
    total_returned = sum(r[2] for r in rows)
    chain = _rate(total_returned, total_sold)
    table = []
    for branch, sold, returned in rows:
        rate = _rate(returned, sold)
        unusual = bool(sold) and chain > 0 and rate > unusual_factor * chain
        table.append((branch, sold, returned, rate, chain, "unusual" if unusual else ""))
    table.sort(key=lambda r: (-r[3], r[0]))
    return Table(
        "Return rate per branch",
        ("branch", "sold", "returned", "return_rate", "chain_rate", "flag"),
        table,
    )


def warranty_vs_margin(store: ReadStore) -> Table:
    """Products whose warranty cost (covered claim lines) exceeds their margin."""
    rows = store.db.execute(
        "SELECT p.code, sum(revenue_cents), sum(cost_of_sold_cents), sum(warranty_covered_cents)"
        " FROM activity a JOIN products p ON p.id = a.product_id GROUP BY p.code"
    ).fetchall()
    table = []
    for code, revenue, cost, warranty in rows:
        margin = revenue - cost
        if warranty > margin:
            table.append((code, revenue, cost, margin, warranty, warranty - margin))
    table.sort(key=lambda r: (-r[5], r[0]))
    return Table(
        "Products whose warranty cost exceeds their margin",
        (
            "product",
            "revenue_cents",
            "cost_of_sold_cents",
            "margin_cents",
            "warranty_cost_cents",
            "excess_cents",
        ),
        table,
    )


def registered_per_day(store: ReadStore) -> Table:
    """Units received (registered) and sold per day."""
    rows = store.db.execute(
        "SELECT day, sum(received), sum(sold) FROM activity GROUP BY day ORDER BY day"
    ).fetchall()
    return Table("Units registered per day", ("day", "received", "sold"), [tuple(r) for r in rows])


def time_to_locate(store: ReadStore, *, samples: int = 200, seed: int = 1) -> Table:
    """How long finding a unit's whole history takes, on a random sample of units."""
    high = store.db.execute("SELECT max(id) FROM units").fetchone()[0] or 0
    rng = random.Random(seed)
    timings = []
    for _ in range(min(samples, high)):
        row = store.db.execute(
            "SELECT serial FROM units WHERE id >= ? LIMIT 1", [rng.randint(1, high)]
        ).fetchone()
        started = time.perf_counter()
        found = search(store, serial=row[0], limit=10)
        passport(store, found[0])
        timings.append((time.perf_counter() - started) * 1000)
    if not timings:
        return Table("Time to locate a unit's history", ("samples", "median_ms", "p99_ms"), [])
    timings.sort()
    p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
    return Table(
        "Time to locate a unit's history",
        ("samples", "median_ms", "p99_ms"),
        [(len(timings), round(statistics.median(timings), 3), round(p99, 3))],
    )


REPORTS: dict[str, Callable[[ReadStore], Table]] = {
    "supplier-failure": supplier_failure,
    "repeated-defects": repeated_defects,
    "technician-repeats": technician_repeats,
    "branch-returns": branch_returns,
    "warranty-vs-margin": warranty_vs_margin,
    "registered-per-day": registered_per_day,
    "time-to-locate": time_to_locate,
}
