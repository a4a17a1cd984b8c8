"""Foreign events in a terminal's ledger: stored once, verified, forks flagged, flags merged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.queries import passport
from daemon.ledger.remote import (
    RemoteEventError,
    apply_remote,
    apply_remote_many,
    head_seq,
    outbox,
    replication_cursor,
    set_replication_cursor,
)
from daemon.rules.units import Flag, State
from tests.ledger_fixtures import make_ledger


def events_of(ledger: Ledger, after: int = 0) -> list[tuple[str, str]]:
    return [(text, digest) for _, text, digest in outbox(ledger, after, 100_000)]


def flags(ledger: Ledger, serial: str) -> set[str]:
    unit = ledger.find(serial)[0]
    return {f.value for f in unit.flags}


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Ledger, Ledger]:
    """Two terminals of branch B1; T2 has T1's receipt of four laptops."""
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    t1.receive("PO-1", "Acme", "LAP", ["LX-1", "LX-2", "LX-3", "LX-4"], actor="ann")
    apply_remote_many(t2, events_of(t1))
    return t1, t2


def test_foreign_events_are_stored_once_and_applied(pair: tuple[Ledger, Ledger]) -> None:
    t1, t2 = pair
    assert t2.unit("LAP", "LX-1") is not None
    before = t2.db.execute("SELECT count(*) FROM events").fetchone()[0]
    again = apply_remote_many(t2, events_of(t1))
    assert not any(a.stored for a in again)
    assert t2.db.execute("SELECT count(*) FROM events").fetchone()[0] == before
    assert verify_chain(t2).ok and verify_projection(t2) is None


def test_changed_event_text_is_refused(pair: tuple[Ledger, Ledger]) -> None:
    t1, t2 = pair
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 100)], actor="bob")
    text, digest = events_of(t1)[-1]
    with pytest.raises(RemoteEventError, match="does not match its text"):
        apply_remote(t2, text.replace("Dana", "Mallory"), digest)
    assert t2.unit("LAP", "LX-1").state.value == "in_stock"  # type: ignore[union-attr]


def test_a_different_event_under_a_stored_number_is_refused(
    tmp_path: Path, pair: tuple[Ledger, Ledger]
) -> None:
    t1, t2 = pair
    # A terminal whose ledger was rebuilt with the same identity and epoch.
    Ledger.create(tmp_path / "forged.db", terminal="T1", branch="B1").db.execute(
        "UPDATE meta SET value = ? WHERE key = 'epoch'", [t1.epoch]
    )
    # (Its head record still names the epoch it was made with: posd would refuse it.)
    forged = Ledger.open(tmp_path / "forged.db", check_head=False)
    forged.define_product("LAP", "Laptop X1 (forged)", actor="mallory")
    text, digest = events_of(forged)[0]
    with pytest.raises(RemoteEventError, match="differs from the stored event"):
        apply_remote(t2, text, digest)


def test_foreign_streams_may_have_gaps_but_own_stream_may_not(
    tmp_path: Path, pair: tuple[Ledger, Ledger]
) -> None:
    t1, t2 = pair
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 100)], actor="bob")
    t1.sell("INV-2", "Eve", [SaleLine("LAP", "LX-2", 100)], actor="bob")
    sold = events_of(t1, after=head_seq(t1) - 2)
    apply_remote(t2, *sold[1])  # T2 is sent only the second sale
    assert verify_chain(t2).ok
    # Removing one of T2's own events is still caught.
    path = tmp_path / "t2.db"
    t2.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE terminal = 'T2' AND seq = 2")
        conn.execute(
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
            " BEGIN SELECT RAISE(ABORT, 'append-only'); END"
        )
    report = verify_chain(Ledger.open(path))
    assert not report.ok and "T2: event seq 2 is missing" in report.finding.message  # type: ignore[union-attr]


def test_two_terminals_selling_one_unit_flag_it_conflict_on_both(
    pair: tuple[Ledger, Ledger],
) -> None:
    t1, t2 = pair
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-3", 100)], actor="bob")
    t2.sell("INV-9", "Eve", [SaleLine("LAP", "LX-3", 100)], actor="sue")
    sale1 = events_of(t1)[-1]
    sale2 = [e for e in events_of(t2) if "INV-9" in e[0]]
    applied = apply_remote(t1, *sale2[0])
    assert applied.fork_with is not None and applied.responses
    assert flags(t1, "LX-3") == {"conflict"}
    apply_remote(t2, *sale1)
    assert flags(t2, "LX-3") == {"conflict"}
    # Both sales are kept in each passport.
    for ledger in (t1, t2):
        kinds = [e.kind for e in passport(ledger, ledger.find("LX-3")[0]).events]
        assert kinds.count("sell") == 2 and kinds[-1] == "flag"
        assert verify_chain(ledger).ok and verify_projection(ledger) is None
    # The conflict blocks a further sale.
    with pytest.raises(Exception, match="conflict"):
        t1.sell("INV-3", "Fay", [SaleLine("LAP", "LX-3", 100)], actor="bob")


def test_events_that_follow_on_are_not_forks(pair: tuple[Ledger, Ledger]) -> None:
    t1, t2 = pair
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 100)], actor="bob")
    apply_remote_many(t2, events_of(t1))
    t2.return_unit("INV-1", "LAP", "LX-1", actor="sue", condition="ok", disposition=State.IN_STOCK)
    results = apply_remote_many(t1, [e for e in events_of(t2) if '"return"' in e[0]])
    assert [r.fork_with for r in results] == [None]
    assert flags(t1, "LX-1") == set()


def test_flags_from_elsewhere_keep_flags_the_sender_did_not_know(
    pair: tuple[Ledger, Ledger],
) -> None:
    t1, t2 = pair
    t1.set_flag([UnitRef("LAP", "LX-4")], Flag.ON_HOLD, actor="ann", reason="customer hold")
    t2.set_flag([UnitRef("LAP", "LX-4")], Flag.STOLEN, actor="hq", reason="police report")
    results = apply_remote_many(t1, [e for e in events_of(t2) if "police report" in e[0]])
    assert flags(t1, "LX-4") == {"on_hold", "stolen"}
    assert results[0].fork_with is None and len(results[0].responses) == 1
    apply_remote_many(t2, [e for e in events_of(t1) if "customer hold" in e[0]])
    assert flags(t2, "LX-4") == {"on_hold", "stolen"}
    # The merge events travel too, and change nothing more.
    t1_merge = events_of(t1)[-1]
    assert apply_remote(t2, *t1_merge).responses == []
    assert flags(t2, "LX-4") == {"on_hold", "stolen"}


def test_cursor_moves_forward_only_and_never_past_the_log(pair: tuple[Ledger, Ledger]) -> None:
    t1, _ = pair
    head = head_seq(t1)
    assert replication_cursor(t1) == 0
    assert set_replication_cursor(t1, 3) == 3
    assert set_replication_cursor(t1, 2) == 3
    with pytest.raises(RemoteEventError, match=f"last event is seq {head}"):
        set_replication_cursor(t1, head + 1)
    assert [seq for seq, _, _ in outbox(t1, 3, 2)] == [4, 5]
