"""Analytics against brute-force counts over generated histories."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from datetime import datetime

import pytest

from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.analytics import (
    branch_returns,
    registered_per_day,
    repeated_defects,
    supplier_failure,
    technician_repeats,
    time_to_locate,
    warranty_vs_margin,
)
from daemon.ledger.audit import verify_projection
from daemon.rules.units import State
from daemon.rules.warranty import Cause, ClaimLine, LineKind
from tests.ledger_fixtures import FixedClock, make_ledger

SUPPLIERS = ["Acme", "Bolt", "Core"]
BRANCHES = ["B1", "B2", "B3"]
TECHS = ["tess", "tom", "tia"]


def generate(seed: int, units: int = 120, steps: int = 400) -> Ledger:
    rng = random.Random(seed)
    clock = FixedClock()
    ledger = make_ledger(clock=clock)
    serials: list[tuple[str, str]] = []
    for i in range(units):
        product = rng.choice(["LAP", "TAB"]) if i else "LAP"
        if product == "TAB" and ledger.product("TAB") is None:
            ledger.define_product("TAB", "Tablet", actor="s", warranty_months=12)
        serial = f"U{i:04d}"
        ledger.receive(
            f"PO-{i}",
            rng.choice(SUPPLIERS),
            product,
            [serial],
            actor="a",
            branch=rng.choice(BRANCHES),
            cost_cents=rng.randint(100, 900) * 100,
        )
        serials.append((product, serial))
        clock.advance(hours=rng.randint(0, 30))
    for n in range(steps):
        clock.advance(hours=rng.randint(1, 48))
        product, serial = rng.choice(serials)
        unit = ledger.unit(product, serial)
        assert unit is not None
        try:
            if unit.state is State.IN_STOCK:
                ledger.sell(
                    f"INV-{n}",
                    f"C{n}",
                    [SaleLine(product, serial, rng.randint(200, 1200) * 100)],
                    actor="a",
                    branch=unit.branch,
                )
            elif unit.state is State.SOLD and rng.random() < 0.3:
                ledger.return_unit(
                    unit.invoice or "",
                    product,
                    serial,
                    actor="a",
                    condition="ok",
                    disposition=State.IN_STOCK,
                    branch=rng.choice(BRANCHES),
                )
            elif unit.state is State.SOLD:
                ledger.repair_open(
                    f"RP-{n}",
                    UnitRef(product, serial),
                    actor="a",
                    technician=rng.choice(TECHS),
                    intake_condition="ok",
                    fault="f",
                )
                if rng.random() < 0.5:
                    ledger.warranty_claim(
                        f"WC-{n}",
                        UnitRef(product, serial),
                        [
                            ClaimLine("part", rng.randint(50, 900) * 100, LineKind.PART),
                            ClaimLine("lid", 3000, LineKind.PART, Cause.DAMAGE),
                        ],
                        actor="t",
                    )
            elif unit.state is State.IN_REPAIR:
                ledger.repair_step(unit.repair_ticket or "", "qc_passed", actor="q")
                ledger.repair_close(unit.repair_ticket or "", actor="t", outcome="repaired")
        except Refusal:
            pass
    # One correction, so the figures must take a corrected sale back out.
    for product, serial in serials:
        unit = ledger.unit(product, serial)
        if unit is not None and unit.state is State.SOLD:
            last = ledger.db.execute(
                "SELECT kind FROM events WHERE uuid = ?", [unit.last_event]
            ).fetchone()[0]
            if last == "sell":
                ledger.correct(unit.last_event, actor="a", manager="M", reason="mis-scan")
                break
    return ledger


def events(ledger: Ledger) -> list[dict[str, object]]:
    return [json.loads(b) for (b,) in ledger.db.execute("SELECT body FROM events ORDER BY id")]


def brute_force(ledger: Ledger) -> dict[str, object]:
    """Everything recomputed from the raw event bodies, with no kept figure."""
    supplier_of: dict[tuple[str, str], str] = {}
    cost_of: dict[tuple[str, str], int] = {}
    price_of: dict[str, int] = {}
    kind_of: dict[str, str] = {}
    received: Counter[tuple[str, str]] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    sold_by_branch: Counter[str] = Counter()
    returned_by_branch: Counter[str] = Counter()
    revenue: Counter[str] = Counter()
    cost: Counter[str] = Counter()
    warranty: Counter[str] = Counter()
    per_day: Counter[str] = Counter()
    repairs: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for e in events(ledger):
        kind = str(e["kind"])
        kind_of[str(e["uuid"])] = kind
        data = e["data"]
        assert isinstance(data, dict)
        if "product" not in e:
            continue
        unit = (str(e["product"]), str(e["serial"]).upper())
        key = (supplier_of.get(unit, ""), unit[0])
        if kind == "receive":
            supplier_of[unit] = str(e["set"]["supplier"])  # type: ignore[index]
            cost_of[unit] = int(e["set"].get("cost_cents", 0))  # type: ignore[union-attr]
            received[(supplier_of[unit], unit[0])] += 1
            per_day[str(e["at"])[:10]] += 1
        elif kind == "sell":
            sold_by_branch[str(e["branch"])] += 1
            price_of[str(e["uuid"])] = int(data["price_cents"])
            revenue[unit[0]] += int(data["price_cents"])
            cost[unit[0]] += cost_of[unit]
        elif kind == "return":
            failed[key] += 1
            returned_by_branch[str(e["branch"])] += 1
        elif kind == "repair_open":
            failed[key] += 1
            repairs[unit].append((str(e["at"]), str(data["technician"])))
        elif kind == "warranty_claim":
            warranty[unit[0]] += int(data["covered_cents"])
        elif kind == "correction" and kind_of[str(data["corrects"])] == "sell":
            sold_by_branch[str(e["branch"])] -= 1
            revenue[unit[0]] -= price_of[str(data["corrects"])]
            cost[unit[0]] -= cost_of[unit]
    tech_repairs: Counter[str] = Counter()
    tech_repeats: Counter[str] = Counter()
    for visits in repairs.values():
        for i, (at, tech) in enumerate(visits):
            tech_repairs[tech] += 1
            if i + 1 < len(visits):
                gap = datetime.fromisoformat(visits[i + 1][0][:-1]) - datetime.fromisoformat(
                    at[:-1]
                )
                if gap.days < 90 or (gap.days == 90 and gap.seconds == 0):
                    tech_repeats[tech] += 1
    return {
        "failure": {k: (received[k], failed[k]) for k in received},
        "branch": (sold_by_branch, returned_by_branch),
        "margin": (revenue, cost, warranty),
        "per_day": per_day,
        "tech": (tech_repairs, tech_repeats),
        "repeat_units": Counter(unit[0] for unit, v in repairs.items() if len(v) >= 2),
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_analytics_equal_brute_force_counts(seed: int) -> None:
    ledger = generate(seed)
    truth = brute_force(ledger)
    assert verify_projection(ledger) is None

    table = supplier_failure(ledger).as_dicts()
    got = {
        (r["supplier"], r["product"]): (r["received"], r["returned"] + r["repaired"]) for r in table
    }
    assert got == truth["failure"]
    assert all(
        r["failure_rate"] == round((r["returned"] + r["repaired"]) / r["received"], 4)
        for r in table
    )

    sold, returned = truth["branch"]  # type: ignore[misc]
    got_branch = {
        r["branch"]: (r["sold"], r["returned"]) for r in branch_returns(ledger).as_dicts()
    }
    assert got_branch == {b: (sold[b], returned[b]) for b in set(sold) | set(returned)}

    revenue, cost, warranty = truth["margin"]  # type: ignore[misc]
    expected_excess = sorted(p for p in revenue | warranty if warranty[p] > revenue[p] - cost[p])
    assert sorted(r["product"] for r in warranty_vs_margin(ledger).as_dicts()) == expected_excess

    days = {r["day"]: r["received"] for r in registered_per_day(ledger).as_dicts() if r["received"]}
    assert days == dict(truth["per_day"])  # type: ignore[arg-type]

    repairs, repeats = truth["tech"]  # type: ignore[misc]
    got_tech = {
        r["technician"]: (r["repairs"], r["repeat_repairs"])
        for r in technician_repeats(ledger).as_dicts()
    }
    assert got_tech == {t: (repairs[t], repeats[t]) for t in repairs}

    got_repeat = {
        r["product"]: r["units_repaired_repeatedly"] for r in repeated_defects(ledger).as_dicts()
    }
    assert got_repeat == dict(truth["repeat_units"])  # type: ignore[arg-type]


def test_unusual_return_rate_is_flagged() -> None:
    clock = FixedClock()
    ledger = make_ledger(clock=clock)
    for branch, sold, returned in (("B1", 20, 1), ("B2", 20, 1), ("B3", 10, 6)):
        serials = [f"{branch}-{i}" for i in range(sold)]
        ledger.receive(f"PO-{branch}", "Acme", "LAP", serials, actor="a", branch=branch)
        for i, serial in enumerate(serials):
            ledger.sell(
                f"INV-{serial}", "C", [SaleLine("LAP", serial, 1000)], actor="a", branch=branch
            )
            if i < returned:
                ledger.return_unit(
                    f"INV-{serial}",
                    "LAP",
                    serial,
                    actor="a",
                    condition="ok",
                    disposition=State.IN_STOCK,
                    branch=branch,
                )
    flags = {r["branch"]: r["flag"] for r in branch_returns(ledger).as_dicts()}
    assert flags == {"B1": "", "B2": "", "B3": "unusual"}


def test_time_to_locate_reports_a_sample() -> None:
    ledger = generate(4, units=30, steps=20)
    row = time_to_locate(ledger, samples=20).as_dicts()[0]
    assert row["samples"] == 20 and 0 < row["median_ms"] <= row["p99_ms"]


def test_product_whose_warranty_cost_exceeds_its_margin() -> None:
    ledger = make_ledger()
    ledger.define_product("CHEAP", "Cheap phone", actor="s", warranty_months=12)
    ledger.receive("PO-1", "Acme", "CHEAP", ["C1", "C2"], actor="a", cost_cents=9000)
    ledger.receive("PO-2", "Acme", "LAP", ["L1"], actor="a", cost_cents=50000)
    ledger.sell(
        "INV-1",
        "Dana",
        [
            SaleLine("CHEAP", "C1", 10000),
            SaleLine("CHEAP", "C2", 10000),
            SaleLine("LAP", "L1", 90000),
        ],
        actor="a",
    )
    ledger.warranty_claim(
        "WC-1",
        UnitRef("CHEAP", "C1"),
        [ClaimLine("screen", 2500), ClaimLine("case", 900, cause=Cause.DAMAGE)],
        actor="t",
    )
    ledger.warranty_claim("WC-2", UnitRef("LAP", "L1"), [ClaimLine("fan", 2500)], actor="t")
    rows = warranty_vs_margin(ledger).as_dicts()
    assert rows == [
        {
            "product": "CHEAP",
            "revenue_cents": 20000,
            "cost_of_sold_cents": 18000,
            "margin_cents": 2000,
            "warranty_cost_cents": 2500,
            "excess_cents": 500,
        }
    ]
