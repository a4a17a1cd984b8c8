"""Hostile values at the command line, in CSV files and in configuration files.

For every input: no traceback, no hang, and no silent acceptance. A command either
refuses with a message and a non-zero status, or succeeds, and then whatever the ledger
holds is still of its kind (ids, names, money in range): nothing bad got in by any
command. Hypothesis draws values mixing good ones (so commands get past their first
check) with hostile ones: control characters, topic wildcards, `x` and `@` in codes,
NaN, exponents, negative and absurd numbers, 100,000-character strings.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.config.model import ConfigFileError, PosdConfig, load_config, parse_config
from daemon.ledger import Ledger, Refusal
from daemon.ledger.events import EventBody
from daemon.ledger.importer import import_csv
from daemon.rules.values import IDENTIFIER, MAX_CENTS, NAME, NOTE
from tests.ledger_fixtures import copy_ledger

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 60  # generous: one input that takes longer than this is a hang

HOSTILE_WORDS = [
    "",
    " ",
    "-1",
    "-0.01",
    "0",
    "NaN",
    "Infinity",
    "-inf",
    "1e30",
    "1e3",
    "12.345",
    "99999999999999999999",
    "BR/17",
    "T+1",
    "#",
    "a\nb",
    "\r\n",
    "\x00",
    "\x1b[2J",
    "\u202eevil",
    "BOXx2",
    "LAPx2",
    "LAP@1x2",
    "LAP@",
    "LAP/LX-1@-5",
    "LAP/",
    "/LX-1",
    "@",
    "x",
    "x0",
    "%u",
    "$SYS",
    "..",
    "../../etc/passwd",
    "Ж",
    "\uff26\uff35\uff2c\uff2c",  # full-width FULL
]
LONG = ["A" * 100_000, "1" * 5_000]
HOSTILE = st.one_of(
    st.sampled_from(HOSTILE_WORDS),
    st.sampled_from(LONG),
    st.text(max_size=40),
    st.text(st.sampled_from("LAPX01x@/+#.-: \n"), max_size=12),
)

# Good values by parameter name, so a command gets past its first check and the hostile
# value in another parameter is met deeper in.
GOOD: dict[str, list[str]] = {
    "product_code": ["LAP", "CABLE"],
    "code": ["PEN", "LAP"],
    "name": ["Pen"],
    "serial": ["LX-1", "LX-2"],
    "serials": ["LX-1", "LX-2", "LX-9"],
    "units": ["LAP/LX-1", "LAP/LX-2@1200"],
    "items": ["CABLE", "CABLEx2", "CABLE@4.50x3"],
    "old": ["LAP/LX-1"],
    "new": ["LAP/LX-2"],
    "invoice": ["INV-1", "INV-2"],
    "po": ["PO-1"],
    "number": ["C-1", "TR-1"],
    "ticket": ["R-1"],
    "claim": ["W-1"],
    "document": ["D-1"],
    "notice": ["RC-1"],
    "supplier": ["Acme"],
    "customer": ["Bo"],
    "manager": ["Max"],
    "technician": ["Tia"],
    "price": ["12.50"],
    "cost": ["800"],
    "quantity": ["1", "2"],
    "branch": ["B1", "B2"],
    "to_branch": ["B2"],
    "terminal": ["T9"],
    "lines": ["mainboard:180.00:part:defect"],
    "status": ["diagnosed", "qc_passed"],
    "event": ["0" * 32],
    "limit": ["10"],
    "lot": ["L1"],
}
DEFAULT_GOOD = ["X1", "ok"]

# Commands that do not take values into the ledger (servers, hardware, HQ, set-up) are
# fuzzed where they live; these are the ledger's and its reports'.
SKIP = {
    "bench",
    "demo",
    "run",
    "screen",
    "hq",
    "provision",
    "devices",
    "doctor",
    "config",
    "import",
    "export",  # writes the files it is told to: fuzzed in a folder of its own (test_epcis_export)
}


def ledger_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if not prefix and name in SKIP:
            continue
        if isinstance(command, click.Group):
            yield from ledger_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


def command_of(path: tuple[str, ...]) -> click.Command:
    command: click.Command = build()
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@contextmanager
def bounded(seconds: int = BOUND_S) -> Iterator[None]:
    """Fail instead of hanging when the body takes longer than `seconds`."""

    def timed_out(*_: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def stocked_ledger(path: Path) -> None:
    ledger = Ledger.create(path, terminal="T1", branch="B1")
    ledger.define_product("LAP", "Laptop", actor="setup", price_cents=129900, warranty_months=24)
    ledger.define_product("CABLE", "Cable", actor="setup", serial_tracked=False, price_cents=450)
    ledger.receive("PO-0", "Acme", "LAP", ["LX-1", "LX-2", "LX-3"], actor="setup")
    ledger.close()


def assert_ledger_clean(path: Path) -> None:
    """Everything the ledger holds is of its kind, whatever the commands did to it."""
    ledger = Ledger.open(path)
    try:
        db = ledger.db
        for code, name, price in db.execute("SELECT code, name, price_cents FROM products"):
            assert IDENTIFIER.problem(code) is None and NAME.problem(name) is None, (code, name)
            assert 0 <= price <= MAX_CENTS
        for kind, number in db.execute("SELECT type, number FROM documents"):
            assert IDENTIFIER.problem(number) is None, (kind, number)
        for branch, cost in db.execute("SELECT branch, cost_cents FROM units"):
            assert IDENTIFIER.problem(branch) is None and 0 <= (cost or 0) <= MAX_CENTS
        for (text,) in db.execute("SELECT body FROM events"):
            body = EventBody.parse(text)
            data = json.loads(text)
            assert NAME.problem(data["actor"]) is None, data["actor"]
            for key, value in body.data.items():
                if key.endswith("_cents") and isinstance(value, int):
                    assert 0 <= value <= MAX_CENTS, (key, value)
                if key == "quantity":
                    assert 1 <= value <= 100_000
                if isinstance(value, str):
                    assert NOTE.problem(value) is None, (key, value[:50])
    finally:
        ledger.close()


def argv_for(command: click.Command, draw: st.DrawFn) -> list[str]:
    options: list[str] = []
    arguments: list[str] = []
    for param in command.params:
        if param.name in ("as_json", "actor") or param.name is None:
            continue
        if isinstance(param.type, click.Choice) and not param.multiple:
            values: list[str] = [draw(st.sampled_from([*map(str, param.type.choices), "nope"]))]
        elif getattr(param, "is_flag", False):
            if draw(st.booleans()):
                options.append(param.opts[0])
            continue
        else:
            good = GOOD.get(param.name, DEFAULT_GOOD)
            one = st.one_of(st.sampled_from(good), HOSTILE)
            many = param.multiple or (isinstance(param, click.Argument) and param.nargs == -1)
            if not param.required and not many and draw(st.booleans()):
                continue
            values = draw(st.lists(one, min_size=1, max_size=3)) if many else [draw(one)]
        if isinstance(param, click.Argument):
            arguments += values
        else:
            for value in values:
                options += [param.opts[0], value]
    return [*options, "--", *arguments] if arguments else options


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stocked ledger (checkpointed: one file) to copy for a test that needs its own."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    stocked_ledger(path)
    return path


@pytest.fixture(scope="module")
def fuzz_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "ledger.db"
    stocked_ledger(path)
    return path


@pytest.mark.parametrize("path", list(ledger_commands(build())), ids=" ".join)
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_value_on_the_command_line_gives_a_traceback_or_gets_in_unchecked(
    fuzz_ledger: Path, path: tuple[str, ...], data: st.DataObject
) -> None:
    argv = [*path, *argv_for(command_of(path), data.draw)]
    with bounded():
        result = CliRunner().invoke(
            build(), ["--db", str(fuzz_ledger), *argv], env={"POSD_ACTOR": "clerk"}
        )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"posd {argv!r} raised") from result.exception
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), (argv, result.exit_code, result.output)
    if result.exit_code == 0:
        assert_ledger_clean(fuzz_ledger)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actor=HOSTILE)
def test_a_hostile_actor_is_refused_by_every_writing_command(template: Path, actor: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.db"
        copy_ledger(template, path)
        argv = ["--db", str(path), "sell", "LAP/LX-1", "--invoice", "INV-1", "--customer", "Bo"]
        with bounded():
            result = CliRunner().invoke(build(), [*argv, "--actor", actor])
        assert result.exception is None or isinstance(result.exception, SystemExit)
        if NAME.problem(actor) is not None:
            assert result.exit_code != 0
        assert_ledger_clean(path)


# ---------------------------------------------------------------- CSV rows

COLUMNS = ["serial", "product", "po", "supplier", "branch", "cost", "received_on", "lot", "expiry"]
GOOD_CELLS = {
    "serial": ["SN-1", "SN-2", "SN-3"],
    "product": ["LAP"],
    "po": ["PO-1"],
    "supplier": ["Acme"],
    "branch": ["B1"],
    "cost": ["812.40", "0"],
    "received_on": ["2026-11-20"],
    "lot": ["L1", ""],
    "expiry": ["2027-01-31", ""],
}


@st.composite
def csv_files(draw: st.DrawFn) -> str:
    header = draw(
        st.one_of(
            st.just(COLUMNS[:6]),
            st.just(COLUMNS),
            st.permutations(COLUMNS[:6]),
            st.lists(st.sampled_from([*COLUMNS, "colour", ""]), max_size=9),
        )
    )
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        row = [
            draw(st.one_of(st.sampled_from(GOOD_CELLS.get(name, ["x"])), HOSTILE))
            for name in header
        ]
        if draw(st.integers(0, 9)) == 0:
            row = row[: draw(st.integers(0, len(row)))]  # a short row
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


@settings(max_examples=150, deadline=None)
@given(csv_files())
def test_no_csv_row_gives_a_traceback_or_a_half_import_or_gets_in_unchecked(text: str) -> None:
    ledger = Ledger.create(None, terminal="T1", branch="B1")
    ledger.define_product("LAP", "Laptop", actor="setup")
    before = ledger.db.execute("SELECT count(*) FROM events").fetchone()[0]
    with bounded():
        try:
            report = import_csv(ledger, io.StringIO(text), actor="clerk")
        except Refusal as refusal:
            assert refusal.problems and all(str(p) for p in refusal.problems)
            after = ledger.db.execute("SELECT count(*) FROM events").fetchone()[0]
            assert after == before  # all rows or none
            return
    assert report.units == ledger.db.execute("SELECT count(*) FROM units").fetchone()[0]
    for po, supplier, branch, cost in ledger.db.execute(
        "SELECT po, supplier, branch, cost_cents FROM units"
    ):
        assert IDENTIFIER.problem(po) is None and IDENTIFIER.problem(branch) is None
        assert NAME.problem(supplier) is None and 0 <= cost <= MAX_CENTS


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400))
def test_no_file_given_to_posd_import_gives_a_traceback(template: Path, data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.db"
        copy_ledger(template, path)
        source = Path(folder) / "rows.csv"
        source.write_bytes(b"serial,product,po,supplier,branch,cost\n" + data)
        with bounded():
            result = CliRunner().invoke(build(), ["--db", str(path), "import", str(source)])
        assert result.exception is None or isinstance(result.exception, SystemExit), data
        assert result.exit_code in (0, 1, 2)
        assert_ledger_clean(path)


# ---------------------------------------------------------------- configuration files

EXAMPLE = tomllib.loads((ROOT / "systemd/posd.toml.example").read_text())
# Keys whose accepted values must be of a kind posd checks (the silent acceptance a fuzzer
# would find): where each is read from an accepted configuration.
TYPED_KEYS = {
    ("terminal", "branch"): (IDENTIFIER, lambda c: c.terminal.branch),
    ("terminal", "store_name"): (NAME, lambda c: c.terminal.store_name),
    ("terminal", "operator"): (NAME, lambda c: c.terminal.operator),
    ("replication", "username"): (
        IDENTIFIER,
        lambda c: c.replication.username if c.replication else None,
    ),
}


def key_paths(
    table: dict[str, Any], prefix: tuple[str | int, ...] = ()
) -> list[tuple[str | int, ...]]:
    paths: list[tuple[str | int, ...]] = []
    for key, value in table.items():
        here = (*prefix, key)
        paths.append(here)
        if isinstance(value, dict):
            paths += key_paths(value, here)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for index, item in enumerate(value):
                paths += key_paths(item, (*here, index))
    return paths


def with_value(data: dict[str, Any], path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    copy = json.loads(json.dumps(data))
    table: Any = copy
    for part in path[:-1]:
        table = table[part]
    table[path[-1]] = value
    return copy


CONFIG_VALUES = st.one_of(
    HOSTILE,
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(HOSTILE, max_size=3),
    st.dictionaries(st.sampled_from(["a", "kind", "port"]), HOSTILE, max_size=2),
)


@settings(max_examples=500, deadline=None)
@given(path=st.sampled_from(key_paths(EXAMPLE)), value=CONFIG_VALUES)
def test_no_value_of_any_config_key_gives_a_traceback_or_gets_in_unchecked(
    path: tuple[str | int, ...], value: object
) -> None:
    data = with_value(EXAMPLE, path, value)
    with bounded():
        try:
            config = parse_config(data, "posd.toml")
        except ConfigFileError as error:
            assert error.problems and all(problem for problem in error.problems)
            return
    assert isinstance(config, PosdConfig)
    typed = TYPED_KEYS.get(tuple(str(p) for p in path))  # type: ignore[arg-type]
    if typed is not None:
        kind, read = typed
        accepted = read(config)
        assert accepted is None or kind.problem(accepted) is None, (path, value)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_no_config_file_gives_a_traceback(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "posd.toml"
        path.write_bytes(data)
        with bounded():
            with suppress(ConfigFileError):
                load_config(path)
            result = CliRunner().invoke(build(), ["config", "check", str(path)])
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
