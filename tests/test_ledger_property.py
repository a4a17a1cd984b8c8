"""Random operation sequences never leave the projection disagreeing with the log."""

from __future__ import annotations

import contextlib
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.queries import passport
from daemon.rules.units import Flag, Op, State
from tests.ledger_fixtures import FixedClock, make_ledger

SERIALS = [f"SN-{i}" for i in range(6)]
BRANCHES = ["B1", "B2"]

operation = st.tuples(
    st.sampled_from(
        [
            "receive",
            "sell",
            "sell_override",
            "return",
            "transfer_out",
            "transfer_in",
            "repair_open",
            "repair_qc_close",
            "quarantine",
            "release",
            "write_off",
            "lost",
            "found",
            "flag",
            "unflag",
            "replace",
            "correct",
            "supplier",
        ]
    ),
    st.sampled_from(SERIALS),
    st.sampled_from(SERIALS),
    st.sampled_from(BRANCHES),
    st.sampled_from([State.IN_STOCK, State.QUARANTINED, State.IN_REPAIR, State.WRITTEN_OFF]),
)


def apply(ledger: Ledger, n: int, op: tuple[str, str, str, str, State]) -> None:
    name, serial, other, branch, disposition = op
    ref = UnitRef("LAP", serial)
    unit = ledger.unit("LAP", serial)
    ticket = (unit.repair_ticket if unit else None) or "none"
    actions = {
        "receive": lambda: ledger.receive(
            f"PO-{n}", "Acme", "LAP", [serial], actor="a", branch=branch
        ),
        "sell": lambda: ledger.sell(
            f"INV-{n}", "C", [SaleLine("LAP", serial)], actor="a", branch=branch
        ),
        "sell_override": lambda: ledger.sell(
            f"INV-{n}", "C", [SaleLine("LAP", serial)], actor="a", branch=branch, manager="M"
        ),
        "return": lambda: ledger.return_unit(
            unit.invoice if unit and unit.invoice else "INV-0",
            "LAP",
            serial,
            actor="a",
            condition="ok",
            disposition=disposition,
            branch=branch,
        ),
        "transfer_out": lambda: ledger.transfer_out(
            f"TR-{n}",
            "B2" if unit and unit.branch == "B1" else "B1",
            [ref],
            actor="a",
            branch=unit.branch if unit else "B1",
        ),
        "transfer_in": lambda: ledger.transfer_in(
            sent_by(ledger, serial) or f"TR-{n}",
            [ref],
            actor="a",
            branch=(unit.dest_branch if unit else None) or branch,
        ),
        "repair_open": lambda: ledger.repair_open(
            f"RP-{n}", ref, actor="a", technician="t", intake_condition="ok", fault="f"
        ),
        "repair_qc_close": lambda: (
            ledger.repair_step(ticket, "qc_passed", actor="q"),
            ledger.repair_close(ticket, actor="a", outcome="repaired"),
        ),
        "quarantine": lambda: ledger.move(Op.QUARANTINE, [ref], actor="a", reason="r"),
        "release": lambda: ledger.move(Op.RELEASE, [ref], actor="a", reason="r"),
        "write_off": lambda: ledger.move(Op.WRITE_OFF, [ref], actor="a", reason="r", manager="M"),
        "lost": lambda: ledger.move(Op.MARK_LOST, [ref], actor="a", reason="r"),
        "found": lambda: ledger.move(Op.MARK_FOUND, [ref], actor="a", reason="r"),
        "flag": lambda: ledger.set_flag([ref], Flag.ON_HOLD, actor="a", reason="r"),
        "unflag": lambda: ledger.set_flag([ref], Flag.ON_HOLD, actor="a", reason="r", on=False),
        "replace": lambda: ledger.replace(
            f"RPL-{n}", ref, UnitRef("LAP", other), actor="a", old_disposition=disposition
        ),
        "correct": lambda: ledger.correct(
            unit.last_event if unit else "none", actor="a", manager="M", reason="r"
        ),
        "supplier": lambda: ledger.move(Op.RETURN_TO_SUPPLIER, [ref], actor="a", reason="r"),
    }
    with contextlib.suppress(Refusal):
        actions[name]()


def sent_by(ledger: Ledger, serial: str) -> str | None:
    """The number of the last transfer that sent the unit, as its passport shows it."""
    unit = ledger.unit("LAP", serial)
    if unit is None:
        return None
    sent = [e.document for e in passport(ledger, unit).events if e.kind == "transfer_out"]
    return sent[-1].split()[-1] if sent and sent[-1] else None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=5, max_size=40))
def test_projection_always_equals_a_replay_of_the_log(
    operations: list[tuple[str, str, str, str, State]],
) -> None:
    clock = FixedClock()
    ledger = make_ledger(clock=clock)
    ledger.receive("PO-START", "Acme", "LAP", SERIALS[:4], actor="a")
    for n, op in enumerate(operations):
        clock.advance(hours=1)
        apply(ledger, n, op)
    assert verify_chain(ledger).ok
    assert verify_projection(ledger) is None
    # The kept counts equal a brute-force count of the units.
    kept = Counter(
        {
            (row[0], row[1]): row[2]
            for row in ledger.db.execute(
                "SELECT branch, state, sum(n) FROM unit_counts GROUP BY branch, state HAVING sum(n)"
            )
        }
    )
    brute = Counter(
        {
            (row[0], row[1]): row[2]
            for row in ledger.db.execute("SELECT branch, state, count(*) FROM units GROUP BY 1, 2")
        }
    )
    assert kept == brute
    ledger.close()
