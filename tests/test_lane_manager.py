"""What only a manager may do at the lane: override a refusal a manager may lift, void a
line of a completed sale, write a unit off. The rules as tables first, then the same
on a simulated lane over HTTP and in the ledger."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.rules.lane.machine import step
from daemon.rules.lane.types import (
    Beep,
    Command,
    CommandName,
    Facts,
    InvoiceFacts,
    InvoiceLine,
    LedgerDone,
    Light,
    ManagerApproval,
    Mode,
    RecordRefusedManager,
    SellBasket,
    Tick,
    VoidSold,
    WriteOff,
)
from daemon.rules.units import State
from simulators.lane import SimulatedLane, wait_until
from tests.lane_fixtures import (
    CABLE,
    CASHIER,
    LAPTOP,
    NOW,
    SELF,
    Driven,
    gtin,
    label,
    unit,
)
from tests.lane_sim import MAX_BADGE, MAX_PIN, MIA_BADGE, MIA_PIN, max_, mia, run_lane

LANE = replace(CASHIER, badges={"BADGE-0042": "Mia"}, managers={"BADGE-9001": "Max"})
SELF_LANE = replace(SELF, managers={"BADGE-9001": "Max"})
ELSEWHERE = unit("LX-9", branch="SOUTH")
MOVING = unit("LX-8", State.IN_TRANSIT, branch="SOUTH", dest="NORTH")
MAX = label("BADGE-9001")
MIA = label("BADGE-0042")

# ----------------------------------------------------------------- the rules: overrides

OFFERS = [
    (ELSEWHERE, "wrong_branch", ("OTHER BRANCH", "MANAGER OVERRIDE?")),
    (MOVING, "in_transit", ("IN TRANSIT", "MANAGER OVERRIDE?")),
]


@pytest.mark.parametrize(("found", "code", "display"), OFFERS)
def test_a_cashier_lane_offers_a_manager_override(found, code, display) -> None:
    lane = Driven(LANE)
    lane.scan(label("LX-1", unit("LX-1")))
    effects = lane.scan(label(found.serial, found))
    assert effects.verdict is not None and effects.verdict.code == code
    assert effects.display == display
    assert (effects.light, effects.beep) == (Light.AMBER, Beep.REJECT)
    assert "a manager may approve" in (effects.prompt or "")
    assert lane.state.mode is Mode.MANAGER_NEEDED
    assert len(lane.state.basket.lines) == 1  # not in the basket until a manager says so


@pytest.mark.parametrize(("found", "code", "display"), OFFERS)
def test_a_managers_badge_puts_the_unit_in_the_basket_and_the_sale_names_the_manager(
    found, code, display
) -> None:
    lane = Driven(LANE)
    lane.scan(label(found.serial, found))
    effects = lane.scan(MAX)
    assert effects.verdict.code == "override_approved"
    assert f"{code} overridden by Max (badge)" in effects.verdict.message
    assert effects.display == ("Laptop X1    1299.00", "TOTAL        1299.00")
    assert (effects.light, effects.beep) == (Light.GREEN, Beep.ACCEPT)
    lane.feed(Command(CommandName.TENDER, "CARD"))
    sale = lane.ops[-1]
    assert isinstance(sale, SellBasket)
    assert [line.approved_by for line in sale.basket.lines] == ["Max"]
    assert lane.last_code == "sale_complete"


WRONG_PEOPLE = [
    (MIA, "Mia (attendant)", "badge"),
    (ManagerApproval(None, "pin"), "a PIN that is no manager's", "pin"),
]


@pytest.mark.parametrize(("who", "recorded", "method"), WRONG_PEOPLE)
def test_anyone_but_a_manager_is_refused_and_the_attempt_recorded(who, recorded, method) -> None:
    lane = Driven(LANE)
    lane.scan(label("LX-9", ELSEWHERE))
    effects = lane.scan(who) if isinstance(who, tuple) else lane.feed(who)
    attempt = lane.ops[-1]
    assert isinstance(attempt, RecordRefusedManager)
    assert (attempt.who, attempt.method, attempt.code) == (recorded, method, "wrong_branch")
    assert effects.verdict.code == "not_a_manager"
    assert effects.display == ("NOT A MANAGER", "MANAGER OVERRIDE?")
    assert lane.state.mode is Mode.MANAGER_NEEDED and lane.state.basket is None
    lane.scan(MAX)  # still open to the right person
    assert lane.state.basket is not None and lane.state.basket.lines[0].approved_by == "Max"


DROPS = [
    ("CANCEL", lambda lane: lane.feed(Command(CommandName.CANCEL))),
    ("the deadline", lambda lane: _after(lane, LANE.mode_timeout_s + 1)),
    ("the next item", lambda lane: lane.scan(label("LX-1", unit("LX-1")))),
]


def _after(lane: Driven, seconds: float) -> object:
    lane.clock += seconds
    return lane.feed(Tick())


@pytest.mark.parametrize(("what", "do"), DROPS, ids=[d[0] for d in DROPS])
def test_the_override_lapses_and_the_unit_is_not_sold(what, do) -> None:
    lane = Driven(LANE)
    lane.scan(label("LX-9", ELSEWHERE))
    do(lane)
    assert lane.state.mode in (Mode.IDLE, Mode.IN_SALE)
    lines = lane.state.basket.lines if lane.state.basket else ()
    assert [line.serial for line in lines] == (["LX-1"] if what == "the next item" else [])
    assert lane.state.approval is None


def test_paying_while_a_manager_is_called_sells_the_rest_without_that_unit() -> None:
    lane = Driven(LANE)
    lane.scan(label("LX-1", unit("LX-1")))
    lane.scan(label("LX-9", ELSEWHERE))
    lane.feed(Command(CommandName.TENDER, "CARD"))
    sale = lane.ops[-1]
    assert isinstance(sale, SellBasket) and [ln.serial for ln in sale.basket.lines] == ["LX-1"]
    codes = [e.verdict.code for e in lane.effects[-2:] if e.verdict is not None]
    assert codes == ["not_approved", "sale_complete"]
    assert 'serial "LX-9" not added' in lane.effects[-2].verdict.message


def test_a_self_checkout_still_calls_an_attendant() -> None:
    lane = Driven(SELF_LANE)
    effects = lane.scan(label("LX-9", ELSEWHERE))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED
    assert effects.display == ("PLEASE WAIT", "ATTENDANT CALLED")


def test_a_managers_badge_releases_a_locked_lane_and_does_nothing_when_not_needed() -> None:
    lane = Driven(SELF_LANE)
    assert lane.scan(MAX).verdict.code == "no_approval_needed"
    lane.scan(label("LX-1", unit("LX-1", State.SOLD)))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED
    effects = lane.scan(MAX)
    assert lane.state.mode is Mode.IDLE and "released by Max (badge)" in effects.verdict.message


# --------------------------------------------------------- the rules: void a sold line

SOLD_LAPTOP = unit("LX-1", State.SOLD, invoice="T-001-000001")


def _paid(lane: Driven) -> None:
    lane.scan(label("LX-1", unit("LX-1")))
    lane.scan(gtin(CABLE, "4012345678901"))
    lane.feed(Command(CommandName.TENDER, "CARD"))


def test_a_manager_voids_a_line_of_the_last_sale() -> None:
    lane = Driven(LANE)
    _paid(lane)
    effects = lane.feed(Command(CommandName.VOID, "1"))
    assert effects.display == ("VOID Laptop X1", "MANAGER APPROVAL?")
    assert lane.state.mode is Mode.MANAGER_NEEDED
    effects = lane.scan(MAX)
    void = lane.ops[-1]
    assert void == VoidSold(
        void.op_id, "T-001-000001", "LAP-X1", "LX-1", "Laptop X1", 129900, "Max"
    )
    assert effects.display == ("VOIDED Laptop X1", "REFUND       1299.00")
    assert effects.receipt is not None and effects.receipt.total_cents == -129900
    assert "Approved by Max" in effects.receipt.footer
    assert lane.state.mode is Mode.IDLE


def test_a_void_by_invoice_and_serial_needs_that_invoice_to_have_sold_it() -> None:
    lines = (InvoiceLine(LAPTOP, "LX-1", "LX-1", 129900),)
    facts = Facts(invoice=InvoiceFacts("T-001-000007", True, lines))
    lane = Driven(LANE)
    lane.feed(Command(CommandName.VOID, "T-001-000007:LX-2", facts=facts))
    assert lane.last_code == "not_on_invoice" and lane.state.mode is Mode.IDLE
    lane.feed(Command(CommandName.VOID, "T-001-000007:lx-1", facts=facts))
    assert lane.state.mode is Mode.MANAGER_NEEDED
    lane.feed(ManagerApproval("Max", "pin"))
    assert lane.ops[-1].invoice == "T-001-000007" and lane.ops[-1].manager == "Max"


VOID_REFUSALS = [
    ("VOID:1", "nothing_to_void", False),  # nothing sold here yet
    ("VOID:2", "plain_item_void", True),  # the cable has no serial
    ("VOID:7", "nothing_to_void", True),
]


@pytest.mark.parametrize(("command", "code", "paid"), VOID_REFUSALS)
def test_voids_that_cannot_be(command, code, paid) -> None:
    lane = Driven(LANE)
    if paid:
        _paid(lane)
    name, _, argument = command.partition(":")
    effects = lane.feed(Command(CommandName(name), argument))
    assert lane.last_code == code and effects.display[0] == "NOT ACCEPTED"
    assert lane.state.mode is Mode.IDLE


def test_a_void_the_ledger_refuses_says_why() -> None:
    lane = Driven(LANE)
    _paid(lane)
    lane.feed(Command(CommandName.VOID, "1"))
    effects = lane.scan(MAX, refuse=(("not_on_invoice", "it was returned since"),))
    assert effects.verdict.code == "not_on_invoice" and "returned since" in effects.prompt
    assert lane.state.mode is Mode.IDLE


# ---------------------------------------------------------------- the rules: write-off


def test_a_write_off_names_the_unit_the_reason_and_the_manager() -> None:
    lane = Driven(LANE)
    effects = lane.feed(Command(CommandName.WRITEOFF, "dropped"))
    assert effects.display == ("WRITE OFF", "SCAN THE UNIT")
    effects = lane.scan(label("LX-1", unit("LX-1")))
    assert effects.display == ("WRITE OFF Laptop X1", "MANAGER APPROVAL?")
    lane.scan(MAX)
    assert lane.ops[-1] == WriteOff(
        lane.ops[-1].op_id, "LAP-X1", "LX-1", "Laptop X1", "dropped", "Max"
    )
    assert lane.state.mode is Mode.WRITE_OFF  # the next unit, or DONE
    lane.feed(Command(CommandName.DONE))
    assert lane.state.mode is Mode.IDLE


WRITE_OFF_REFUSALS = [
    (label("LX-1", SOLD_LAPTOP), "wrong_state"),
    (label("LX-9", ELSEWHERE), "wrong_branch"),
    (label("NOPE"), "unknown_unit"),
]


@pytest.mark.parametrize(("scanned", "code"), WRITE_OFF_REFUSALS)
def test_a_unit_that_cannot_be_written_off_here_is_refused(scanned, code) -> None:
    lane = Driven(LANE)
    lane.feed(Command(CommandName.WRITEOFF))
    lane.scan(scanned)
    assert lane.last_code == code and lane.state.mode is Mode.WRITE_OFF


def test_write_off_and_void_call_an_attendant_first_at_a_self_checkout() -> None:
    lane = Driven(SELF_LANE)
    lane.feed(Command(CommandName.WRITEOFF, "damaged"))
    assert lane.state.mode is Mode.ATTENDANT_NEEDED
    lane.scan(MIA)
    assert lane.state.mode is Mode.WRITE_OFF


def test_a_second_answer_waits_until_the_first_is_recorded() -> None:
    lane = Driven(LANE)
    lane.scan(label("LX-9", ELSEWHERE))
    waiting, effects = step(lane.state, ManagerApproval(None, "pin"), NOW, LANE)
    assert effects.ledger is not None
    _, second = step(waiting, ManagerApproval("Max", "pin"), NOW, LANE)
    assert second.verdict.code == "approving" and second.ledger is None
    after, _ = step(waiting, LedgerDone(effects.ledger.op_id), NOW, LANE)
    assert after.mode is Mode.MANAGER_NEEDED


# ------------------------------------------------------ on a simulated lane, in the ledger


def _url(sim: SimulatedLane, path: str) -> str:
    assert sim.daemon is not None
    return f"http://127.0.0.1:{sim.daemon.api_port}{path}"


async def _post(
    session: aiohttp.ClientSession, sim: SimulatedLane, path: str, body: Any
) -> tuple[int, dict[str, Any]]:
    async with session.post(_url(sim, path), json=body) as response:
        return response.status, await response.json()


async def _events(sim: SimulatedLane, *kinds: str) -> list[tuple[str, dict[str, Any], str]]:
    marks = ", ".join("?" for _ in kinds)
    rows = await sim.lane.ledger.call(
        lambda led: led.db.execute(
            f"SELECT kind, body FROM events WHERE kind IN ({marks}) AND"
            " json_extract(body, '$.actor') != 'bob' ORDER BY id",
            list(kinds),
        ).fetchall()
    )
    return [(kind, json.loads(body)["data"], json.loads(body)["actor"]) for kind, body in rows]


def test_an_override_by_badge_at_the_lane_is_in_the_ledger_naming_the_manager(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        event = await sim.scan("LX-0015")  # in stock at branch SOUTH
        assert event["verdict"]["code"] == "wrong_branch"
        assert sim.glass == ("OTHER BRANCH", "MANAGER OVERRIDE?")
        await sim.scan(MIA_BADGE)  # an attendant is not a manager
        assert sim.glass == ("NOT A MANAGER", "MANAGER OVERRIDE?")
        await sim.scan(MAX_BADGE)
        assert sim.glass == ("Laptop X1    1299.00", "TOTAL        2598.00")
        assert (await sim.command("TENDER", "CARD"))["verdict"]["code"] == "sale_complete"
        events = await _events(sim, "manager_refused", "override", "sell")
        assert [kind for kind, _, _ in events] == ["manager_refused", "sell", "override", "sell"]
        refused, override = events[0][1], events[2][1]
        assert (refused["who"], refused["method"], refused["reason"]) == (
            "Mia (attendant)",
            "badge",
            "wrong_branch",
        )
        assert override == {"manager": "Max", "overrode": ["wrong_branch"], "for": "sell"}
        sold = await sim.lane.ledger.call(lambda led: led.unit("LAP-X1", "LX-0015"))
        assert (sold.state.value, sold.branch, sold.invoice) == ("sold", "NORTH", "T-001-000001")
        journal = await sim.lane.ledger.call(lambda _: sim.lane.ledger.journal.entries(20))
        assert MAX_BADGE not in json.dumps(journal) and "badge of Max" in json.dumps(journal)

    run_lane(tmp_path, template_dir, play, attendants=[mia()], managers=[max_()])


def test_void_and_write_off_from_the_kiosk_with_a_managers_pin(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        async with aiohttp.ClientSession() as session:
            await sim.scan("LX-0016")  # in transit: a manager's PIN lets it through
            status, reply = await _post(session, sim, "/api/manager/approve", {"pin": MIA_PIN})
            assert status == 403 and "not a manager's" in reply["error"]
            status, reply = await _post(session, sim, "/api/manager/approve", {"pin": MAX_PIN})
            assert status == 200 and reply["verdict"]["code"] == "override_approved"
            await sim.scan("LX-0003")
            await _post(session, sim, "/api/commands", {"command": "tender", "argument": "CASH"})
            # The customer changes their mind about the second laptop.
            command = {"command": "void", "argument": "T-001-000001:LX-0003"}
            status, reply = await _post(session, sim, "/api/commands", command)
            assert reply["lane"]["manager_needed"]["action"] == "void_sold"
            status, reply = await _post(session, sim, "/api/manager/approve", {"pin": MAX_PIN})
            assert reply["verdict"]["code"] == "sale_line_voided"
            await sim.settled()
            assert sim.glass == ("VOIDED Laptop X1", "REFUND       1299.00")
            await wait_until(lambda: len(sim.printer.receipts) >= 2, "the void slip")
            assert "Approved by Max" in sim.printer.receipts[-1].text
            # A unit dropped in the stock room.
            await _post(
                session, sim, "/api/commands", {"command": "writeoff", "argument": "dropped"}
            )
            status, reply = await _post(session, sim, "/api/scan", {"text": "LX-0004"})
            assert reply["lane"]["display"] == ["WRITE OFF Laptop X1", "MANAGER APPROVAL?"]
            status, reply = await _post(session, sim, "/api/manager/approve", {"pin": MAX_PIN})
            assert reply["verdict"]["code"] == "written_off_here"
        events = await _events(sim, "manager_refused", "override", "correction", "write_off")
        assert [kind for kind, _, _ in events] == [
            "manager_refused",
            "override",
            "correction",
            "write_off",
        ]
        assert events[0][1]["who"] == "a PIN that is no manager's"
        assert events[1][1]["manager"] == "Max" and events[1][1]["overrode"] == ["in_transit"]
        assert events[2][1]["manager"] == "Max" and events[2][1]["corrected_kind"] == "sell"
        assert events[3][1] == {"manager": "Max", "reason": "dropped"}
        states = await sim.lane.ledger.call(
            lambda led: [
                led.unit("LAP-X1", s).state.value for s in ("LX-0016", "LX-0003", "LX-0004")
            ]
        )
        assert states == ["sold", "in_stock", "written_off"]

    run_lane(tmp_path, template_dir, play, attendants=[mia()], managers=[max_()])


def test_guessing_a_managers_pin_is_stopped(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0015")
        async with aiohttp.ClientSession() as session:
            statuses = []
            for guess in ("1111", "2222", "3333", "4444", "5555", MAX_PIN):
                status, _ = await _post(session, sim, "/api/manager/approve", {"pin": guess})
                statuses.append(status)
            # The same limit holds for an attendant's release: one limit for the kiosk.
            status, _ = await _post(session, sim, "/api/attendant/release", {"pin": MIA_PIN})
        assert statuses == [403] * 5 + [429] and status == 429
        assert sim.lane.state.mode is Mode.MANAGER_NEEDED and sim.lane.state.basket is None

    run_lane(tmp_path, template_dir, play, attendants=[mia()], managers=[max_()])
