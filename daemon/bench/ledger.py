"""Ledger figures: bulk import, passport look-up, prefix counts, durable sale commit.

Runs against a real ledger file (WAL, synchronous=FULL) in a temporary directory,
filled through the CSV import with `units` serials from three suppliers.
"""

from __future__ import annotations

import io
import random
import statistics
import tempfile
import time
from pathlib import Path

from daemon.ledger import Ledger, SaleLine
from daemon.ledger.analytics import supplier_failure
from daemon.ledger.importer import import_csv
from daemon.ledger.queries import counts, passport

PRODUCTS = (
    ("LAP-X1", "Laptop X1", "LX"),
    ("PHN-S9", "Phone S9", "PS"),
    ("DRL-18", "Drill 18V", "DR"),
)


def serial_for(index: int) -> tuple[str, str]:
    """(product code, serial) of the index-th bench unit: realistic supplier ranges."""
    code, _, prefix = PRODUCTS[index % len(PRODUCTS)]
    return code, f"{prefix}{index // len(PRODUCTS) % 97:02d}-{index:09d}"


def build_csv(units: int, start: int = 0) -> str:
    rows = ["serial,product,po,supplier,branch,cost"]
    for i in range(start, start + units):
        code, serial = serial_for(i)
        rows.append(f"{serial},{code},PO-{i // 5000},Supplier {i % 3},B1,{100 + i % 900}.00")
    return "\n".join(rows) + "\n"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def fill(path: Path, units: int) -> tuple[Ledger, float]:
    """A ledger with `units` units imported; returns it and the import rate (units/s)."""
    ledger = Ledger.create(path, terminal="BENCH", branch="B1")
    for code, name, _ in PRODUCTS:
        ledger.define_product(code, name, actor="bench", warranty_months=24)
    text = build_csv(units)
    started = time.perf_counter()
    import_csv(ledger, io.StringIO(text), actor="bench")
    return ledger, units / (time.perf_counter() - started)


def run(units: int = 1_000_000, workdir: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        ledger, rate = fill(Path(tmp) / "bench.db", units)
        try:
            return {"import_serials_per_s": round(rate), **measure(ledger, units)}
        finally:
            ledger.close()


def measure(ledger: Ledger, units: int) -> dict[str, float]:
    rng = random.Random(7)
    lookups = []
    for _ in range(2000):
        _, serial = serial_for(rng.randrange(units))
        started = time.perf_counter()
        found = ledger.find(serial)
        passport(ledger, found[0])
        lookups.append((time.perf_counter() - started) * 1000)
    prefix_runs = []
    for prefix in ("LX", "PS0", "DR1", "L"):
        started = time.perf_counter()
        counts(ledger, by=("prefix", "state"), prefix=prefix)
        prefix_runs.append((time.perf_counter() - started) * 1000)
    all_prefixes = time.perf_counter()
    counts(ledger, by=("prefix", "state"))
    all_prefixes_ms = (time.perf_counter() - all_prefixes) * 1000
    analytics_started = time.perf_counter()
    supplier_failure(ledger)
    analytics_ms = (time.perf_counter() - analytics_started) * 1000
    commits = []
    picked = rng.sample(range(units), min(300, units))
    ledger.checkpoint()
    for n, index in enumerate(picked):
        if n % 50 == 49:
            ledger.checkpoint()  # as the daemon does between customers, outside the timing
        code, serial = serial_for(index)
        started = time.perf_counter()
        ledger.sell(
            f"BENCH-INV-{n}", "Bench Customer", [SaleLine(code, serial, 1000)], actor="bench"
        )
        commits.append((time.perf_counter() - started) * 1000)
    return {
        "units": units,
        "lookup_p99_ms": round(percentile(lookups, 0.99), 3),
        "lookup_median_ms": round(statistics.median(lookups), 3),
        "prefix_counts_ms": round(max(prefix_runs), 3),
        "prefix_counts_all_ms": round(all_prefixes_ms, 3),
        "terminal_supplier_failure_ms": round(analytics_ms, 3),
        "sale_commit_p99_ms": round(percentile(commits, 0.99), 3),
        "sale_commit_median_ms": round(statistics.median(commits), 3),
    }
