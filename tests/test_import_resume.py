"""An import is written in short transactions; interrupted, it is finished by running the
same file again (resumable), and it says so. Checking stays all-or-nothing."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.ledger import Ledger, Refusal
from daemon.ledger import importer as importer_module
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.importer import ImportInterrupted, import_csv
from tests.ledger_fixtures import make_ledger

HEADER = "serial,product,po,supplier,branch,cost"


def rows(count: int, start: int = 0) -> str:
    lines = [f"R-{n:05d},LAP,PO-R,Acme,B1,10.00" for n in range(start, start + count)]
    return "\n".join([HEADER, *lines]) + "\n"


def in_stock(ledger: Ledger) -> int:
    return int(ledger.db.execute("SELECT count(*) FROM units WHERE po = 'PO-R'").fetchone()[0])


def test_an_import_commits_in_several_short_transactions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = make_ledger()
    commits: list[int] = []
    write_chunk = importer_module._write_chunk

    def counted(*args: object, **kw: object) -> int:
        done = write_chunk(*args, **kw)  # type: ignore[arg-type]
        commits.append(in_stock(ledger))  # visible to others once each one commits
        return done

    monkeypatch.setattr(importer_module, "_write_chunk", counted)
    monkeypatch.setattr(importer_module, "CHUNK_S", 0.0)  # one batch per transaction
    monkeypatch.setattr(importer_module, "_BATCH", 100)
    report = import_csv(ledger, io.StringIO(rows(1000)), actor="ann")
    assert report.units == 1000
    assert commits == list(range(100, 1001, 100))
    assert verify_chain(ledger).ok and verify_projection(ledger) is None


def test_an_interrupted_import_is_finished_by_running_the_same_file_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ledger = make_ledger()
    write_chunk = importer_module._write_chunk
    calls = []

    def disk_full_on_the_third(*args: object, **kw: object) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return write_chunk(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(importer_module, "CHUNK_S", 0.0)
    monkeypatch.setattr(importer_module, "_BATCH", 100)
    monkeypatch.setattr(importer_module, "_write_chunk", disk_full_on_the_third)
    with pytest.raises(ImportInterrupted) as stopped:
        import_csv(ledger, io.StringIO(rows(500)), actor="ann")
    message = str(stopped.value)
    assert "after 200 of 500 rows" in message and "disk is full" in message
    assert "importing the same file again" in message
    assert in_stock(ledger) == 200
    assert verify_chain(ledger).ok and verify_projection(ledger) is None

    monkeypatch.setattr(importer_module, "_write_chunk", write_chunk)
    report = import_csv(ledger, io.StringIO(rows(500)), actor="ann")
    assert (report.rows, report.units, report.already) == (500, 300, 200)
    assert in_stock(ledger) == 500
    again = import_csv(ledger, io.StringIO(rows(500)), actor="ann")  # nothing twice
    assert (again.units, again.already) == (0, 500)
    assert in_stock(ledger) == 500
    assert verify_chain(ledger).ok and verify_projection(ledger) is None


def test_a_row_that_differs_from_the_unit_in_stock_is_still_refused() -> None:
    ledger = make_ledger()
    import_csv(ledger, io.StringIO(rows(3)), actor="ann")
    other_cost = rows(3).replace("R-00001,LAP,PO-R,Acme,B1,10.00", "R-00001,LAP,PO-R,Acme,B1,11")
    with pytest.raises(Refusal) as refused:
        import_csv(ledger, io.StringIO(other_cost), actor="ann")
    assert [(p.line, p.code) for p in refused.value.problems] == [(3, "already_active")]


_POSD = "import sys; from daemon.cli import main; sys.argv[0] = 'posd'; main()"


@pytest.mark.slow
def test_an_import_killed_while_it_writes_is_finished_by_running_it_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    make_ledger(path).close()
    big = tmp_path / "big.csv"
    big.write_text(rows(60_000))

    def posd_import() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", _POSD, "--db", str(path), "import", str(big), "--json"]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    first = posd_import()
    deadline = time.monotonic() + 120
    while _written(path) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()  # SIGKILL in the middle of the writing
    first.wait()
    written = _written(path)
    assert 0 < written < 60_000, written

    second = posd_import()
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    report = json.loads(output)
    assert (report["units"], report["already"]) == (60_000 - written, written)
    ledger = Ledger.open(path)
    try:
        assert in_stock(ledger) == 60_000
        assert verify_chain(ledger).ok and verify_projection(ledger) is None
    finally:
        ledger.close()


def _written(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT count(*) FROM units WHERE po = 'PO-R'").fetchone()[0])
