"""A real power cut under a running lane: every sale answered complete is whole after it.

SIGKILL (tests/test_lane_faults.py) keeps the kernel's page cache, so it never tests
whether a commit reached the disk. Here the ledger is on LazyFS, whose own cache drops
every write not yet fsync'd (tests/lazyfs.py, tests/power_cut.py): `posd run` sells
laptops through the kiosk API, each answer `sale_complete`, and the power goes at
different moments of the work the lane does after a sale (its checkpoint of the WAL into
the ledger file, the receipt, the journal). Afterwards `posd audit verify --replay` is
clean and every unit answered sold is sold, by its event and by its row.

The cut stops the daemon before the cache is dropped. Dropping it under a running
daemon is no power cut (nothing runs after one): the daemon goes on, its checkpoint's
fsync of the ledger file "succeeds" with the pages it wrote before the drop gone, and
it then restarts the WAL that still held them. That tears the ledger (an event in the
log, its unit still in stock, its indexes short of the event), whatever posd's pragmas.

LazyFS is built once per machine (about 90 s, cached under /var/cache/posd-lazyfs);
the tests are skipped only where FUSE is absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.ledger import Ledger
from daemon.ledger.lane_log import LaneLog
from simulators.lane import PosdProcess, SimulatedLane
from tests.lazyfs import fuse_missing, lazyfs_binary
from tests.power_cut import (
    PRODUCT,
    after_cut,
    check,
    cut,
    free_port,
    kept,
    power_cut,
    prepare,
    sell,
)

pytestmark = [pytest.mark.slow, pytest.mark.powercut]

UNITS = 6


@pytest.fixture(scope="module")
def lazyfs() -> Path:
    missing = fuse_missing()
    if missing is not None:
        pytest.skip(missing)
    return lazyfs_binary()


@pytest.mark.parametrize(
    "delay_s", [0.0, 0.005, 0.02, 0.1], ids=["at the answer", "5 ms", "20 ms", "100 ms"]
)
def test_every_sale_answered_complete_is_whole_after_a_power_cut(
    tmp_path: Path, template_dir: Path, lazyfs: Path, delay_s: float
) -> None:
    found = power_cut(tmp_path, template_dir, lazyfs, units=UNITS, delay_s=delay_s)
    assert len(found.answered) == UNITS, found.problems
    assert found.whole, found.problems
    assert found.audit.startswith("status 0:") and "matches a replay" in found.audit, found.audit


def test_the_lane_comes_back_after_a_power_cut_and_sells_on(
    tmp_path: Path, template_dir: Path, lazyfs: Path
) -> None:
    found = power_cut(tmp_path, template_dir, lazyfs, units=UNITS)
    assert found.whole, found.problems
    sim = SimulatedLane(tmp_path / "again", api_port=free_port())
    sim.ledger_path = tmp_path / "kept" / "ledger.db"  # the disk as the cut left it
    try:
        posd = PosdProcess(sim.write_config(tmp_path / "again.toml")).start(timeout_s=120)
        try:
            assert sell(sim.api_port, "LX-0001") == "sale_complete"
        finally:
            output = posd.stop()
    finally:
        sim.close()
    assert posd.returncode == 0, output
    with Ledger.open(sim.ledger_path) as ledger:
        unit = ledger.unit(PRODUCT, "LX-0001")
    # The next invoice number: none is used twice, whatever the journal lost.
    assert unit is not None and unit.invoice == f"T-001-{UNITS + 1:06d}"
    assert check(sim.ledger_path, [*found.answered, "LX-0001"]) == []


def test_a_power_cut_inside_the_checkpoint_after_the_last_sale_loses_nothing(
    tmp_path: Path, template_dir: Path, lazyfs: Path
) -> None:
    # The moment that tore the ledger when the daemon outlived the cut: the lane has
    # copied the last sale's pages from the WAL into the ledger file, and is about to
    # fsync it. Here the power goes right then: LazyFS itself dies, and its cache
    # with it, so nothing the daemon does afterwards reaches the disk.
    ledger = tmp_path / "lazyfs" / "disk" / "ledger.db"
    cut = (
        f'[[injection]]\ntype="clear-cache"\nfrom="{ledger}"\nop="fsync"\ntiming="before"\n'
        f"occurrence={UNITS - 1}\ncrash=true\n"  # one checkpoint, one fsync, per sale
    )
    found = power_cut(tmp_path, template_dir, lazyfs, units=UNITS, delay_s=0.5, settings=cut)
    fired = "Triggered fault condition (op=fsync,timing=before)" in found.lazyfs_log
    assert fired, f"LazyFS never reached the last checkpoint's fsync: {found.lazyfs_log[-2000:]}"
    assert len(found.answered) == UNITS, found.problems
    assert found.whole, found.problems
    assert found.audit.startswith("status 0:") and "matches a replay" in found.audit, found.audit


# A journal entry (committed without an fsync of its own), then a sale (with one), then
# the writer waits for the cut, its connection open: nothing is closed or checkpointed.
_WRITER = """
import sys
from daemon.ledger import Ledger, SaleLine
from daemon.ledger.lane_log import Entry, LaneLog
ledger = Ledger.open(sys.argv[1])
journal = LaneLog(ledger)
journal.append(Entry("2026-01-01T00:00:00Z", "scan", "test", "PC-0001", "basket",
                     invoice="INV-CUT", basket_open="INV-CUT"))
ledger.sell("INV-CUT", "Dana Smith", [SaleLine("LAP-X1", "PC-0001", 129900)], actor="mia")
print("sold", flush=True)
sys.stdin.read()
"""


def test_a_commit_is_on_the_disk_when_the_call_returns(
    tmp_path: Path, template_dir: Path, lazyfs: Path
) -> None:
    # The ledger's promise (daemon/ledger/store.py), with no checkpoint after the
    # commit to make up for a missing fsync; and the journal's (lane_log.py): an entry
    # is durable from the next durable commit on.
    fs = prepare(tmp_path, template_dir, lazyfs, 1)
    with fs:
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(fs.mnt / "ledger.db")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout is not None
            assert writer.stdout.readline() == "sold\n"
            cut(fs, writer.pid)
        finally:
            writer.kill()
            writer.communicate()
        after_cut(fs)
    ledger = kept(fs, tmp_path / "kept")
    assert check(ledger, ["PC-0001"]) == []
    with Ledger.open(ledger) as kept_ledger:
        entries = LaneLog(kept_ledger).entries()
        unit = kept_ledger.unit(PRODUCT, "PC-0001")
    assert [e["input"] for e in entries if e["invoice"] == "INV-CUT"] == ["PC-0001"]
    assert unit is not None and unit.invoice == "INV-CUT"
