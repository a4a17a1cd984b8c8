"""`posd hq` as an HQ operator uses it: status, conflicts, resolve, flag, verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from daemon.cli import build
from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.ledger import Ledger, SaleLine
from daemon.ledger.remote import apply_remote_many
from tests.ledger_fixtures import make_ledger
from tests.test_hq_ingest import batches


def hq(db: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(build(), ["hq", "--db", str(db), *args], env={"POSD_ACTOR": "olga"})
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def forked(tmp_path: Path) -> tuple[Path, Ledger, Ledger]:
    """An HQ where T1 and T2 both sold LX-1."""
    db = tmp_path / "hq.db"
    central = Central(SqliteBackend(db))
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    t1.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2"], actor="ann")
    central.ingest(batches(t1))
    for feed in central.claim_feed():
        apply_remote_many(t2, [(e.body, e.hash) for e in feed.events if e.terminal != "T2"])
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 100)], actor="bob")
    t2.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1", 100)], actor="sue")
    central.ingest(batches(t1, after=5))
    central.ingest(batches(t2))
    central.close()
    return db, t1, t2


def test_status_shows_terminals_watermarks_and_open_conflicts(
    forked: tuple[Path, Ledger, Ledger],
) -> None:
    db, t1, _ = forked
    found = json.loads(hq(db, "status", "--json").output)
    assert {s["terminal"]: s["acked"] for s in found["streams"]} == {"T1": 6, "T2": 4}
    assert [c["serial"] for c in found["conflicts"]] == ["LX-1"]
    text = hq(db, "status").output
    assert f"T1 epoch {t1.epoch}: stored up to seq 6" in text and "open conflicts: 1" in text


def test_resolve_from_the_command_line(forked: tuple[Path, Ledger, Ledger]) -> None:
    db, _, _ = forked
    [conflict] = json.loads(hq(db, "conflicts", "--json").output)["conflicts"]
    refused = hq(
        db, "resolve", "LAP", "LX-1", "--keep", "no-such-event", "--note", "x", "--json", code=1
    )
    assert "not one of the conflicting events" in json.loads(refused.output)["message"]
    done = json.loads(
        hq(
            db,
            "resolve",
            "LAP",
            "LX-1",
            "--keep",
            conflict["events"][0],
            "--note",
            "T1 sold first",
            "--json",
        ).output
    )
    assert done["state"]["invoice"] == "INV-1"
    assert hq(db, "conflicts").output.strip() == "no conflicts"
    resolved = json.loads(hq(db, "conflicts", "--all", "--json").output)["conflicts"]
    assert resolved[0]["resolution"] == done["event"] and resolved[0]["note"] == "T1 sold first"
    assert "projection matches a replay" in hq(db, "verify").output


def test_flag_stolen_and_refusals(forked: tuple[Path, Ledger, Ledger]) -> None:
    db, _, _ = forked
    out = hq(db, "flag", "LAP", "LX-2", "--flag", "stolen", "--reason", "report 4711").output
    assert "flagged stolen" in out
    again = hq(db, "flag", "LAP", "LX-2", "--flag", "stolen", "--reason", "again", "--json")
    assert "already flagged" in json.loads(again.output)["message"]
    missing = hq(db, "flag", "LAP", "LX-99", "--flag", "stolen", "--reason", "r", code=1)
    assert 'no unit LAP serial "LX-99"' in missing.output
    moved = hq(db, "move-terminal", "T2", "B7", "--json")
    assert "from branch B1 to B7" in json.loads(moved.output)["message"]


def test_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "hq.db"
    result = CliRunner().invoke(build(), ["hq", "--db", str(missing), "status"])
    assert result.exit_code == 1 and f"cannot open HQ's database ({missing})" in result.output
    both = CliRunner().invoke(build(), ["hq", "--db", "a.db", "--pg", "dbname=x", "status"])
    assert both.exit_code == 2 and "not both" in both.output
