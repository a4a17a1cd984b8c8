"""Dashboard users from the command line (`posd hq user`, `posd hq web`), their
passwords, and the brake on guessing them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from daemon.cli import build
from daemon.hq.backend import SqliteBackend
from daemon.hq.users import hash_password, verify_password
from daemon.hq.web.sessions import LoginThrottle
from tests.mqtt_broker import wait_until


def posd(*args: str, code: int = 0, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(build(), list(args), input=stdin)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def hq_db(tmp_path: Path) -> Path:
    path = tmp_path / "hq.db"
    SqliteBackend(path).close()
    return path


def test_adding_listing_and_removing_users(hq_db: Path, tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("a long enough password\n", encoding="utf-8")
    db = ("hq", "--db", str(hq_db), "user")
    added = posd(*db, "add", "olga", "--role", "manager", "--password-file", str(secret))
    assert added.output.strip() == "user olga added as manager"
    posd(*db, "add", "victor", "--role", "viewer", stdin="another long one\nanother long one\n")
    listed = json.loads(posd(*db, "list", "--json").output)["users"]
    assert [(u["name"], u["role"]) for u in listed] == [("olga", "manager"), ("victor", "viewer")]
    again = posd(*db, "add", "olga", "--role", "viewer", "--password-file", str(secret), code=1)
    assert "user 'olga' already exists; remove it first" in again.output
    assert posd(*db, "remove", "victor").output.strip() == "user victor removed and signed out"
    assert "victor" not in posd(*db, "list").output
    gone = posd(*db, "remove", "victor", code=1)
    assert "there is no user 'victor'" in gone.output


@pytest.mark.parametrize(
    ("name", "password", "message"),
    [
        ("ann", "short", "a password needs at least 10 characters; this one has 5"),
        ("ann lee", "long enough password", "user name 'ann lee' cannot be used"),
    ],
)
def test_a_user_that_cannot_be_added_says_why(
    hq_db: Path, tmp_path: Path, name: str, password: str, message: str
) -> None:
    secret = tmp_path / "password"
    secret.write_text(password, encoding="utf-8")
    refused = posd(
        "hq", "--db", str(hq_db), "user", "add", name, "--role", "viewer",
        "--password-file", str(secret), code=1,
    )  # fmt: skip
    assert message in refused.output


def test_the_commands_refuse_a_missing_database_and_a_bad_address(tmp_path: Path) -> None:
    missing = posd("hq", "--db", str(tmp_path / "nope.db"), "user", "list", code=1)
    assert f"no HQ database at {tmp_path / 'nope.db'}" in missing.output
    assert not (tmp_path / "nope.db").exists()
    bad = posd("hq", "web", "--db", str(tmp_path / "x.db"), "--listen", "8080", code=2)
    assert "'8080' is not HOST:PORT" in bad.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_posd_hq_web_serves_the_dashboard(hq_db: Path) -> None:
    port = free_port()
    command = ["hq", "--db", str(hq_db), "web", "--listen", f"127.0.0.1:{port}"]
    server = subprocess.Popen(
        [sys.executable, "-c", "from daemon.cli import main; main()", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as page:
                    return "Sign in" in page.read().decode()
            except OSError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                return False

        wait_until(answers, what="the dashboard to answer")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)


def test_passwords_are_stored_as_scrypt_hashes() -> None:
    stored = hash_password("a long enough password")
    assert stored.startswith("scrypt$32768$8$1$") and "a long enough password" not in stored
    assert verify_password("a long enough password", stored)
    assert not verify_password("a long enough passwore", stored)
    assert hash_password("a long enough password") != stored  # a fresh salt each time
    assert not verify_password("x", "plain-text-password")


def test_guessing_is_stopped_per_name_per_address_and_per_name_everywhere(
    tmp_path: Path,
) -> None:
    from daemon.hq.users import ensure_tables

    backend = SqliteBackend(str(tmp_path / "hq.db"))
    ensure_tables(backend)
    brake = LoginThrottle(attempts=3, per_address=5, window_s=600, per_user=4)
    tries = iter(range(1000))

    def wait(address: str, name: str, now: float) -> float:
        return brake.reserve(backend, address, name, f"#{next(tries)}", now)

    for at in range(3):
        assert wait("10.0.0.1", "olga", at) == 0
    assert wait("10.0.0.1", "OLGA", 10) == 590
    assert wait("10.0.0.2", "olga", 10) == 0  # another address may still try …
    assert wait("10.0.0.3", "olga", 10) == 590  # … but not a fifth time for one name
    assert wait("10.0.0.1", "victor", 11) == 0
    assert wait("10.0.0.1", "sam", 12) == 0
    assert wait("10.0.0.1", "ann", 13) == 587  # five from one address
    assert wait("10.0.0.1", "olga", 600) == 0  # the window has passed
    backend.close()
