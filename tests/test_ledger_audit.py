"""Tamper evidence: the database refuses edits, and `posd audit verify` catches the rest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import build
from daemon.ledger import Ledger, SaleLine
from daemon.ledger.head import SLOT_BYTES, HeadFile, HeadRecord, head_path, read_head
from daemon.ledger.remote import head_seq, set_replication_cursor
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


# The tail: the newest events deleted, the triggers put back ---------------------


def edit(path: Path, script: str) -> None:
    """Change the ledger file behind posd's back, as someone with the file would."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(script)
    finally:
        conn.close()


def delete_newest(path: Path, count: int) -> int:
    """Delete the `count` newest events and put the trigger back; the seq left last."""
    with sqlite3.connect(path) as conn:
        last = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    edit(
        path,
        f"DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq > {last - count};"
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN"
        " SELECT RAISE(ABORT, 'the event log is append-only: write a correcting event'); END;",
    )
    return int(last - count)


def test_deleted_newest_events_are_named_by_verify(stocked: Path) -> None:
    left = delete_newest(stocked, 2)
    code, output = verify(stocked)
    assert code == 1
    assert f"ends at seq {left} but its head record says {left + 2}" in output
    assert "2 newest event(s) deleted" in output
    # Every other command refuses the shortened ledger rather than carry on from it.
    result = CliRunner().invoke(build(), ["--db", str(stocked), "search", "--serial", "LX-1"])
    assert result.exit_code == 65 and "newest event(s) deleted" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_head_record_older_than_the_ledger_is_no_alarm(stocked: Path) -> None:
    """A power cut between a commit and the head record's write leaves the record
    behind the ledger: the chain still links, so nothing is reported."""
    saved = head_path(stocked).read_bytes()
    ledger = Ledger.open(stocked)
    ledger.sell("INV-2", "Eve", [SaleLine("LAP", "LX-3", 129900)], actor="bob")
    ledger.close()
    head_path(stocked).write_bytes(saved)
    code, output = verify(stocked, "--replay")
    assert code == 0, output
    # And the ledger is usable: the next commit brings the record up to date.
    ledger = Ledger.open(stocked)
    ledger.sell("INV-3", "Eve", [SaleLine("LAP", "LX-4", 129900)], actor="bob")
    ledger.close()
    record = read_head(head_path(stocked))
    assert (
        record is not None
        and record.seq == seq_of(stocked, "kind = 'sell' AND body LIKE '%INV-3%'")[0]
    )


def test_a_torn_head_record_write_keeps_the_head_before_it(stocked: Path) -> None:
    ledger = Ledger.open(stocked)
    ledger.sell("INV-2", "Eve", [SaleLine("LAP", "LX-3", 129900)], actor="bob")
    ledger.close()
    record = read_head(head_path(stocked))
    assert record is not None
    # Spoil the slot holding the newest head, as a write cut short would.
    raw = bytearray(head_path(stocked).read_bytes())
    newest = 0 if f'"seq": {record.seq},' in raw[:SLOT_BYTES].decode() else 1
    raw[newest * SLOT_BYTES + 5] ^= 0xFF
    head_path(stocked).write_bytes(bytes(raw))
    code, output = verify(stocked)
    assert code == 0, output


def test_a_removed_or_replaced_head_record_is_reported(stocked: Path, tmp_path: Path) -> None:
    head_path(stocked).unlink()
    code, output = verify(stocked)
    assert code == 1 and "head record ledger.db.head is missing" in output
    # Another ledger's head record put in its place: the file was replaced.
    other = make_ledger(tmp_path / "other.db")
    other.close()
    head_path(stocked).write_bytes(head_path(tmp_path / "other.db").read_bytes())
    code, output = verify(stocked)
    assert code == 1 and "the ledger file was replaced" in output


def test_hq_acknowledgement_catches_a_tail_deleted_with_its_head_record(stocked: Path) -> None:
    """Whoever deletes the newest events and writes a head record to match is still
    caught by what HQ acknowledged storing."""
    ledger = Ledger.open(stocked)
    acked = set_replication_cursor(ledger, head_seq(ledger))
    ledger.close()
    left = delete_newest(stocked, 3)
    ledger = Ledger.open(stocked, check_head=False)
    head = ledger.chain_head()
    ledger.close()
    HeadFile.create(head_path(stocked), HeadRecord("T1", head.epoch, head.seq, head.hash)).close()
    code, output = verify(stocked)
    assert code == 1
    assert f"ends at seq {left} but HQ acknowledged storing seq {acked}" in output
    # And with the file's cursor lowered too, the head record still holds HQ's word.
    delete_newest_cursor = f"UPDATE replication_cursor SET acked_seq = {left}"
    edit(stocked, delete_newest_cursor)
    head_path(stocked).unlink()
    code, output = verify(stocked)
    assert code == 1 and "head record" in output


def test_removed_trigger_and_edited_event_are_both_named(stocked: Path) -> None:
    seq, event = seq_of(stocked, "kind = 'sell'")
    edit(
        stocked,
        "DROP TRIGGER events_no_update;"
        "UPDATE events SET body = replace(body, '\"Dana\"', '\"Mallory\"') WHERE kind = 'sell';",
    )
    code, output = verify(stocked, "--json")
    assert code == 1
    messages = [f["message"] for f in json.loads(output)["findings"]]
    assert "protective trigger events_no_update was removed" in messages
    edited = [f for f in json.loads(output)["findings"] if f["event"] == event]
    assert edited and f"seq {seq}" in edited[0]["message"]
    code, output = verify(stocked)
    assert "events_no_update was removed" in output and event in output


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes files for another owner")
def test_a_head_record_root_makes_belongs_to_the_ledger_owner(stocked: Path) -> None:
    """Root running a command on the service's ledger must not leave a head record
    the service cannot write (as SQLite does with the WAL)."""
    head_path(stocked).unlink()
    edit(stocked, "DELETE FROM meta WHERE key = 'head_record'")  # a ledger from before
    os.chown(stocked, 65534, 65534)
    Ledger.open(stocked).close()
    made = head_path(stocked).stat()
    assert (made.st_uid, made.st_gid) == (65534, 65534)
