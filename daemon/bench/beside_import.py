"""Sales at a lane while `posd import` writes a large file into the same ledger.

A lane (`posd run`'s loop, in this process, no devices) sells one plain item per sale
(scan, then TENDER: a journal entry and a durable sale commit) while `posd import` of
`rows` serials runs in its own process. Figures:

- `sale_alone_p99_ms`: the floor, the same sales with no import running (same run);
- `sale_beside_import_p99_ms`, `sale_beside_import_worst_ms`: sales that began and
  ended while the import was writing; the worst is bounded by the lane's wait for the
  ledger (`daemon.lane.ledger.BUSY_WAIT_S` per input, two inputs per sale) and by the
  import's transaction length (`daemon.ledger.importer.CHUNK_S`);
- `sales_beside_import`, `sales_refused_busy` (0 unless a sale waited past the bound),
  `import_beside_lane_s` (how long the import took with the lane selling beside it).
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from daemon.bench.ledger import percentile
from daemon.config.model import parse_config
from daemon.drivers.scanner import Scan
from daemon.lane.run import Daemon, start
from daemon.ledger import Ledger
from daemon.rules.lane.types import Command, CommandName

TERMINAL, BRANCH = "BENCH", "B1"
ITEM = "BENCH-ITEM"  # a plain item: every sale sells one
ALONE = 100  # sales for the floor
_POSD = "import sys; from daemon.cli import main; sys.argv[0] = 'posd'; main()"


def run(rows: int = 200_000, workdir: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        return asyncio.run(_measure(Path(tmp), rows))


async def _measure(folder: Path, rows: int) -> dict[str, float]:
    path = folder / "bench.db"
    ledger = Ledger.create(path, terminal=TERMINAL, branch=BRANCH)
    ledger.define_product("LAP-X1", "Laptop X1", actor="bench")
    ledger.define_product(ITEM, "Bench item", actor="bench", serial_tracked=False, price_cents=100)
    ledger.close()
    big = folder / "big.csv"
    with big.open("w") as out:
        out.write("serial,product,po,supplier,branch,cost\n")
        for n in range(rows):
            out.write(f"IMP-{n:08d},LAP-X1,PO-BIG,Bench supplier,{BRANCH},10.00\n")
    config = parse_config(
        {
            "terminal": {"id": TERMINAL, "branch": BRANCH},
            "ledger": {"path": str(path)},
            "api": {"port": 0},
        }
    )
    daemon = await start(config)
    try:
        alone = [await _sale(daemon) for _ in range(ALONE)]
        importer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _POSD,
            "--db",
            str(path),
            "import",
            str(big),
            "--json",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        started = time.monotonic()
        finished = asyncio.ensure_future(importer.wait())
        beside: list[float] = []
        busy = 0
        while not finished.done():
            before = _imported(path)
            took = await _sale(daemon)
            if took < 0:
                busy += 1
            elif before > 0 and _imported(path) < rows:
                beside.append(took)
        import_s = time.monotonic() - started
    finally:
        await daemon.stop()
    return {
        "sale_alone_p99_ms": round(percentile(alone, 0.99), 2),
        "sale_beside_import_p99_ms": round(percentile(beside, 0.99), 2) if beside else -1,
        "sale_beside_import_worst_ms": round(max(beside), 2) if beside else -1,
        "sales_beside_import": len(beside),
        "sales_refused_busy": busy,
        "import_beside_lane_s": round(import_s, 2),
        "import_beside_lane_rows": rows,
    }


async def _sale(daemon: Daemon) -> float:
    """One sale of one item, in ms; -1 when the lane answered "busy"."""
    lane = daemon.lane
    started = time.perf_counter()
    scanned = await lane.ask(Scan(ITEM, None, "bench", time.monotonic()))
    paid = await lane.ask(Command(CommandName.TENDER, "CARD"))
    took = (time.perf_counter() - started) * 1000
    codes = (scanned["verdict"] or {}).get("code"), (paid["verdict"] or {}).get("code")
    if "ledger_busy" in codes:
        if lane.state.basket is not None:
            await lane.ask(Command(CommandName.CANCEL))
        return -1
    return took


def _imported(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM units WHERE po = 'PO-BIG'").fetchone()[0])
