"""Tamper evidence: the database refuses edits, and `posd audit verify` catches the rest."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import build
from daemon.ledger import Ledger, SaleLine
from tests.ledger_fixtures import make_ledger

SQLITE3 = shutil.which("sqlite3")
needs_sqlite3 = pytest.mark.skipif(
    SQLITE3 is None, reason="the sqlite3 tool is missing; the test command installs it"
)


RECREATE_UPDATE_TRIGGER = (
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN"
    " SELECT RAISE(ABORT, 'the event log is append-only: write a correcting event'); END;"
)


@pytest.fixture
def stocked(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    ledger = make_ledger(path)
    ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(1, 6)], actor="ann")
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-2", 129900)], actor="bob")
    ledger.close()
    return path


def verify(path: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(build(), ["--db", str(path), "audit", "verify", *extra])
    return result.exit_code, result.output


def sqlite3_cli(path: Path, script: str) -> subprocess.CompletedProcess[str]:
    assert SQLITE3 is not None
    return subprocess.run(
        [SQLITE3, str(path)], input=script, text=True, capture_output=True, check=False
    )


def seq_of(path: Path, where: str) -> tuple[int, str]:
    with sqlite3.connect(path) as conn:
        row = conn.execute(f"SELECT seq, uuid FROM events WHERE {where}").fetchone()
    return int(row[0]), str(row[1])


def test_intact_ledger_verifies(stocked: Path) -> None:
    code, output = verify(stocked, "--replay")
    assert code == 0
    assert "ledger intact" in output and "matches a replay" in output


def test_database_refuses_update_and_delete_of_events(stocked: Path) -> None:
    with sqlite3.connect(stocked) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET kind = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM events WHERE seq = 3")


@needs_sqlite3
def test_edited_event_is_named_by_verify(stocked: Path) -> None:
    seq, event = seq_of(stocked, "kind = 'sell'")
    result = sqlite3_cli(
        stocked,
        (
            "DROP TRIGGER events_no_update;"
            "UPDATE events SET body = replace(body, '\"Dana\"', '\"Mallory\"') WHERE kind = 'sell';"
            + RECREATE_UPDATE_TRIGGER
        ),
    )
    assert result.returncode == 0, result.stderr
    code, output = verify(stocked)
    assert code == 1
    assert f"seq {seq}" in output and event in output
    assert "does not match its hash" in output


@needs_sqlite3
def test_deleted_event_is_named_by_verify(stocked: Path) -> None:
    seq, _ = seq_of(stocked, "kind = 'receive' AND body LIKE '%LX-3%'")
    sqlite3_cli(
        stocked,
        f"DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = {seq};"
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN"
        " SELECT RAISE(ABORT, 'append-only'); END;",
    )
    code, output = verify(stocked, "--json")
    assert code == 1
    finding = json.loads(output)["finding"]
    assert f"seq {seq} is missing" in finding["message"]


@needs_sqlite3
def test_rehashed_forgery_still_breaks_the_chain(stocked: Path) -> None:
    """An editor who recomputes the edited event's own hash still breaks the next link."""
    seq, _ = seq_of(stocked, "kind = 'sell'")
    with sqlite3.connect(stocked) as conn:
        body = conn.execute("SELECT body FROM events WHERE seq = ?", [seq - 1]).fetchone()[0]
    forged = body.replace('"B1"', '"B9"')
    digest = hashlib.sha256(forged.encode()).hexdigest()
    sqlite3_cli(
        stocked,
        "DROP TRIGGER events_no_update;"
        f"UPDATE events SET body = '{forged}', hash = '{digest}' WHERE seq = {seq - 1};"
        + RECREATE_UPDATE_TRIGGER,
    )
    code, output = verify(stocked)
    assert code == 1
    assert f"seq {seq}: does not follow the event before it" in output


@needs_sqlite3
def test_removed_trigger_is_reported(stocked: Path) -> None:
    sqlite3_cli(stocked, "DROP TRIGGER events_no_delete;")
    code, output = verify(stocked)
    assert code == 1 and "events_no_delete was removed" in output


@needs_sqlite3
def test_edited_projection_is_caught_by_replay(stocked: Path) -> None:
    sqlite3_cli(
        stocked, "UPDATE units SET state = 'in_stock', invoice = NULL WHERE serial = 'LX-2';"
    )
    code, output = verify(stocked)
    assert code == 0  # the log itself is intact
    code, output = verify(stocked, "--replay")
    assert code == 1
    assert "LX-2" in output and "state is 'in_stock' but the log says 'sold'" in output


def test_counts_kept_in_the_same_transaction_match_a_recount(stocked: Path) -> None:
    ledger = Ledger.open(stocked)
    kept = ledger.db.execute("SELECT sum(n) FROM unit_counts WHERE state = 'sold'").fetchone()[0]
    assert kept == 1
    ledger.close()
