"""Who may read the ledger and the configuration: the service user only.

The ledger (and the -wal and -shm files SQLite keeps beside it) is 0600 whatever the
umask of whoever made it; the configuration is 0640 (root:posd on a terminal), the
broker password and client key 0600. Running provisioning again puts modes right.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import build
from daemon.lane.ledger import open_ledger
from daemon.ledger import Ledger, LedgerError


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask a shell commonly has."""
    previous = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_ledger_and_its_journal_files_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "ledger.db"
    ledger = Ledger.create(path, terminal="T1", branch="B1")
    ledger.define_product("LAP", "Laptop", actor="setup")
    ledger.receive("PO-1", "Acme", "LAP", ["SN-1"], actor="ann")
    try:
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
            assert mode_of(tmp_path / name) == 0o600, name
    finally:
        ledger.close()


def test_journal_files_made_later_by_the_lane_are_private_too(
    tmp_path: Path, open_umask: None
) -> None:
    path = tmp_path / "ledger.db"
    Ledger.create(path, terminal="T1", branch="B1").close()
    assert not (tmp_path / "ledger.db-wal").exists()  # closing folds the WAL back in
    lane = open_ledger(path)  # the daemon's own connection
    try:
        lane.define_product("LAP", "Laptop", actor="setup")
        assert mode_of(tmp_path / "ledger.db-wal") == 0o600
        assert mode_of(tmp_path / "ledger.db-shm") == 0o600
    finally:
        lane.close()


def test_posd_init_makes_a_private_ledger(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "state" / "ledger.db"
    result = CliRunner().invoke(
        build(), ["--db", str(path), "init", "--terminal", "T1", "--branch", "B1"]
    )
    assert result.exit_code == 0, result.output
    assert mode_of(path) == 0o600


def test_creating_a_ledger_where_one_exists_is_refused_and_leaves_it_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    first = Ledger.create(path, terminal="T1", branch="B1")
    epoch = first.epoch
    first.close()
    with pytest.raises(LedgerError, match=r"a ledger already exists at .*; open it instead"):
        Ledger.create(path, terminal="T2", branch="B1")
    with Ledger.open(path) as again:
        assert (again.terminal, again.epoch) == ("T1", epoch)


def test_provisioning_again_puts_loosened_modes_right(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "root"
    secret = tmp_path / "password"
    secret.write_text("pw-1\n")
    args = [
        "provision", "--root", str(root), "--terminal", "T1", "--branch", "B1",
        "--hq-url", "mqtt://127.0.0.1:1883", "--username", "T1",
        "--password-file", str(secret), "--yes",
    ]  # fmt: skip
    assert CliRunner().invoke(build(), args).exit_code == 0
    config_file = root / "etc/posd/posd.toml"
    password = root / "etc/posd/mqtt-password"
    state = root / "var/lib/posd"
    assert (mode_of(config_file), mode_of(password), mode_of(state)) == (0o640, 0o600, 0o700)
    for path in (config_file, password, state):
        path.chmod(0o777 if path.is_dir() else 0o666)  # someone was careless
    again = CliRunner().invoke(build(), args)
    assert again.exit_code == 0, again.output
    assert (mode_of(config_file), mode_of(password), mode_of(state)) == (0o640, 0o600, 0o700)
    assert mode_of(state / "ledger.db") == 0o600
