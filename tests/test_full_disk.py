"""A full disk: work that was committed is reported as committed (exit 0) even when a
later step (the checkpoint) fails for want of space; looking things up still works on a
full disk; a write that cannot be made says the storage is full; and once space is
freed everything goes on. Each test runs on a small tmpfs of its own, filled up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.ledger import Ledger, SaleLine
from simulators.lane import to_toml
from tests.ledger_fixtures import copy_ledger, make_ledger

POSD = str(Path(sys.executable).with_name("posd"))
pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs mounted for the test (skipped where this process may not mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill `disk` up, leaving about `leave` bytes free; the filler file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = b"\0" * 65536
    try:
        while True:
            found = os.statvfs(disk)
            room = found.f_bavail * found.f_frsize - leave
            if room <= 0:
                break
            os.write(fd, chunk[: min(len(chunk), room)])
    except OSError:
        pass  # full to the last block
    finally:
        os.close(fd)
    return filler


def posd(ledger: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [POSD, "--db", str(ledger), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ | {"POSD_ACTOR": "bob"},
    )


def test_read_only_commands_work_on_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    made = make_ledger(tmp_path / "made.db")
    made.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2"], actor="ann")
    made.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 129900)], actor="bob")
    made.close()
    ledger = copy_ledger(tmp_path / "made.db", small_disk / "ledger.db")
    filler = fill(small_disk)
    for args, says in (
        (["unit", "LX-1"], "invoice INV-1 to Dana"),
        (["search", "--serial", "LX-2"], "in_stock"),
        (["counts", "--by", "state"], "sold"),
        (["product", "list"], "LAP"),
        (["audit", "verify", "--replay"], "ledger intact"),
    ):
        done = posd(ledger, *args)
        assert done.returncode == 0, (args, done.stderr)
        assert says in done.stdout
        assert "Traceback" not in done.stderr
    # A write cannot be made, and says why, without a traceback.
    refused = posd(ledger, "sell", "LAP/LX-2", "--invoice", "INV-2", "--customer", "Eve")
    assert refused.returncode != 0
    assert "full" in refused.stderr and "Traceback" not in refused.stderr
    # Space freed: the same sale goes through, and the ledger is whole.
    filler.unlink()
    sold = posd(ledger, "sell", "LAP/LX-2", "--invoice", "INV-2", "--customer", "Eve")
    assert sold.returncode == 0, sold.stderr
    assert posd(ledger, "audit", "verify", "--replay").returncode == 0


def test_a_committed_sale_exits_0_when_the_checkpoint_after_it_fails(
    small_disk: Path, tmp_path: Path
) -> None:
    """The WAL holds a large receipt the file lacks (the process that wrote it died);
    a sale then commits in the little space left, and the checkpoint that follows
    cannot grow the file. The sale is done, so the command says so and exits 0."""
    live = make_ledger(small_disk / "live.db")
    live.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(3000)], actor="ann")
    for suffix in ("", "-wal", ".head"):
        shutil.copyfile(small_disk / f"live.db{suffix}", small_disk / f"ledger.db{suffix}")
    live.close()
    for leftover in small_disk.glob("live.db*"):
        leftover.unlink()
    ledger = small_disk / "ledger.db"
    filler = fill(small_disk, leave=700 * 1024)
    sold = posd(ledger, "sell", "LAP/LX-5", "--invoice", "INV-1", "--customer", "Bo")
    assert sold.returncode == 0, sold.stderr
    assert "INV-1: 1 line(s) sold to Bo" in sold.stdout
    assert "could not checkpoint" in sold.stderr and "the commit stands" in sold.stderr
    assert "Traceback" not in sold.stderr
    # Still full: the sale is there for anyone who looks, and nothing is damaged.
    looked = posd(ledger, "unit", "LX-5")
    assert looked.returncode == 0 and "invoice INV-1 to Bo" in looked.stdout, looked.stderr
    filler.unlink()
    verified = posd(ledger, "audit", "verify", "--replay")
    assert verified.returncode == 0, verified.stderr
    reopened = Ledger.open(ledger)
    try:
        unit = reopened.unit("LAP", "LX-5")
        assert unit is not None and unit.invoice == "INV-1"
    finally:
        reopened.close()


def test_posd_run_on_a_full_disk_says_so_and_exits_to_be_started_again(
    small_disk: Path, tmp_path: Path
) -> None:
    """The lane cannot sell on a full disk: it says so and exits 1, which systemd
    restarts (unlike a damaged ledger), so it comes back once space is freed."""
    make_ledger(tmp_path / "made.db").close()
    ledger = copy_ledger(tmp_path / "made.db", small_disk / "ledger.db")
    config = tmp_path / "posd.toml"
    config.write_text(
        to_toml(
            {
                "terminal": {"id": "T1", "branch": "B1", "store_name": "Test"},
                "ledger": {"path": str(ledger)},
                "api": {"port": 0},
            }
        )
    )
    fill(small_disk)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    run = subprocess.run(
        [POSD, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert "cannot start" in run.stderr and "is full" in run.stderr
    assert "Traceback" not in run.stderr
