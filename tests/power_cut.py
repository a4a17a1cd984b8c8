"""A power cut under a running lane, on LazyFS (see tests/lazyfs.py).

`posd run` sells units through the kiosk API with its ledger on LazyFS; every answer
is `sale_complete`. Then the power goes:

1. SIGSTOP: the daemon runs no further instruction, as when the CPU loses power;
2. `lazyfs::clear-cache`: every write not yet fsync'd is gone;
3. SIGKILL, then the cache is cleared once more: a write the kernel had already handed
   to LazyFS when the daemon stopped may land after step 2, and it never reached the
   disk either.

Clearing the cache while the daemon still runs is no power cut: the daemon goes on
writing and fsync'ing on top of a disk that silently lost data it had been told was
written (a checkpoint's fsync of the ledger file then "succeeds" with half its pages
gone, and the WAL that still had them is restarted). `order="running"` does that, to
show the difference.

What the disk kept is then checked on a copy: the chain, the projection against a
replay of the log, and every unit answered sold is sold, by its event and its row.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.ledger import Ledger
from daemon.ledger.audit import verify_chain, verify_projection
from simulators.lane import PosdProcess, SimulatedLane
from tests.lane_sim import stocked_copy
from tests.lazyfs import LazyFS

Order = Literal["faithful", "running"]
PRODUCT = "LAP-X1"


@dataclass
class Round:
    """What one power cut left behind."""

    answered: list[str] = field(default_factory=list)  # serials answered sale_complete
    problems: list[str] = field(default_factory=list)
    audit: str = ""
    lazyfs_log: str = field(default="", repr=False)

    @property
    def whole(self) -> bool:
        return not self.problems


def serials(count: int) -> list[str]:
    return [f"PC-{n:04d}" for n in range(1, count + 1)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(port: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer


def sell(port: int, serial: str) -> str:
    """Scan `serial` at the kiosk and pay by card; the verdict's code."""
    scanned = _post(port, "/api/scan", {"text": serial})
    if scanned["verdict"]["code"] != "unit_added":
        return str(scanned["verdict"]["code"])
    paid = _post(port, "/api/commands", {"command": "tender", "argument": "CARD"})
    return str(paid["verdict"]["code"])


def prepare(folder: Path, template_dir: Path, binary: Path, units: int, **lazyfs: Any) -> LazyFS:
    """LazyFS (not yet mounted) over a disk holding the stocked ledger with `units` more
    laptops in stock (`serials(units)`). `lazyfs`: options of `LazyFS`."""
    fs = LazyFS(binary, folder / "lazyfs", **lazyfs)
    fs.disk.mkdir(parents=True, exist_ok=True)
    stocked_copy(fs.disk, template_dir)
    with Ledger.open(fs.disk / "ledger.db") as ledger:
        ledger.receive("PO-CUT", "Acme", PRODUCT, serials(units), actor="ann")
    return fs


def cut(fs: LazyFS, pid: int, order: Order = "faithful") -> None:
    """The power goes: process `pid` stops, then unsynced writes are dropped. The
    caller kills `pid` next, then calls `after_cut`."""
    if order == "faithful":
        os.kill(pid, signal.SIGSTOP)
    if fs.running:  # (a crash injected into LazyFS may have cut it already)
        fs.clear_cache()


def after_cut(fs: LazyFS) -> None:
    """Once the process is dead: a write the kernel had handed to LazyFS before the
    process stopped may have landed after the cut; it never reached the disk either."""
    if fs.running:
        fs.clear_cache()


def kept(fs: LazyFS, folder: Path) -> Path:
    """A copy of the ledger as the disk kept it (opening it recovers the WAL)."""
    folder.mkdir()
    for path in fs.disk.iterdir():
        if path.is_file():  # the ledger, its WAL and head record (not python-escpos's folder)
            shutil.copy2(path, folder / path.name)
    return folder / "ledger.db"


def power_cut(
    folder: Path,
    template_dir: Path,
    binary: Path,
    *,
    units: int,
    order: Order = "faithful",
    delay_s: float = 0.0,
    **lazyfs: Any,
) -> Round:
    """Sell `units` laptops on a lane whose ledger is on LazyFS, cut the power
    `delay_s` after the last answer (while the lane is still busy with the sale: its
    checkpoint, the receipt, the journal), and check what the disk kept. `lazyfs`:
    options of `LazyFS`."""
    found = Round()
    fs = prepare(folder, template_dir, binary, units, **lazyfs)
    sim = SimulatedLane(folder / "lane", api_port=free_port())
    sim.ledger_path = fs.mnt / "ledger.db"
    try:
        with fs:
            posd = PosdProcess(sim.write_config(folder / "posd.toml")).start(timeout_s=120)
            try:
                for serial in serials(units):
                    try:
                        code = sell(sim.api_port, serial)
                    except OSError as error:  # no answer is no sale_complete
                        code = f"no answer ({error})"
                    if code != "sale_complete":
                        found.problems.append(f"{serial}: the lane answered {code}")
                        break
                    found.answered.append(serial)
                assert posd.process is not None
                time.sleep(delay_s)
                cut(fs, posd.process.pid, order)
            finally:
                posd.kill()
            after_cut(fs)
    finally:
        sim.close()
    found.lazyfs_log = fs.output
    ledger = kept(fs, folder / "kept")
    found.problems += check(ledger, found.answered)
    found.audit = audit(ledger)
    return found


def check(path: Path, sold: list[str]) -> list[str]:
    """Whatever is not whole in the ledger at `path`, where `sold` were answered sold."""
    problems: list[str] = []
    with Ledger.open(path) as ledger:
        damage = [row[0] for row in ledger.db.execute("PRAGMA integrity_check")]
        if damage != ["ok"]:
            problems.append(f"file: {'; '.join(damage[:4])}")
        chain = verify_chain(ledger)
        if not chain.ok:
            problems.append(f"chain: {chain}")
        finding = verify_projection(ledger)
        if finding is not None:
            problems.append(f"projection: {finding.message}")
        for serial in sold:
            unit = ledger.unit(PRODUCT, serial)
            state = unit.state.value if unit else "missing"
            if state != "sold":
                problems.append(f"{serial}: answered sold, its row says {state}")
            events = ledger.db.execute(
                "SELECT count(*) FROM events e JOIN units u ON u.id = e.unit_id"
                " WHERE u.serial = ? AND e.kind = 'sell'",
                [serial],
            ).fetchone()[0]
            if events != 1:
                problems.append(f"{serial}: answered sold, {events} sale events in the log")
    return problems


def audit(path: Path) -> str:
    """What `posd audit verify --replay` says of the ledger at `path`."""
    posd = Path(sys.executable).with_name("posd")
    done = subprocess.run(
        [str(posd), "--db", str(path), "audit", "verify", "--replay"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"status {done.returncode}: {done.stdout.strip()} {done.stderr.strip()}".strip()
