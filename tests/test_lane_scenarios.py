"""Whole lanes on simulated devices, written as data: what is scanned or asked for, and
what the customer then reads on the pole display, the lane light, the buzzer, the
receipt that comes out of the printer and what the ledger holds afterwards.

Every scan goes through the pty scanner, the serial scanner driver, the barcode
parser, the lane's rules and its ledger; the display lines are decoded from the bytes
that reached the simulated display; the light is read off gpiozero's mock pins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulators.lane import SimulatedLane, wait_until
from tests.lane_sim import (
    BAD_EAN,
    CABLE_EAN,
    LAPTOP_EAN,
    MIA_BADGE,
    UNKNOWN_EAN,
    mia,
    run_lane,
)


@dataclass(frozen=True)
class Do:
    """One thing done at the lane and what must follow it (None: not checked)."""

    scan: str | None = None
    command: str | None = None  # "TENDER:CASH:1400" = command TENDER, argument CASH:1400
    display: tuple[str, str] | None = None
    light: str | None = None  # green, amber, red, red_blinking
    beep: str | None = None  # accept, reject, attendant, stop
    code: str | None = None  # the verdict's reason code


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Do, ...]
    mode: str = "cashier"
    receipt: tuple[str, ...] = ()  # lines the last receipt printed must hold
    ledger: dict[str, str] = field(default_factory=dict)  # "PRODUCT/SERIAL" -> state


def refused(code: str, first: str, words: str) -> Do:
    return Do(display=(first, words), light="red", beep="reject", code=code)


LOCKED = Do(display=("PLEASE WAIT", "ATTENDANT CALLED"), light="red_blinking", beep="attendant")
WELCOME = ("WELCOME", "PLEASE SCAN AN ITEM")

# Each refusal at a cashier lane: (scans, code, display)
REFUSALS = [
    (["LX-0010"], "already_sold", ("Laptop X1", "ALREADY SOLD")),
    (["LX-0011"], "quarantined", ("Laptop X1", "QUARANTINED")),
    (["LX-0012"], "flag_stolen", ("Laptop X1", "BLOCKED: SEE STAFF")),
    (["LX-0013"], "flag_recalled", ("Laptop X1", "RECALLED")),
    (["LX-0014"], "flag_conflict", ("Laptop X1", "UNDER REVIEW")),
    (["LX-0017"], "flag_on_hold", ("Laptop X1", "ON HOLD")),
    (["LX-0015"], "wrong_branch", ("Laptop X1", "OTHER BRANCH")),
    (["LX-0016"], "in_transit", ("Laptop X1", "IN TRANSIT")),
    (["NOPE-1"], "unknown_unit", ("NOT ACCEPTED", "UNKNOWN SERIAL")),
    ([LAPTOP_EAN, "LX-0999"], "unknown_unit", ("Laptop X1", "UNKNOWN SERIAL")),
    ([UNKNOWN_EAN], "unknown_product", ("NOT ACCEPTED", "UNKNOWN ITEM")),
    (["SN-7"], "ambiguous_serial", ("NOT ACCEPTED", "SCAN PRODUCT FIRST")),
    (["LX-0001", "LX-0001"], "duplicate_in_basket", ("Laptop X1", "SCANNED TWICE")),
]


# A cashier's lane asks for a manager instead (test_lane_manager).
OVERRIDE_OFFERS = {"wrong_branch": "OTHER BRANCH", "in_transit": "IN TRANSIT"}


def _refusal_scenarios() -> list[Scenario]:
    scenarios = []
    for scans, code, display in REFUSALS:
        last = Do(scan=scans[-1], display=display, light="red", beep="reject", code=code)
        if code in OVERRIDE_OFFERS:
            offer = (OVERRIDE_OFFERS[code], "MANAGER OVERRIDE?")
            last = Do(scan=scans[-1], display=offer, light="amber", beep="reject", code=code)
        steps = (*(Do(scan=s) for s in scans[:-1]), last)
        scenarios.append(Scenario(f"cashier refuses {code} {scans[-1]}", steps))
        locked = Do(
            scan=scans[-1],
            display=LOCKED.display,
            light="red_blinking",
            beep="attendant",
            code=code,
        )
        # Released, the lane is back where it was: in the sale, or still waiting for the
        # serial of the product scanned before the unknown one.
        released = Do(
            scan=MIA_BADGE, light="amber" if scans[0] == LAPTOP_EAN else "green", beep="stop"
        )
        scenarios.append(
            Scenario(
                f"self-checkout locks on {code} {scans[-1]} until a badge",
                (
                    *(Do(scan=s) for s in scans[:-1]),
                    locked,
                    Do(scan="LX-0002", display=LOCKED.display, code="locked"),
                    released,
                ),
                mode="self_checkout",
            )
        )
    return scenarios


SCENARIOS = [
    Scenario(
        "a cashier sells a laptop and a cable for cash",
        (
            Do(
                scan="LX-0001",
                display=("Laptop X1    1299.00", "TOTAL        1299.00"),
                light="green",
                beep="accept",
                code="unit_added",
            ),
            Do(
                scan=CABLE_EAN,
                display=("USB cable      15.00", "TOTAL        1314.00"),
                code="item_added",
            ),
            Do(
                command="TENDER:CASH:1400",
                display=("THANK YOU", "CHANGE         86.00"),
                light="green",
                code="sale_complete",
            ),
        ),
        receipt=(
            "Laptop X1                          1299.00",
            "  S/N LX-0001",
            "USB cable                            15.00",
            "TOTAL                              1314.00",
            "Change                               86.00",
        ),
        ledger={"LAP-X1/LX-0001": "sold"},
    ),
    Scenario(
        "product barcode, then its serial; a phone's serial masked on the receipt",
        (
            Do(
                scan=LAPTOP_EAN,
                display=("Laptop X1", "SCAN SERIAL NUMBER"),
                light="amber",
                code="serial_needed",
            ),
            Do(
                scan="LX-0002",
                display=("Laptop X1    1299.00", "TOTAL        1299.00"),
                light="green",
            ),
            Do(scan="356938035643809", display=("Phone S9      799.00", "TOTAL        2098.00")),
            Do(command="TENDER:CARD", display=("THANK YOU", "TOTAL        2098.00")),
        ),
        receipt=(
            "  S/N LX-0002",
            "  S/N \u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u20223809",
        ),
        ledger={"LAP-X1/LX-0002": "sold", "PHN-S9/356938035643809": "sold"},
    ),
    Scenario(
        "one GS1 DataMatrix gives product and serial",
        (
            Do(
                scan="]d2010400638133393121LX-0003",
                display=("Laptop X1    1299.00", "TOTAL        1299.00"),
                code="unit_added",
            ),
        ),
    ),
    Scenario(
        "a misread barcode asks for a rescan, nothing else",
        (
            Do(
                scan=BAD_EAN,
                display=("SCAN FAILED", "PLEASE SCAN AGAIN"),
                light="red",
                beep="reject",
                code="bad_scan",
            ),
        ),
        mode="self_checkout",
    ),
    Scenario(
        "a return takes back only the unit its invoice sold",
        (
            Do(command="RETURN", display=("RETURNS", "SCAN THE RECEIPT"), light="amber"),
            Do(
                scan="INV-OLD",
                display=("RETURN       INV-OLD", "SCAN THE UNIT"),
                code="invoice_found",
            ),
            Do(
                scan="LX-0002",
                display=("Laptop X1", "WRONG UNIT"),
                light="red",
                beep="reject",
                code="wrong_unit",
            ),
            Do(
                scan="LX-0010",
                display=("RETURN ACCEPTED", "REFUND       1299.00"),
                light="amber",
                code="return_accepted",
            ),
        ),
        receipt=("Return: Laptop X1                 -1299.00", "Returned on invoice INV-OLD"),
        ledger={"LAP-X1/LX-0010": "quarantined", "LAP-X1/LX-0002": "in_stock"},
    ),
    Scenario(
        "a wrong unit on a self-checkout return locks the lane",
        (
            Do(command="RETURN", display=LOCKED.display, code="attendant_only"),
            Do(scan=MIA_BADGE, display=("RETURNS", "SCAN THE RECEIPT"), beep="stop"),
            Do(scan="INV-OLD", code="invoice_found"),
            Do(scan="LX-0002", display=LOCKED.display, light="red_blinking", code="wrong_unit"),
        ),
        mode="self_checkout",
    ),
    Scenario(
        "receiving a delivery against its purchase order",
        (
            Do(command="RECEIVE:Acme", display=("RECEIVING", "SCAN THE PO"), light="amber"),
            Do(scan="PO-2001", display=("PO           PO-2001", "UNITS              0")),
            Do(scan=LAPTOP_EAN, display=("Laptop X1", "SCAN SERIAL NUMBER")),
            Do(scan="LX-0100", display=("Laptop X1", "UNITS              1"), beep="accept"),
            Do(scan="LX-0101", display=("Laptop X1", "UNITS              2")),
            Do(scan="LX-0001", display=("Laptop X1", "ALREADY IN STOCK"), code="already_active"),
            Do(
                command="DONE",
                display=("RECEIVED 2 UNITS", "PO           PO-2001"),
                code="received",
            ),
        ),
        ledger={"LAP-X1/LX-0100": "in_stock", "LAP-X1/LX-0101": "in_stock"},
    ),
    Scenario(
        "void a line, then reprint the receipt",
        (
            Do(scan="LX-0004"),
            Do(scan=CABLE_EAN),
            Do(command="VOID:1", display=("VOID Laptop X1", "TOTAL          15.00"), code="voided"),
            Do(command="TENDER:CARD", code="sale_complete"),
            Do(command="REPRINT", code="reprint"),
        ),
        receipt=("*** REPRINT ***",),
        ledger={"LAP-X1/LX-0004": "in_stock"},
    ),
    *_refusal_scenarios(),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        assert sim.glass == WELCOME
        for number, do in enumerate(scenario.steps, start=1):
            event = await _do(sim, do)
            where = f"step {number} ({do.scan or do.command})"
            verdict = event.get("verdict") or {}
            if do.code is not None:
                assert verdict.get("code") == do.code, f"{where}: {verdict}"
            if do.display is not None:
                assert sim.glass == do.display, where
            if do.light is not None:
                await _check_light(sim, do.light, where)
            if do.beep is not None:
                assert event.get("beep") == do.beep, f"{where}: {event.get('beep')}"
        if scenario.receipt:
            count = len(sim.printer.receipts)
            await wait_until(lambda: sim.printer.receipts, "a receipt")
            await wait_until(lambda: len(sim.printer.receipts) >= count, "the last receipt")
            text = sim.printer.receipts[-1].text.splitlines()
            for line in scenario.receipt:
                assert line in text, f"{line!r} not on the receipt:\n" + "\n".join(text)
        for ref, state in scenario.ledger.items():
            product, serial = ref.split("/")
            found = await sim.lane.ledger.call(
                lambda led, product=product, serial=serial: led.unit(product, serial)
            )
            assert found is not None and found.state.value == state, ref

    extra: dict[str, Any] = {"mode": scenario.mode}
    if scenario.mode == "self_checkout":
        extra["attendants"] = [mia()]
    run_lane(tmp_path, template_dir, play, **extra)


async def _do(sim: SimulatedLane, do: Do) -> dict[str, Any]:
    if do.scan is not None:
        return await sim.scan(do.scan)
    assert do.command is not None
    name, _, argument = do.command.partition(":")
    return await sim.command(name, argument)


async def _check_light(sim: SimulatedLane, light: str, where: str) -> None:
    assert sim.lane.state.light.value == light, where
    if light == "red_blinking":
        lamp = sim.lane.outputs.gpio.light if sim.lane.outputs.gpio else None
        await wait_until(lambda: lamp is not None and lamp.is_blinking, "the lamp to blink")
        assert sim.gpio.light_colour() in ("red", None), where  # red, on or off, only
    else:
        await wait_until(lambda: sim.gpio.light_colour() == light, f"the {light} lamp", soft=True)
        assert sim.gpio.light_colour() == light, where


def test_a_self_checkout_release_is_recorded_in_the_ledger_naming_the_attendant(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        await sim.scan("LX-0001")  # the same unit twice in one basket
        assert sim.lane.state.mode.value == "attendant_needed"
        await sim.scan(MIA_BADGE)
        assert sim.glass == ("Laptop X1    1299.00", "TOTAL        1299.00")
        rows = await sim.lane.ledger.call(
            lambda led: led.db.execute(
                "SELECT json_extract(body, '$.actor'), json_extract(body, '$.data.reason')"
                " FROM events WHERE kind = 'lane_release'"
            ).fetchall()
        )
        assert rows == [("Mia", "duplicate_in_basket")]
        journal = await sim.lane.ledger.call(lambda _: sim.lane.ledger.journal.entries(10))
        assert "badge of Mia" in [e["input"] for e in journal]  # the badge id is not stored
        assert MIA_BADGE not in {e["input"] for e in journal}

    run_lane(tmp_path, template_dir, play, mode="self_checkout", attendants=[mia()])


def test_every_scan_is_in_the_journal_with_a_sequence_number_and_its_verdict(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        for text in ("LX-0001", "LX-0010", BAD_EAN):
            await sim.scan(text)
        entries = await sim.lane.ledger.call(lambda _: sim.lane.ledger.journal.entries(10))
        scans = [(e["input"], e["code"]) for e in entries if e["kind"] == "scan"]
        assert scans == [
            ("LX-0001", "unit_added"),
            ("LX-0010", "already_sold"),
            (BAD_EAN, "bad_scan"),
        ]
        seqs = [e["seq"] for e in entries]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    run_lane(tmp_path, template_dir, play)


def test_the_buzzer_really_sounds(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        await wait_until(lambda: len(sim.gpio.buzzer_history()) >= 1, "the first beep")
        await sim.scan("LX-0010")
        await wait_until(lambda: len(sim.gpio.buzzer_history()) >= 2, "the second beep")
        short, long = sim.gpio.buzzer_history()[:2]
        assert short < long  # accept is a short beep, refusal a long one

    run_lane(tmp_path, template_dir, play)
