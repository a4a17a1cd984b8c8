"""A ledger file that is not a usable ledger (empty, garbage, truncated, another
program's database, a WAL that no longer belongs to it, its newest events gone) gets
one clear message and exit status from every command, never a traceback, and nothing
is written to it; `posd run` and `posd doctor` refuse it and say why."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.ledger import Ledger, SaleLine
from daemon.ledger.head import head_path
from simulators.lane import to_toml
from tests.ledger_fixtures import copy_ledger, make_ledger

EX_DATAERR = 65
POSD = str(Path(sys.executable).with_name("posd"))


def stock(path: Path) -> Ledger:
    ledger = make_ledger(path)
    ledger.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(1, 6)], actor="ann")
    ledger.sell("INV-1", "Dana", [SaleLine("LAP", "LX-2", 129900)], actor="bob")
    return ledger


def crashed(folder: Path, name: str = "live") -> Path:
    """The files of a ledger as a crash leaves them: its commits still in the WAL."""
    live = folder / name
    live.mkdir()
    ledger = stock(live / "ledger.db")
    for suffix in ("", "-wal", ".head"):
        source = live / f"ledger.db{suffix}"
        shutil.copyfile(source, folder / f"{name}-copy.db{suffix}")
    ledger.close()
    return folder / f"{name}-copy.db"


def _garbage(size: int, header: bytes = b"") -> bytes:
    return header + random.Random(size).randbytes(size - len(header))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def garbage(path: Path) -> None:
    path.write_bytes(_garbage(40_000))


def garbage_after_a_sqlite_header(path: Path) -> None:
    path.write_bytes(_garbage(40_000, b"SQLite format 3\x00"))


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def pages_overwritten(path: Path) -> None:
    """Everything after the first page (the schema) overwritten, as a failing card would."""
    size = path.stat().st_size
    with path.open("r+b") as stream:
        stream.seek(16384)
        stream.write(_garbage(size - 16384))


def another_programs_database(path: Path) -> None:
    path.unlink()
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
        conn.execute("INSERT INTO contacts VALUES ('Ann', '555')")
    conn.close()


def newest_events_deleted(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TRIGGER events_no_delete;"
        "DELETE FROM events WHERE seq > (SELECT max(seq) - 2 FROM events);"
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN"
        " SELECT RAISE(ABORT, 'append-only'); END;"
    )
    conn.close()


def wal_of_another_ledger(path: Path) -> None:
    other = crashed(path.parent, "other")
    shutil.copyfile(f"{other}-wal", f"{path}-wal")


def wal_cut_short(path: Path) -> None:
    wal = Path(f"{path}-wal")
    os.truncate(wal, wal.stat().st_size - 1000)  # the last commit's frame, torn


def wal_garbage(path: Path) -> None:
    wal = Path(f"{path}-wal")
    wal.write_bytes(_garbage(wal.stat().st_size))


# (how the file is damaged, whether it starts from a crashed ledger, words the message has)
DAMAGES: list[tuple[Callable[[Path], None], bool, str]] = [
    (empty, False, "is empty (0 bytes)"),
    (garbage, False, "is not a SQLite database"),
    (garbage_after_a_sqlite_header, False, "cannot be read"),
    (truncated, False, "is truncated"),
    (pages_overwritten, False, "cannot be read"),
    (another_programs_database, False, "not a posd ledger"),
    (newest_events_deleted, False, "2 newest event(s) deleted"),
    (wal_of_another_ledger, True, "the ledger file was replaced"),
    (wal_cut_short, True, "newest event(s) deleted or lost"),
    (wal_garbage, True, "its WAL file no longer belongs to it"),
]

COMMANDS: list[list[str]] = [
    ["unit", "LX-1"],
    ["search", "--serial", "LX-1"],
    ["counts"],
    ["product", "list", "--json"],
    ["sell", "LAP/LX-1", "--invoice", "INV-9", "--customer", "Bo", "--actor", "bob"],
    ["receive", "LX-9", "--po", "PO-9", "--supplier", "Acme", "--product", "LAP"],
    ["transfer", "out", "LX-3", "--transfer", "TR-9", "--to", "B2", "--product", "LAP"],
    ["report", "supplier-failure"],
    ["audit", "verify"],
    ["audit", "verify", "--replay", "--json"],
]


def damaged(tmp_path: Path, damage: Callable[[Path], None], from_crash: bool) -> Path:
    if from_crash:
        path = crashed(tmp_path)
    else:
        path = tmp_path / "ledger.db"
        stock(path).close()
    damage(path)
    return path


def files_of(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.parent.glob(f"{path.name}*"))}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize(
    ("damage", "from_crash", "says"), DAMAGES, ids=lambda d: getattr(d, "__name__", "")
)
def test_every_command_refuses_a_damaged_ledger_in_one_sentence(
    tmp_path: Path,
    command: list[str],
    damage: Callable[[Path], None],
    from_crash: bool,
    says: str,
) -> None:
    path = damaged(tmp_path, damage, from_crash)
    before = files_of(path) if not from_crash else None
    result = CliRunner().invoke(build(), ["--db", str(path), *command])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    if command[0] == "audit" and result.exit_code == 1:
        # verify says what it found in the file (a shortened chain) rather than refuse
        assert "TAMPERED" in result.output or '"ok": false' in result.output
    else:
        assert result.exit_code == EX_DATAERR, result.output
    assert says in result.output
    if before is not None:
        assert files_of(path) == before  # nothing migrated, converted or repaired


def write_config(folder: Path, ledger: Path) -> Path:
    config = folder / "posd.toml"
    config.write_text(
        to_toml(
            {
                "terminal": {"id": "T1", "branch": "B1", "store_name": "Test"},
                "ledger": {"path": str(ledger)},
                "api": {"port": 0},
            }
        )
    )
    return config


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damage", "from_crash", "says"), DAMAGES, ids=lambda d: getattr(d, "__name__", "")
)
def test_posd_run_refuses_to_start_on_a_damaged_ledger_and_says_why(
    tmp_path: Path, damage: Callable[[Path], None], from_crash: bool, says: str
) -> None:
    path = damaged(tmp_path, damage, from_crash)
    config = write_config(tmp_path, path)
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    run = subprocess.run(
        [POSD, "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert run.returncode == EX_DATAERR, run.stderr
    assert "Traceback" not in run.stderr
    assert "cannot start" in run.stderr and says in run.stderr
    doctor = subprocess.run(
        [POSD, "doctor", "--config", str(config), "--no-scan"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert "Traceback" not in doctor.stdout + doctor.stderr
    assert doctor.returncode != 0


def test_a_ledger_with_its_head_record_opens_and_a_fresh_one_gets_one(tmp_path: Path) -> None:
    """The checks refuse nothing sound: a closed ledger, a crashed one, a ledger made
    before head records were kept (it gets one at its next opening)."""
    path = tmp_path / "ledger.db"
    stock(path).close()
    Ledger.open(path).close()
    Ledger.open(crashed(tmp_path)).close()
    head_path(path).unlink()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'head_record'")
    conn.close()
    Ledger.open(path).close()
    assert head_path(path).exists()
    result = CliRunner().invoke(build(), ["--db", str(path), "audit", "verify"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "command",
    [
        ["search", "--serial", "LX-1"],
        ["unit", "LX-1"],
        ["sell", "LAP/LX-1", "--invoice", "I-9", "--customer", "Bo"],
    ],
    ids=lambda c: c[0],
)
def test_damage_found_deep_in_the_file_is_said_once_too(tmp_path: Path, command: list[str]) -> None:
    """Damage the opening checks cannot see (an index page) still ends in the one
    message and exit status, where the command meets it."""
    path = tmp_path / "ledger.db"
    stock(path).close()
    with sqlite3.connect(path) as conn:
        page = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'units_key'"
        ).fetchone()[0]
    conn.close()
    with path.open("r+b") as stream:
        stream.seek((page - 1) * 16384)
        stream.write(_garbage(16384))
    result = CliRunner().invoke(build(), ["--db", str(path), *command])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == EX_DATAERR, result.output
    assert f"the ledger {path} cannot be read (database disk image is malformed)" in result.output


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    where=st.floats(min_value=0.0, max_value=1.0),
    spoil=st.binary(min_size=1, max_size=4096),
    command=st.sampled_from(COMMANDS),
)
def test_no_damage_anywhere_in_the_file_gives_a_traceback(
    template: Path, where: float, spoil: bytes, command: list[str]
) -> None:
    """Bytes overwritten anywhere: each command answers (0), reports what it found (1)
    or refuses the file (65), never with a traceback."""
    with tempfile.TemporaryDirectory() as folder:
        path = copy_ledger(template, Path(folder) / "ledger.db")
        with path.open("r+b") as stream:
            stream.seek(int(where * (path.stat().st_size - 1)))
            stream.write(spoil)
        result = CliRunner().invoke(build(), ["--db", str(path), *command])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.output,
            result.exc_info,
        )
        assert result.exit_code in (0, 1, EX_DATAERR), result.output


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    stock(path).close()
    return path
