"""The `posd` command line over the ledger, used as a back-office clerk would."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from daemon.cli import build, common
from daemon.cli.exits import ExitStatus


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found += all_commands(command, f"{prefix}{name} ")
    return found


@pytest.mark.parametrize(("name", "command"), all_commands(build()))
def test_every_command_has_help_text(name: str, command: click.Command) -> None:
    assert command.help and len(command.help) > 10, f"posd {name} has no help"
    result = CliRunner().invoke(build(), [*name.split(), "--help"])
    assert result.exit_code == 0, result.output


class Posd:
    def __init__(self, db: Path) -> None:
        self.db = db

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(
            build(), ["--db", str(self.db), *args], env={"POSD_ACTOR": "clerk"}
        )
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str, ok: bool = True) -> dict[str, object]:
        result = self(*args, "--json", ok=ok)
        payload: dict[str, object] = json.loads(result.stdout)
        return payload


@pytest.fixture
def posd(tmp_path: Path) -> Posd:
    runner = Posd(tmp_path / "ledger.db")
    runner("init", "--terminal", "T1", "--branch", "B1")
    runner("product", "add", "LAP", "Laptop X1", "--warranty-months", "24", "--price", "1299")
    runner("product", "add", "CABLE", "USB cable", "--not-serialized")
    return runner


def test_a_day_at_the_back_office(posd: Posd) -> None:
    received = posd.json(
        "receive",
        "--po",
        "PO-1",
        "--supplier",
        "Acme",
        "--product",
        "LAP",
        "--quantity",
        "3",
        "--cost",
        "812.40",
        "LX-1",
        "LX-2",
        "LX-3",
    )
    assert received["ok"] is True and len(received["events"]) == 3  # type: ignore[arg-type]
    posd(
        "sell",
        "--invoice",
        "INV-1",
        "--customer",
        "Dana",
        "LAP/LX-1@1299.00",
        "--item",
        "CABLE@15x2",
    )
    again = posd("sell", "--invoice", "INV-2", "--customer", "Eve", "LAP/LX-1", ok=False)
    assert again.exit_code == 1
    assert 'Laptop X1 serial "LX-1" is already sold at branch B1 on invoice INV-1' in again.output
    wrong = posd.json(
        "return",
        "--invoice",
        "INV-1",
        "--product",
        "LAP",
        "--serial",
        "LX-2",
        "--condition",
        "boxed",
        ok=False,
    )
    assert wrong["ok"] is False and wrong["code"] == "wrong_unit" and wrong["recorded"]
    posd("transfer", "out", "--transfer", "TR-1", "--to", "B2", "--product", "LAP", "LX-3")
    posd("transfer", "in", "--transfer", "TR-1", "--product", "LAP", "--branch", "B2", "LX-3")
    card = posd.json("unit", "LX-3")["passport"]
    assert card["branch"] == "B2" and card["state"] == "in_stock"  # type: ignore[index]
    assert [e["kind"] for e in card["events"]] == [  # type: ignore[index]
        "receive",
        "transfer_out",
        "transfer_in",
    ]
    text = posd("unit", "LX-1").output
    assert "sold     invoice INV-1 to Dana" in text and "warranty until 2028-" in text
    counts = posd.json("counts", "--by", "branch,state")["counts"]
    assert {"branch": "B1", "state": "sold", "units": 1} in counts  # type: ignore[operator]
    found = posd.json("search", "--prefix", "lx-")["units"]
    assert [u["serial"] for u in found] == ["LX-1", "LX-2", "LX-3"]  # type: ignore[attr-defined]
    assert "ledger intact" in posd("audit", "verify", "--replay").output


def test_repair_warranty_replace_and_correct(posd: Posd) -> None:
    posd("receive", "--po", "PO-1", "--supplier", "Acme", "--product", "LAP", "LX-1", "LX-2")
    sold = posd.json("sell", "--invoice", "INV-1", "--customer", "Dana", "LAP/LX-1")
    posd(
        "repair",
        "open",
        "RP-1",
        "--product",
        "LAP",
        "--serial",
        "LX-1",
        "--technician",
        "tess",
        "--condition",
        "scratched",
        "--fault",
        "no power",
        "--accessory",
        "charger",
    )
    posd("repair", "step", "RP-1", "diagnosed", "--diagnosis", "board", "--part", "MB-1")
    claim = posd.json(
        "warranty",
        "claim",
        "WC-1",
        "--product",
        "LAP",
        "--serial",
        "LX-1",
        "--line",
        "board:240:part:defect",
        "--line",
        "lid:60:part:damage",
    )
    assert claim["decision"]["doc_status"] == "partial"  # type: ignore[index]
    posd("replace", "RPL-1", "LAP/LX-1", "LAP/LX-2", "--old-disposition", "returned_to_supplier")
    assert posd.json("unit", "LX-2")["passport"]["customer"] == "Dana"  # type: ignore[index]
    undone = posd(
        "correct",
        str(sold["events"][0]),
        "--manager",
        "Mia",  # type: ignore[index]
        "--reason",
        "x",
        ok=False,
    )
    assert undone.exit_code == 1 and "has later events" in undone.output


def test_moves_and_flags(posd: Posd) -> None:
    posd("receive", "--po", "PO-1", "--supplier", "Acme", "--product", "LAP", "LX-1", "LX-2")
    posd("quarantine", "--product", "LAP", "--reason", "dented box", "LX-1")
    refused = posd("write-off", "--product", "LAP", "--reason", "dropped", "LX-2", ok=False)
    assert "needs a manager" in refused.output
    posd("write-off", "--product", "LAP", "--reason", "dropped", "--manager", "Mia", "LX-2")
    posd("flag", "stolen", "--product", "LAP", "--reason", "police", "LX-1")
    card = posd.json("unit", "LX-1")["passport"]
    assert card["flags"] == ["stolen"] and card["state"] == "quarantined"  # type: ignore[index]


def test_import_reports_bad_rows_with_line_numbers(posd: Posd, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "serial,product,po,supplier,branch,cost\nA-1,LAP,PO,Acme,B1,1\n"
        "A-1,LAP,PO,Acme,B1,1\nA 2,LAP,PO,Acme,B1,1\n"
    )
    result = posd("import", str(bad), ok=False)
    assert result.exit_code == 1
    assert 'line 3: serial "A-1" of LAP is already on line 2' in result.output
    assert 'line 4: serial "A 2" has a space' in result.output
    assert posd.json("search", "--prefix", "A-")["units"] == []
    good = tmp_path / "good.csv"
    good.write_text("serial,product,po,supplier,branch,cost\nA-1,LAP,PO,Acme,B1,1\n")
    assert posd.json("import", str(good))["units"] == 1


def test_missing_ledger_says_how_to_create_one(tmp_path: Path) -> None:
    path = str(tmp_path / "none.db")
    result = CliRunner().invoke(build(), ["--db", path, "unit", "X"])
    assert result.exit_code == ExitStatus.NO_INPUT
    assert "no ledger at" in result.output
    hint = result.output.split("`")[1]  # the command it suggests, which must work as printed
    assert hint == f"posd --db {path} init --terminal TERMINAL --branch BRANCH"
    created = CliRunner().invoke(build(), hint.split()[1:])
    assert created.exit_code == 0, created.output
    assert CliRunner().invoke(build(), ["--db", path, "product", "list"]).exit_code == 0


def test_the_default_ledger_path_says_how_to_name_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "DEFAULT_DB", str(tmp_path / "var" / "ledger.db"))
    result = CliRunner().invoke(build(), ["unit", "X"], env={"POSD_DB": None})
    assert result.exit_code == ExitStatus.NO_INPUT
    assert "neither --db nor POSD_DB was given" in result.output
    assert "export POSD_DB=FILE" in result.output


def test_init_says_how_later_commands_find_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(
        build(),
        ["--db", "here.db", "init", "--terminal", "T1", "--branch", "B1"],
        env={"POSD_DB": None},
    )
    monkeypatch.chdir("/")
    line = made.output.splitlines()[-1]
    assert "export POSD_DB=" in line
    exported = line.split("`")[1].removeprefix("export POSD_DB=")
    listed = CliRunner().invoke(build(), ["product", "list"], env={"POSD_DB": exported})
    assert listed.exit_code == 0 and "no products" in listed.output


def test_ambiguous_serial_asks_for_the_product(posd: Posd) -> None:
    posd("product", "add", "TAB", "Tablet")
    posd("receive", "--po", "P1", "--supplier", "A", "--product", "LAP", "SN-1")
    posd("receive", "--po", "P2", "--supplier", "B", "--product", "TAB", "SN-1")
    result = posd("unit", "SN-1", ok=False)
    assert "belongs to several products (LAP, TAB); add --product" in result.output
    assert posd.json("unit", "SN-1", "--product", "TAB")["passport"]["product"] == "TAB"  # type: ignore[index]


def test_reports_recalls_and_counts_from_the_command_line(posd: Posd) -> None:
    posd(
        "receive", "--po", "PO-1", "--supplier", "Acme", "--product", "LAP", "LX-1", "LX-2", "LX-3"
    )
    posd("sell", "--invoice", "INV-1", "--customer", "Dana", "LAP/LX-1@1299")
    failure = posd.json("report", "supplier-failure")["rows"]
    assert failure == [
        {
            "supplier": "Acme",
            "product": "LAP",
            "received": 3,
            "returned": 0,
            "repaired": 0,
            "failure_rate": 0.0,
        }
    ]
    assert posd("report", "registered-per-day", "--csv").output.startswith("day,received,sold\n")
    posd(
        "recall",
        "flag",
        "RC-1",
        "--product",
        "LAP",
        "--from",
        "LX-1",
        "--to",
        "LX-2",
        "--reason",
        "battery",
    )
    outreach = posd("recall", "outreach", "RC-1", "--csv").output.splitlines()
    assert outreach[0] == "product,serial,customer,invoice,branch,sold_on,state"
    assert outreach[1].startswith("LAP,LX-1,Dana,INV-1,B1,")
    assert len(outreach) == 2
    posd("count", "open", "CNT-1")
    scans = posd.json("count", "scan", "CNT-1", "--product", "LAP", "LX-2", "LX-2")["scans"]
    assert [s["verdict"] for s in scans] == ["expected", "scanned twice"]  # type: ignore[index]
    text = posd("count", "report", "CNT-1").output
    assert "1 of 2 found" in text and "missing:\n  LAP LX-3" in text
    posd("count", "close", "CNT-1")
    posd("count", "resolve", "CNT-1", "--product", "LAP", "--serial", "LX-3")
    assert posd.json("unit", "LX-3")["passport"]["state"] == "lost"  # type: ignore[index]
    accuracy = posd.json("report", "count-accuracy")["rows"]
    assert accuracy[0]["accuracy"] == 0.5  # type: ignore[index]
