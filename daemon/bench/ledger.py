"""Ledger figures: bulk import, passport look-up, prefix counts, durable sale commit.

Runs against a real ledger file (WAL, synchronous=FULL) in a temporary directory,
filled through the CSV import with `units` serials from three suppliers. Each main
figure has its floor (`daemon.bench.floors`) measured in the same run, interleaved,
and a ratio of medians:

- `import_ratio` (goal <= 1.3): the import's rate against `ImportFloor` storing the
  same rows in a second ledger file (same schema, indexes, page cache; no JSON
  encoding, no hash chain), each of `IMPORT_ROUNDS` rounds posd then the floor.
- `lookup_ratio` (goal <= 5): a passport look-up (`find` + `passport`) against the
  bare indexed select of the serial key; `lookup_sql_median_ms` is the passport's own
  SQL with rows left as tuples.
- `sale_commit_ratio` (goal <= 2): a one-line sale after the import against one
  row of the sale event's size inserted and committed at `synchronous=FULL`, in
  blocks of `SALE_BLOCK` each.
- `ledger_bytes_per_unit` (goal <= 800): the ledger file and its WAL after the run
  and a checkpoint, per unit.
"""

from __future__ import annotations

import io
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from daemon.bench.floors import ImportFloor, SaleFloor, bare_select, passport_rows
from daemon.ledger import Ledger, SaleLine
from daemon.ledger.analytics import supplier_failure
from daemon.ledger.importer import import_csv
from daemon.ledger.queries import counts, passport
from daemon.rules.serials import serial_key

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


IMPORT_ROUNDS = 4
SALE_BLOCK = 10  # sales, then as many floor commits, in turn


def fill(path: Path, units: int, floor: Path | None = None) -> tuple[Ledger, dict[str, float]]:
    """A ledger with `units` units imported, in `IMPORT_ROUNDS` imports of equal size.

    With `floor`, a second ledger file there takes the same rows through `ImportFloor`
    after each of posd's imports (posd, floor, posd, floor…); the figures then say
    both rates, each the median of its rounds."""
    ledger = _ledger(path)
    floor_store = floor_ledger = None
    if floor is not None:
        floor_ledger = _ledger(floor)
        # The same page cache as posd's connection has.
        cache = ledger.db.conn.execute("PRAGMA cache_size").fetchone()[0]
        floor_ledger.db.conn.execute(f"PRAGMA cache_size = {int(cache)}")
        products = {product.code: product.id for product in floor_ledger.products()}
    rounds = IMPORT_ROUNDS if units >= IMPORT_ROUNDS * 1000 else 1
    size = -(-units // rounds)
    posd_rates: list[float] = []
    floor_rates: list[float] = []
    total_s = 0.0
    for start in range(0, units, size):
        count = min(size, units - start)
        text = build_csv(count, start)
        started = time.perf_counter()
        import_csv(ledger, io.StringIO(text), actor="bench")
        took = time.perf_counter() - started
        total_s += took
        posd_rates.append(count / took)
        if floor_ledger is not None:
            if floor_store is None:
                sample, serial = ledger.db.conn.execute(
                    "SELECT e.body, u.serial FROM events e JOIN units u ON u.id = e.unit_id"
                    " WHERE e.kind = 'receive' LIMIT 1"
                ).fetchone()
                floor_store = ImportFloor(floor_ledger.db.conn, sample, serial)
            started = time.perf_counter()
            floor_store.store(text, products)
            floor_rates.append(count / (time.perf_counter() - started))
    figures: dict[str, float] = {"import_serials_per_s": round(units / total_s)}
    if floor_ledger is not None:
        floor_ledger.close()
        posd_rate, floor_rate = statistics.median(posd_rates), statistics.median(floor_rates)
        figures.update(
            import_median_serials_per_s=round(posd_rate),
            import_floor_serials_per_s=round(floor_rate),
            import_ratio=round(floor_rate / posd_rate, 2),
        )
    return ledger, figures


def _ledger(path: Path) -> Ledger:
    ledger = Ledger.create(path, terminal="BENCH", branch="B1")
    for code, name, _ in PRODUCTS:
        ledger.define_product(code, name, actor="bench", warranty_months=24)
    return ledger


def run(units: int = 1_000_000, workdir: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "bench.db"
        ledger, figures = fill(path, units, floor=Path(tmp) / "floor.db")
        try:
            figures.update(measure(ledger, units))
        finally:
            ledger.close()
        figures["ledger_bytes_per_unit"] = round(_ledger_bytes(path) / units)
        return figures


def _ledger_bytes(path: Path) -> int:
    """The ledger's file and its WAL, after `close` has checkpointed."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _interleaved(
    posd: Callable[[int], object], floor: Callable[[int], object], n: int, block: int = 1
) -> tuple[list[float], list[float]]:
    """`n` timings (ms) of each, taken in turn, `block` at a time: posd, floor, posd,
    floor… A call that returns a float has timed itself (leaving out what it does
    between customers). Blocks keep one side's disk writes from landing in the other's
    fsyncs more than at their edges."""
    posd_ms: list[float] = []
    floor_ms: list[float] = []
    for first in range(0, n, block):
        for work, samples in ((posd, posd_ms), (floor, floor_ms)):
            for i in range(first, min(n, first + block)):
                started = time.perf_counter_ns()
                timed = work(i)
                took = (time.perf_counter_ns() - started) / 1e6
                samples.append(timed if isinstance(timed, float) else took)
    return posd_ms, floor_ms


def measure(ledger: Ledger, units: int) -> dict[str, float]:
    rng = random.Random(7)
    conn = ledger.db.conn
    serials = [serial_for(rng.randrange(units))[1] for _ in range(2000)]
    keys = [serial_key(serial) for serial in serials]

    def look_up(i: int) -> None:
        found = ledger.find(serials[i])
        passport(ledger, found[0])

    lookups, bare = _interleaved(look_up, lambda i: bare_select(conn, keys[i]), len(serials))
    _, rows = _interleaved(look_up, lambda i: passport_rows(conn, keys[i]), len(serials))
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
    picked = rng.sample(range(units), min(300, units))
    ledger.checkpoint()

    def sell(n: int) -> float:
        if n % 50 == 49:
            ledger.checkpoint()  # as the daemon does between customers, outside the timing
        code, serial = serial_for(picked[n])
        started = time.perf_counter_ns()
        ledger.sell(
            f"BENCH-INV-{n}", "Bench Customer", [SaleLine(code, serial, 1000)], actor="bench"
        )
        return (time.perf_counter_ns() - started) / 1e6

    sell(0)
    (body_bytes,) = conn.execute(
        "SELECT length(body) FROM events ORDER BY id DESC LIMIT 1"
    ).fetchone()
    floor = SaleFloor(conn, int(body_bytes))
    commits, floor_commits = _interleaved(
        lambda n: sell(n + 1), lambda _: floor.commit_one(), len(picked) - 1, block=SALE_BLOCK
    )
    sale, sale_floor = statistics.median(commits), statistics.median(floor_commits)
    lookup, lookup_floor = statistics.median(lookups), statistics.median(bare)
    return {
        "units": units,
        "lookup_p99_ms": round(percentile(lookups, 0.99), 3),
        "lookup_median_ms": round(lookup, 3),
        "lookup_floor_median_ms": round(lookup_floor, 4),
        "lookup_sql_median_ms": round(statistics.median(rows), 4),
        "lookup_ratio": round(lookup / lookup_floor, 2),
        "prefix_counts_ms": round(max(prefix_runs), 3),
        "prefix_counts_all_ms": round(all_prefixes_ms, 3),
        "terminal_supplier_failure_ms": round(analytics_ms, 3),
        "sale_commit_p99_ms": round(percentile(commits, 0.99), 3),
        "sale_commit_median_ms": round(sale, 3),
        "sale_commit_floor_median_ms": round(sale_floor, 3),
        "sale_commit_ratio": round(sale / sale_floor, 2),
    }
