"""A store's day on a fresh ledger, narrated: what `posd demo` shows.

Receives a delivery, sells, refuses a unit already sold, refuses the wrong unit on a
return, transfers, repairs, decides a partial warranty claim, replaces a device,
then shows a passport and proves the ledger intact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from daemon.ledger import Ledger, Refusal, SaleLine, UnitRef
from daemon.ledger.audit import verify_chain, verify_projection
from daemon.ledger.queries import counts, passport
from daemon.rules.units import State
from daemon.rules.warranty import Cause, ClaimLine, LineKind


def _step(text: str) -> None:
    click.secho(f"\n▶ {text}", bold=True)


def _ok(text: str) -> None:
    click.secho(f"  ✔ {text}", fg="green")


def _refused(exc: Refusal) -> None:
    for problem in exc.problems:
        click.secho(f"  ✘ refused [{problem.code}]: {problem.message}", fg="red")
    if exc.recorded:
        click.echo(f"    the attempt is in the ledger as event {exc.recorded}")


def run_walkthrough(keep: str | None = None) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "ledger.db"
        if path.exists():
            path.unlink()
        ledger = Ledger.create(path, terminal="T-001", branch="NORTH")
        try:
            return _day(ledger)
        finally:
            ledger.close()


def _day(ledger: Ledger) -> int:
    _step("Products")
    _ok(
        ledger.define_product(
            "LAP-X1", "Laptop X1", actor="setup", warranty_months=24, price_cents=129900
        ).message
    )
    _ok(
        ledger.define_product(
            "PHN-S9",
            "Phone S9",
            actor="setup",
            warranty_months=12,
            serial_rule=r"[0-9]{15}",
            price_cents=79900,
        ).message
    )

    _step("Receive a delivery against PO-1001 (quantity 4, four distinct serials)")
    _ok(
        ledger.receive(
            "PO-1001",
            "Acme Distribution",
            "LAP-X1",
            ["LX-0001", "LX-0002", "LX-0003", "LX-0004"],
            actor="ann",
            quantity=4,
            cost_cents=91000,
        ).message
    )
    _ok(
        ledger.receive(
            "PO-1002",
            "Phones Ltd",
            "PHN-S9",
            ["356938035643809", "356938035643817"],
            actor="ann",
            quantity=2,
        ).message
    )

    _step("A second delivery repeats LX-0002: refused, naming where that unit is")
    try:
        ledger.receive(
            "PO-1003",
            "Acme Distribution",
            "LAP-X1",
            ["LX-0002", "LX-0005"],
            actor="ann",
            quantity=2,
        )
    except Refusal as exc:
        _refused(exc)

    _step("Sell LX-0001 and a phone on invoice INV-5001")
    _ok(
        ledger.sell(
            "INV-5001",
            "Dana Smith",
            [SaleLine("LAP-X1", "LX-0001", 129900), SaleLine("PHN-S9", "356938035643809", 79900)],
            actor="bob",
        ).message
    )

    _step("Scan LX-0001 again on another invoice: already sold")
    try:
        ledger.sell("INV-5002", "Eve Jones", [SaleLine("LAP-X1", "LX-0001")], actor="bob")
    except Refusal as exc:
        _refused(exc)

    _step("Dana returns a laptop on INV-5001, but it is LX-0003, not the one she bought")
    try:
        ledger.return_unit(
            "INV-5001",
            "LAP-X1",
            "LX-0003",
            actor="bob",
            condition="boxed",
            disposition=State.IN_STOCK,
        )
    except Refusal as exc:
        _refused(exc)

    _step("Transfer LX-0004 to branch SOUTH, received there")
    _ok(ledger.transfer_out("TR-77", "SOUTH", [UnitRef("LAP-X1", "LX-0004")], actor="ann").message)
    _ok(
        ledger.transfer_in(
            "TR-77", [UnitRef("LAP-X1", "LX-0004")], actor="sam", branch="SOUTH"
        ).message
    )

    _step("Dana's laptop fails: repair with chain of custody and a partial warranty claim")
    unit = UnitRef("LAP-X1", "LX-0001")
    _ok(
        ledger.repair_open(
            "RP-9",
            unit,
            actor="bob",
            technician="tess",
            intake_condition="scratched lid",
            fault="no power",
            accessories=["charger"],
        ).message
    )
    _ok(
        ledger.repair_step(
            "RP-9", "diagnosed", actor="tess", diagnosis="dead mainboard", parts=["MB-X1"]
        ).message
    )
    outcome = ledger.warranty_claim(
        "WC-3",
        unit,
        [
            ClaimLine("mainboard", 24000, LineKind.PART, Cause.DEFECT),
            ClaimLine("cracked lid", 6000, LineKind.PART, Cause.DAMAGE),
            ClaimLine("new charger", 3500, LineKind.ACCESSORY),
        ],
        actor="tess",
    )
    _ok(outcome.message)
    for line in outcome.details["decision"]["lines"]:
        mark = "covered" if line["covered"] else "charged"
        click.echo(
            f"      {line['description']:<12} {line['amount_cents'] / 100:>7.2f}"
            f"  {mark}: {line['reason']}"
        )

    _step("The board is unrepairable: replace it with LX-0002; the old unit goes to the supplier")
    _ok(
        ledger.replace(
            "RPL-1",
            unit,
            UnitRef("LAP-X1", "LX-0002"),
            actor="mia",
            old_disposition=State.RETURNED_TO_SUPPLIER,
            reason="mainboard failure",
        ).message
    )

    _step("Passport of LX-0001")
    card = passport(ledger, ledger.find("LX-0001")[0])
    for e in card.events:
        move = f"{e.state_from or '∅'} → {e.state_to}" if e.state_to else ""
        click.echo(f"  {e.seq:>3} {e.kind:<15} {e.document or '':<22} {move:<30} by {e.actor}")

    _step("Units per branch and state")
    for row in counts(ledger, by=("branch", "state")):
        click.echo(f"  {row['branch']:<8} {row['state']:<22} {row['units']}")

    _step("Audit: hash chain and replay")
    report = verify_chain(ledger)
    finding = report.finding or verify_projection(ledger)
    if finding:
        click.secho(f"  ✘ {finding.message}", fg="red")
        return 1
    _ok(f"{report.events} events verified; the projection matches a replay of the log")
    return 0
