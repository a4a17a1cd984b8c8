"""What `posd` prints: --csv, --nl, a result cut at its limit, the passport's event ids,
a long list of import problems, and refusals that say what really happened."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from daemon.cli import build, output
from daemon.cli.exits import ExitStatus


class Posd:
    def __init__(self, db: Path) -> None:
        self.db = db

    def __call__(self, *args: str, status: int = 0) -> Result:
        result = CliRunner().invoke(build(), list(args), env={"POSD_DB": str(self.db)})
        assert result.exit_code == status, result.output
        return result


@pytest.fixture
def posd(tmp_path: Path) -> Posd:
    run = Posd(tmp_path / "ledger.db")
    run("init", "--terminal", "T-001", "--branch", "NORTH")
    run("product", "add", "LAP", "Laptop X1", "--warranty-months", "24", "--price", "1299")
    serials = [f"LX-{n}" for n in range(1, 6)]
    run("receive", "--po", "PO-1", "--supplier", "Acme", "--product", "LAP", *serials)
    return run


def test_search_filters_by_state_as_its_output_names_it(posd: Posd) -> None:
    posd("sell", "--invoice", "INV-1", "--customer", "Dana", "LAP/LX-2")
    rows = json.loads(posd("search", "--state", "sold", "--json").stdout)["units"]
    assert [(r["serial"], r["state"]) for r in rows] == [("LX-2", "sold")]
    assert "No such option '--status'" in posd("search", "--status", "sold", status=2).output
    assert "'in-stock' is not one of" in posd("search", "--state", "in-stock", status=2).output
    sold = json.loads(posd("counts", "--by", "state", "--state", "sold", "--json").stdout)
    assert sold["counts"] == [{"state": "sold", "units": 1}]


def test_a_result_cut_at_its_limit_says_so(posd: Posd) -> None:
    text = posd("search", "--prefix", "LX-", "--limit", "2").stdout
    assert text.splitlines()[-1] == "(the first 2 units; more match: raise --limit)"
    cut = json.loads(posd("search", "--prefix", "LX-", "--limit", "2", "--json").stdout)
    assert cut["truncated"] is True and len(cut["units"]) == 2
    whole = json.loads(posd("search", "--prefix", "LX-", "--limit", "5", "--json").stdout)
    assert whole["truncated"] is False and len(whole["units"]) == 5
    as_csv = posd("search", "--prefix", "LX-", "--limit", "2", "--csv")
    assert list(csv.reader(io.StringIO(as_csv.stdout)))[1:] == [
        ["LAP", "LX-1", "in_stock", "NORTH", ""],
        ["LAP", "LX-2", "in_stock", "NORTH", ""],
    ]
    assert "more match" in as_csv.stderr  # the rows on stdout stay clean to pipe on


def test_csv_and_newline_json_on_counts_unit_and_reports(posd: Posd) -> None:
    counts = posd("counts", "--by", "branch,state", "--csv").stdout
    assert counts == "branch,state,units\nNORTH,in_stock,5\n"
    lines = posd("counts", "--by", "state", "--nl").stdout.splitlines()
    assert [json.loads(line) for line in lines] == [{"state": "in_stock", "units": 5}]
    events = list(csv.DictReader(io.StringIO(posd("unit", "LX-1", "--csv").stdout)))
    assert [(e["terminal"], e["kind"]) for e in events] == [("T-001", "receive")]
    report = posd("report", "supplier-failure", "--nl").stdout.splitlines()
    assert json.loads(report[0])["supplier"] == "Acme"
    both = posd("counts", "--csv", "--json", status=2)
    assert (
        json.loads(both.stdout)["error"]["message"]
        == "--csv and --json are two formats: choose one"
    )


def test_every_csv_cell_goes_through_one_function(
    posd: Posd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "csv_cell", lambda value: f"<{value}>")
    assert posd("search", "--serial", "LX-1", "--csv").stdout.startswith("<product>,<serial>")
    assert posd("counts", "--csv").stdout.startswith("<prefix>,<state>,<units>")
    assert posd("unit", "LX-1", "--csv").stdout.startswith("<terminal>,<seq>")
    assert posd("report", "supplier-failure", "--csv").stdout.startswith("<supplier>")


def test_the_passport_shows_terminal_seq_and_an_id_correct_takes(posd: Posd) -> None:
    posd("quarantine", "--product", "LAP", "--reason", "dented box", "LX-3")
    text = posd("unit", "LX-3").stdout
    last = text.splitlines()[-1]
    found = re.match(r"\s+T-001:(\d+) ([0-9a-f]{8}) .* quarantine ", last)
    assert found, text
    passport = json.loads(posd("unit", "LX-3", "--json").stdout)["passport"]
    full = passport["events"][-1]["uuid"]
    assert passport["events"][-1]["short_id"] == found[2]
    assert full.replace("-", "").endswith(found[2]) and passport["events"][-1]["seq"] == int(
        found[1]
    )
    posd("correct", found[2], "--manager", "Mia", "--reason", "wrong unit")
    assert json.loads(posd("unit", "LX-3", "--json").stdout)["passport"]["state"] == "in_stock"
    unknown = posd("correct", "0badc0de", "--manager", "Mia", "--reason", "x", status=1)
    assert "there is no event whose id ends in 0badc0de" in unknown.output


def test_an_import_with_many_problems_prints_the_first_and_a_count(
    posd: Posd, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    rows = [f"S {n},LAP,PO-2,Acme,NORTH,1" for n in range(50)]  # a space in every serial
    bad.write_text("serial,product,po,supplier,branch,cost\n" + "\n".join(rows) + "\n")
    refused = posd("import", str(bad), status=1).stderr.splitlines()
    assert refused[0] == "refused: 50 problems"
    assert len([line for line in refused if line.startswith("  - line ")]) == 20
    assert "… and 30 more (--json lists every one)" in refused[-1]
    listed = json.loads(posd("import", str(bad), "--json", status=1).stdout)
    assert len(listed["problems"]) == 50 and listed["error"]["code"] == "bad_serial"
    missing = posd("import", str(tmp_path / "none.csv"), status=ExitStatus.NO_INPUT)
    assert "no file" in missing.output


def test_import_again_with_skip_existing(posd: Posd, tmp_path: Path) -> None:
    sheet = tmp_path / "serials.csv"
    sheet.write_text("serial,product,po,supplier,branch,cost\nN-1,LAP,PO-2,Acme,NORTH,1\n")
    posd("import", str(sheet))
    # The same file again, its first row's cost changed since and a row added: N-1 is no
    # longer "imported already" as the file says.
    sheet.write_text(
        "serial,product,po,supplier,branch,cost\nN-1,LAP,PO-2,Acme,NORTH,2\n"
        "N-2,LAP,PO-2,Acme,NORTH,1\n"
    )
    again = posd("import", str(sheet), status=1)  # without the flag: all or none
    assert "N-1" in again.output
    done = json.loads(posd("import", str(sheet), "--skip-existing", "--json").stdout)
    assert (done["units"], done["skipped"], done["rows"]) == (1, 1, 2)
    units = json.loads(posd("search", "--prefix", "N-", "--json").stdout)["units"]
    assert [u["serial"] for u in units] == ["N-1", "N-2"]
    # A unit received on another PO is no re-import: still refused.
    sheet.write_text("serial,product,po,supplier,branch,cost\nN-1,LAP,PO-3,Acme,NORTH,1\n")
    assert "N-1" in posd("import", str(sheet), "--skip-existing", status=1).output


def test_a_refusal_says_the_unit_was_returned_not_never_sold(posd: Posd) -> None:
    posd("sell", "--invoice", "INV-1", "--customer", "Dana", "LAP/LX-1")
    posd(
        "return", "--invoice", "INV-1", "--product", "LAP", "--serial", "LX-1", "--condition", "ok"
    )
    repair = ("--technician", "tess", "--condition", "ok", "--fault", "no power")
    posd("repair", "open", "RP-1", "--product", "LAP", "--serial", "LX-1", *repair)
    replaced = posd(
        "replace", "RPL-1", "LAP/LX-1", "LAP/LX-2", "--old-disposition", "written_off", status=1
    )
    said = re.search(
        r'serial "LX-1" was returned on (\d{4}-\d\d-\d\d) \(return (\S+)\)', replaced.output
    )
    assert said, replaced.output
    assert "never sold" not in replaced.output
    claimed = posd(
        "warranty",
        "claim",
        "WC-1",
        "--product",
        "LAP",
        "--serial",
        "LX-1",
        "--line",
        "a:1",
        status=1,
    )
    assert f"was returned on {said[1]} (return {said[2]})" in claimed.output
    posd("repair", "open", "RP-2", "--product", "LAP", "--serial", "LX-4", *repair)
    never = posd(
        "warranty",
        "claim",
        "WC-2",
        "--product",
        "LAP",
        "--serial",
        "LX-4",
        "--line",
        "a:1",
        status=1,
    )
    assert 'serial "LX-4" was never sold; it is in_repair at NORTH' in never.output
