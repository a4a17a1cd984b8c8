"""A sale made at the lane moves the chain head kept outside the ledger, so deleting
that sale afterwards (triggers put back) is caught."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from daemon.cli import build
from daemon.ledger.head import head_path, read_head
from simulators.lane import SimulatedLane
from tests.lane_sim import run_lane


def test_a_lane_sale_moves_the_head_record_and_deleting_it_is_caught(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> Path:
        await sim.scan("LX-0001")
        event = await sim.command("TENDER", "CARD")
        assert event["verdict"]["code"] == "sale_complete"
        await sim.settled()
        return sim.folder / "ledger.db"

    ledger = run_lane(tmp_path, template_dir, play)
    with sqlite3.connect(ledger) as conn:
        last = conn.execute("SELECT max(seq) FROM events WHERE kind = 'sell'").fetchone()[0]
    conn.close()
    record = read_head(head_path(ledger))
    assert record is not None and record.seq == last
    conn = sqlite3.connect(ledger)
    conn.executescript(
        f"DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq >= {last};"
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN"
        " SELECT RAISE(ABORT, 'append-only'); END;"
    )
    conn.close()
    result = CliRunner().invoke(build(), ["--db", str(ledger), "audit", "verify"])
    assert result.exit_code == 1
    assert f"ends at seq {last - 1} but its head record says {last}" in result.output
