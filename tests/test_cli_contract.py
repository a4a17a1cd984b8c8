"""One output contract for `posd`: exit statuses from the README's table, and with
`--json` one JSON object on standard output whatever happens, never a traceback."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.cli.exits import ExitStatus
from daemon.errors import PosdError

README = Path(__file__).resolve().parent.parent / "README.md"

# Commands that run until stopped, or act on this machine's devices and files: their
# arguments are not fuzzed (a bad option is still checked).
LONG_RUNNING = {
    "run",
    "demo",
    "bench",
    "hq run",
    "hq web",
    "screen wait",
    "provision",
    "doctor",
    "devices",
    "config hash-pin",
}


def all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += all_commands(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


COMMANDS = all_commands(build())


def readme_exit_table() -> dict[int, str]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| exit status | meaning |") :].split("\n\n")[0]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.MULTILINE)
    return {int(status): meaning for status, meaning in rows}


def test_the_readme_exit_table_is_the_codes_constants() -> None:
    assert sorted(readme_exit_table()) == sorted(s.value for s in ExitStatus)


def _subclasses(cls: type[PosdError]) -> list[type[PosdError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def test_every_error_exits_with_a_status_in_the_table() -> None:
    import daemon.cli.appliance_commands
    import daemon.config.model
    import daemon.hq.central
    import daemon.ledger
    import daemon.provision.plan  # noqa: F401  (their errors register as subclasses)

    table = readme_exit_table()
    for error in [PosdError, *_subclasses(PosdError)]:
        assert error.exit_status in table, f"{error.__name__} exits {error.exit_status}"


def posd(args: list[str], db: Path, hq: Path) -> Result:
    return CliRunner().invoke(
        build(),
        args,
        env={"POSD_DB": str(db), "POSD_HQ_DB": str(hq), "POSD_ACTOR": "clerk", "POSD_CONFIG": ""},
    )


def assert_json_contract(result: Result, args: list[str]) -> dict[str, object]:
    """One JSON object on standard output, an exit status from the table, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.exc_info,
    )
    assert result.exit_code in {s.value for s in ExitStatus}, (args, result.exit_code)
    assert result.exit_code != ExitStatus.INTERNAL, (args, result.stdout)  # a fault in posd
    try:
        payload = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"posd {' '.join(args)} printed no JSON: {result.output!r}")
    assert isinstance(payload, dict), args
    if result.exit_code == 0:
        assert payload.get("ok") is not False, (args, payload)
    else:
        assert payload["ok"] is False, (args, payload)
        error = payload["error"]
        assert isinstance(error["code"], str) and error["code"], (args, payload)
        assert isinstance(error["message"], str) and error["message"], (args, payload)
    return payload


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("contract")
    db, hq = where / "ledger.db", where / "hq.db"
    for args in (
        ["init", "--terminal", "T1", "--branch", "B1"],
        ["product", "add", "LAP", "Laptop", "--price", "10"],
        ["receive", "--po", "PO-1", "--supplier", "Acme", "--product", "LAP", "A-1", "A-2"],
        ["sell", "--invoice", "INV-1", "--customer", "Dana", "LAP/A-1"],
    ):
        assert posd(args, db, hq).exit_code == 0
    return db, hq


@pytest.mark.parametrize("name", [n for n, _ in COMMANDS])
def test_a_bad_option_is_a_json_usage_error_on_every_command(
    name: str, stocked: tuple[Path, Path]
) -> None:
    args = [*name.split(), "--no-such-option", "--json"]
    result = posd(args, *stocked)
    payload = assert_json_contract(result, args)
    assert result.exit_code == ExitStatus.USAGE
    assert payload["error"]["code"] == "usage"  # type: ignore[index]
    assert payload["error"]["message"].startswith("No such option '--no-such-option'.")  # type: ignore[index]


def test_a_missing_ledger_is_json_with_its_own_status(tmp_path: Path) -> None:
    args = ["unit", "A-1", "--json"]
    result = posd(args, tmp_path / "none.db", tmp_path / "hq.db")
    payload = assert_json_contract(result, args)
    assert result.exit_code == ExitStatus.NO_INPUT
    assert payload["error"]["code"] == "LedgerNotFound"  # type: ignore[index]


def test_a_refusal_is_json_with_the_refusal_and_its_problems(stocked: tuple[Path, Path]) -> None:
    args = ["sell", "--invoice", "INV-9", "--customer", "Sam", "LAP/A-1", "--json"]
    result = posd(args, *stocked)
    payload = assert_json_contract(result, args)
    assert result.exit_code == ExitStatus.REFUSED
    assert payload["error"]["code"] == payload["code"] == "already_sold"  # type: ignore[index]
    assert "A-1" in payload["error"]["message"] and payload["problems"]  # type: ignore[index]


def test_an_unknown_command_is_json_too(stocked: tuple[Path, Path]) -> None:
    result = posd(["sel", "--json"], *stocked)
    assert assert_json_contract(result, ["sel"])["error"]["code"] == "usage"  # type: ignore[index]


# `posd simulate` starts device simulators: its commands only in the bad-option test.
FUZZED = [(n, c) for n, c in COMMANDS if n not in LONG_RUNNING and not n.startswith("simulate")]
_WORDS = st.sampled_from(
    ["LAP", "A-1", "A-2", "LAP/A-1", "INV-1", "PO-1", "B1", "0", "-1", "1e9", "12.50", "x" * 70]
)
# A command line never holds a NUL (execve's arguments are C strings).
_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=0,
    max_size=12,
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    name, command = draw(st.sampled_from(FUZZED))
    options = [o for p in command.params for o in getattr(p, "opts", []) if o.startswith("--")]
    args = name.split()
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 2))
        if kind == 0 and options:
            args.append(draw(st.sampled_from(options)))
        args.append(draw(_WORDS if kind == 1 else _TEXT))
    args.append("--json")
    return args


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(args=command_lines())
def test_any_command_line_with_json_keeps_the_contract(
    args: list[str], stocked: tuple[Path, Path]
) -> None:
    assert_json_contract(posd(args, *stocked), args)


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(args=command_lines())
def test_any_command_line_in_text_exits_from_the_table_without_a_traceback(
    args: list[str], stocked: tuple[Path, Path]
) -> None:
    args = args[:-1]  # without --json
    result = posd(args, *stocked)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.exc_info,
    )
    assert result.exit_code in {s.value for s in ExitStatus}, (args, result.exit_code)
    assert "Traceback" not in result.output


def test_a_postgresql_dsn_that_is_not_one_is_a_message(stocked: tuple[Path, Path]) -> None:
    args = ["hq", "user", "list", "--pg", "0", "--json"]
    result = posd(args, *stocked)
    payload = assert_json_contract(result, args)
    assert result.exit_code == ExitStatus.REFUSED
    assert 'missing "=" after "0"' in payload["error"]["message"]  # type: ignore[index]
