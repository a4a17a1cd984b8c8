"""Every CSV posd writes (the dashboard's downloads, `posd report --csv`, `posd recall
outreach --csv`) is safe to open in a spreadsheet: a cell that would start a formula
is shown as the text it is (OWASP, CSV injection)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from daemon.cli import build
from daemon.ledger.analytics import Table
from daemon.ledger.recalls import as_csv, safe_cell

FORMULAS = [
    '=HYPERLINK("http://evil.example","click")',
    "=1+1",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "\tplain after a tab",
    "\rplain after a CR",
    "  =1+1",
    " \t @SUM(A1)",
    "\u3000=1+1",
    "\uff1d1+1",
]
PLAIN = ["Dana", "LX-1", "O'Brien", "-12.50", "12", "a = b", "x@example.com", "", "1299.00"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_that_would_start_a_formula_is_shown_as_text(text: str) -> None:
    assert safe_cell(text) == "'" + text
    [row] = list(csv.reader(io.StringIO(as_csv(Table("t", ("name",), [(text,)])))))[1:]
    assert row == ["'" + text]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_and_numbers_are_left_alone(text: str) -> None:
    assert safe_cell(text) == text


def test_numbers_stay_numbers() -> None:
    table = Table("t", ("a", "b", "c"), [(-5, -0.25, None)])
    assert as_csv(table).splitlines() == ["a,b,c", "-5,-0.25,"]


HIDING = ("\t", "\r", "\n")
FORMULA_START = tuple("=+-@\uff1d\uff0b\uff0d\uff20")


@given(st.text(max_size=30))
def test_no_cell_reaches_a_spreadsheet_as_a_formula(text: str) -> None:
    [header, row] = list(
        csv.reader(io.StringIO(as_csv(Table("t", (text,), [(text,)])), newline=""))
    )
    for cell in (header[0], row[0]):
        assert cell in (text, "'" + text)
        starts = cell.lstrip()[:1]
        number = re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", cell) is not None
        assert number or (cell[:1] not in HIDING and starts not in FORMULA_START), cell


@pytest.fixture
def posd(tmp_path: Path):  # type: ignore[no-untyped-def]
    db = tmp_path / "ledger.db"

    def run(*args: str) -> str:
        result = CliRunner().invoke(build(), ["--db", str(db), *args], env={"POSD_ACTOR": "clerk"})
        assert result.exit_code == 0, result.output
        return result.output

    run("init", "--terminal", "T1", "--branch", "B1")
    run("product", "add", "LAP", "Laptop X1", "--price", "1299")
    return run


def test_the_command_lines_csv_reports_neutralise_formulas(posd) -> None:  # type: ignore[no-untyped-def]
    evil = '=HYPERLINK("http://evil.example","Dana")'
    posd("receive", "--po", "PO-1", "--supplier", "@SUM(1+1)", "--product", "LAP", "LX-1")
    posd("sell", "--invoice", "INV-1", "--customer", evil, "LAP/LX-1@1299")
    posd("recall", "flag", "RC-1", "--product", "LAP", "--reason", "battery")
    [_, row] = list(csv.reader(io.StringIO(posd("recall", "outreach", "RC-1", "--csv"))))
    assert row[:3] == ["LAP", "LX-1", "'" + evil]
    rows = list(csv.reader(io.StringIO(posd("report", "supplier-failure", "--csv"))))
    assert rows[1][0] == "'@SUM(1+1)"


def test_every_csv_posd_writes_goes_through_the_one_function() -> None:
    root = Path(__file__).parent.parent / "daemon"
    writers, downloads = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if re.search(r"csv\.(writer|DictWriter)\(", text):
            writers.append(path.relative_to(root).as_posix())
        if "text/csv" in text:
            downloads.append(path.relative_to(root).as_posix())
            assert "as_csv(" in text, path  # a download made some other way
    assert writers == ["ledger/recalls.py"]
    assert downloads  # the dashboard's (outreach and analytics)
