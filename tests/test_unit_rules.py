"""The unit state machine, as a table: every operation from every state."""

from __future__ import annotations

import pytest

from daemon.rules.units import (
    TRANSITIONS,
    Allowed,
    Flag,
    Op,
    Refused,
    Request,
    State,
    UnitView,
    decide,
)

S = State


def unit(state: State, branch: str = "B1", **kw: object) -> UnitView:
    return UnitView(label='Laptop X1 serial "SN-1"', state=state, branch=branch, **kw)  # type: ignore[arg-type]


# (operation, from state, request extras, expected next state or refusal code)
TABLE: list[tuple[Op, State | None, dict[str, object], State | str]] = [
    (Op.RECEIVE, None, {}, S.IN_STOCK),
    (Op.RECEIVE, S.RETURNED_TO_SUPPLIER, {}, S.IN_STOCK),
    (Op.RECEIVE, S.IN_STOCK, {}, "already_active"),
    (Op.RECEIVE, S.SOLD, {}, "already_active"),
    (Op.RECEIVE, S.IN_REPAIR, {}, "already_active"),
    (Op.SELL, S.IN_STOCK, {}, S.SOLD),
    (Op.SELL, S.SOLD, {}, "already_sold"),
    (Op.SELL, S.QUARANTINED, {}, "quarantined"),
    (Op.SELL, S.IN_REPAIR, {}, "in_repair"),
    (Op.SELL, S.WRITTEN_OFF, {}, "written_off"),
    (Op.SELL, S.LOST, {}, "lost"),
    (Op.SELL, S.RETURNED_TO_SUPPLIER, {}, "returned_to_supplier"),
    (Op.SELL, None, {}, "unknown_unit"),
    (Op.RETURN, S.SOLD, {"invoice": "INV-1", "disposition": S.IN_STOCK}, S.IN_STOCK),
    (Op.RETURN, S.SOLD, {"invoice": "INV-1", "disposition": S.QUARANTINED}, S.QUARANTINED),
    (Op.RETURN, S.SOLD, {"invoice": "INV-1", "disposition": S.WRITTEN_OFF}, S.WRITTEN_OFF),
    (Op.RETURN, S.SOLD, {"invoice": "INV-1", "disposition": S.SOLD}, "bad_disposition"),
    (Op.RETURN, S.SOLD, {"invoice": "INV-2", "disposition": S.IN_STOCK}, "wrong_invoice"),
    (Op.RETURN, S.IN_STOCK, {"invoice": "INV-1", "disposition": S.IN_STOCK}, "not_sold"),
    (Op.TRANSFER_OUT, S.IN_STOCK, {}, S.IN_TRANSIT),
    (Op.TRANSFER_OUT, S.SOLD, {}, "wrong_state"),
    (Op.TRANSFER_IN, S.IN_STOCK, {}, "wrong_state"),
    (Op.REPAIR_OPEN, S.SOLD, {}, S.IN_REPAIR),
    (Op.REPAIR_OPEN, S.IN_STOCK, {}, S.IN_REPAIR),
    (Op.REPAIR_OPEN, S.WRITTEN_OFF, {}, "wrong_state"),
    (Op.REPAIR_STEP, S.IN_REPAIR, {}, S.IN_REPAIR),
    (Op.REPAIR_STEP, S.SOLD, {}, "wrong_state"),
    (Op.REPAIR_CLOSE, S.IN_REPAIR, {"disposition": S.WRITTEN_OFF}, S.WRITTEN_OFF),
    (Op.WARRANTY_CLAIM, S.SOLD, {}, S.SOLD),
    (Op.WARRANTY_CLAIM, S.IN_STOCK, {}, "wrong_state"),
    (Op.REPLACE_OLD, S.SOLD, {"disposition": S.RETURNED_TO_SUPPLIER}, S.RETURNED_TO_SUPPLIER),
    (Op.REPLACE_OLD, S.IN_STOCK, {"disposition": S.IN_REPAIR}, "wrong_state"),
    (Op.REPLACE_NEW, S.IN_STOCK, {}, S.SOLD),
    (Op.REPLACE_NEW, S.SOLD, {}, "already_sold"),
    (Op.QUARANTINE, S.IN_STOCK, {}, S.QUARANTINED),
    (Op.QUARANTINE, S.SOLD, {}, "wrong_state"),
    (Op.RELEASE, S.QUARANTINED, {}, S.IN_STOCK),
    (Op.RELEASE, S.IN_STOCK, {}, "wrong_state"),
    (Op.RETURN_TO_SUPPLIER, S.QUARANTINED, {}, S.RETURNED_TO_SUPPLIER),
    (Op.WRITE_OFF, S.IN_STOCK, {"manager": "Mia"}, S.WRITTEN_OFF),
    (Op.WRITE_OFF, S.IN_STOCK, {}, "needs_manager"),
    (Op.WRITE_OFF, S.SOLD, {"manager": "Mia"}, "wrong_state"),
    (Op.MARK_LOST, S.IN_TRANSIT, {}, S.LOST),
    (Op.MARK_LOST, S.SOLD, {}, "wrong_state"),
    (Op.MARK_FOUND, S.LOST, {}, S.IN_STOCK),
    (Op.MARK_FOUND, S.IN_STOCK, {}, "wrong_state"),
]


@pytest.mark.parametrize(("op", "start", "extra", "expected"), TABLE)
def test_transition_table(
    op: Op, start: State | None, extra: dict[str, object], expected: State | str
) -> None:
    view = None if start is None else unit(start, invoice="INV-1", dest_branch="B1")
    verdict = decide(view, Request(op, "B1", **extra))  # type: ignore[arg-type]
    if isinstance(expected, State):
        assert isinstance(verdict, Allowed), verdict
        assert verdict.state is expected
    else:
        assert isinstance(verdict, Refused)
        assert verdict.code == expected


@pytest.mark.parametrize("op", list(Op))
@pytest.mark.parametrize("state", list(State))
def test_every_pair_has_an_answer_and_refusals_say_where_the_unit_is(op: Op, state: State) -> None:
    verdict = decide(
        unit(state, invoice="INV-1", dest_branch="B1"),
        Request(op, "B1", disposition=S.IN_STOCK, invoice="INV-1", manager="Mia"),
    )
    if state in TRANSITIONS[op]:
        assert isinstance(verdict, Allowed | Refused)
    else:
        assert isinstance(verdict, Refused)
        assert "SN-1" in verdict.message
        if verdict.code != "already_active":
            assert "branch B1" in verdict.message


@pytest.mark.parametrize("flag", [Flag.STOLEN, Flag.RECALLED, Flag.CONFLICT, Flag.ON_HOLD])
def test_flags_stop_a_sale_even_with_a_manager(flag: Flag) -> None:
    verdict = decide(unit(S.IN_STOCK, flags=frozenset({flag})), Request(Op.SELL, "B1", manager="M"))
    assert isinstance(verdict, Refused)
    assert verdict.code == f"flag_{flag.value}"
    assert not verdict.overridable


def test_sale_at_another_branch_needs_a_manager_who_then_overrides() -> None:
    elsewhere = unit(S.IN_STOCK, branch="B2")
    refused = decide(elsewhere, Request(Op.SELL, "B1"))
    assert isinstance(refused, Refused)
    assert refused.code == "wrong_branch" and refused.overridable
    assert "branch B2" in refused.message
    allowed = decide(elsewhere, Request(Op.SELL, "B1", manager="Mia"))
    assert isinstance(allowed, Allowed)
    assert allowed.overridden == ("wrong_branch",)
    assert allowed.branch == "B1"


def test_sale_of_a_unit_in_transit_is_overridable() -> None:
    moving = unit(S.IN_TRANSIT, dest_branch="B2")
    refused = decide(moving, Request(Op.SELL, "B2"))
    assert isinstance(refused, Refused) and refused.code == "in_transit"
    assert "in transit from branch B1 to branch B2" in refused.message
    allowed = decide(moving, Request(Op.SELL, "B2", manager="Mia"))
    assert isinstance(allowed, Allowed) and allowed.overridden == ("in_transit",)


def test_transfer_in_only_at_the_destination() -> None:
    moving = unit(S.IN_TRANSIT, dest_branch="B2")
    refused = decide(moving, Request(Op.TRANSFER_IN, "B3"))
    assert isinstance(refused, Refused) and refused.code == "wrong_destination"
    allowed = decide(moving, Request(Op.TRANSFER_IN, "B2"))
    assert isinstance(allowed, Allowed) and allowed.branch == "B2"


def test_repaired_unit_goes_back_to_where_it_was() -> None:
    in_repair = unit(S.IN_REPAIR, pre_repair_state=S.SOLD)
    verdict = decide(in_repair, Request(Op.REPAIR_CLOSE, "B1"))
    assert isinstance(verdict, Allowed) and verdict.state is S.SOLD


def test_stolen_unit_cannot_be_received_back() -> None:
    gone = unit(S.RETURNED_TO_SUPPLIER, flags=frozenset({Flag.STOLEN}))
    verdict = decide(gone, Request(Op.RECEIVE, "B1"))
    assert isinstance(verdict, Refused) and verdict.code == "flag_stolen"
