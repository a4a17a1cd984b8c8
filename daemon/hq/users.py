"""HQ dashboard users: a name, a role and a scrypt hash of the password.

    ensure_tables(backend)
    add_user(backend, "olga", Role.MANAGER, "a long passphrase", at="2026-11-23T09:00:00Z")
    found = find_user(reader, "olga")          # (User, stored hash) or None
    verify_password("a long passphrase", found[1])

A viewer sees everything; a manager also resolves conflicts and creates recalls.
Users live in HQ's own database (SQLite or PostgreSQL) next to the ledger, in
tables this module creates (`hq_users`, `hq_web_sessions` for sign-ins and
`hq_login_attempts` for the brake on guessing), so every dashboard process on one
database knows the same people, and the same guesses, also after a restart.

A hash reads `scrypt$N$r$p$salt$digest` (salt and digest in base64): the cost can
be raised later without breaking the hashes already stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from daemon.errors import HqError
from daemon.hq.backend import Backend, Tx
from daemon.ledger.remote import Sql

_N, _R, _P = 2**15, 8, 1
_DIGEST_BYTES = 32
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

TABLES = (
    """CREATE TABLE IF NOT EXISTS hq_users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        password TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    # A signed-in browser: the SHA-256 of its cookie's token (never the token), the
    # CSRF token its forms carry, and a message to show on its next page.
    """CREATE TABLE IF NOT EXISTS hq_web_sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_s DOUBLE PRECISION NOT NULL,
        seen_s DOUBLE PRECISION NOT NULL,
        flash TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS hq_web_sessions_user ON hq_web_sessions (user_name)",
    # Sign-in attempts of the last window, each under its keys (`source:…`, `user:…`,
    # `pair:…`): counted before the password's hash runs (`daemon.hq.web.sessions`).
    """CREATE TABLE IF NOT EXISTS hq_login_attempts (
        key TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        attempt TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS hq_login_attempts_key ON hq_login_attempts (key, at)",
)


class Role(StrEnum):
    VIEWER = "viewer"
    MANAGER = "manager"


class UserError(HqError, ValueError):
    """A user name, password or role that cannot be used; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created_at: str

    @property
    def is_manager(self) -> bool:
        return self.role is Role.MANAGER


def ensure_tables(backend: Backend) -> None:
    """Create the users and sessions tables if this HQ database lacks them."""

    def work(tx: Tx) -> None:
        for statement in TABLES:
            tx.execute(statement)

    backend.run(work)


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UserError(
            f"user name {name!r} cannot be used: use 1 to 64 letters, digits and . _ @ -,"
            " starting with a letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError(f"role {role!r} does not exist; choose manager or viewer") from None


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(
            f"a password needs at least {MIN_PASSWORD} characters; this one has {len(password)}"
        )
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password has at most {MAX_PASSWORD} characters")
    return password


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The line to store for `password` (scrypt, a fresh random salt unless given)."""
    salt = salt or os.urandom(16)
    digest = _scrypt(password, salt, _N, _R, _P, _DIGEST_BYTES)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash. Slow on purpose (scrypt): call it
    off the event loop. A malformed stored hash matches nothing."""
    parts = stored.split("$")
    try:
        if len(parts) != 6 or parts[0] != "scrypt":
            return False
        n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except ValueError:
        return False
    if n < 2**10 or n & (n - 1) or not salt or len(expected) < 16:
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * n * r
    )


def add_user(backend: Backend, name: str, role: Role, password: str, *, at: str) -> User:
    """Add a user; refuses a name that exists (remove that user first)."""
    check_name(name)
    check_password(password)
    stored = hash_password(password)

    def work(tx: Tx) -> bool:
        row = tx.execute(
            "INSERT INTO hq_users (name, role, password, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING RETURNING name",
            [name, role.value, stored, at],
        ).fetchone()
        return row is not None

    if not backend.run(work):
        raise UserError(
            f"user {name!r} already exists; remove it first with `posd hq user remove {name}`"
        )
    return User(name, role, at)


def remove_user(backend: Backend, name: str) -> None:
    """Remove a user and sign out every browser they are signed in on."""

    def work(tx: Tx) -> bool:
        row = tx.execute("DELETE FROM hq_users WHERE name = ? RETURNING name", [name]).fetchone()
        tx.execute("DELETE FROM hq_web_sessions WHERE user_name = ?", [name])
        return row is not None

    if not backend.run(work):
        raise UserError(f"there is no user {name!r}; `posd hq user list` shows who there is")


def list_users(db: Sql) -> list[User]:
    rows = db.execute("SELECT name, role, created_at FROM hq_users ORDER BY name").fetchall()
    return [_user(row) for row in rows]


def find_user(db: Sql, name: str) -> tuple[User, str] | None:
    """The user and their stored password hash."""
    row = db.execute(
        "SELECT name, role, created_at, password FROM hq_users WHERE name = ?", [name]
    ).fetchone()
    return None if row is None else (_user(row), str(row[3]))


def _user(row: Any) -> User:
    return User(str(row[0]), Role(row[1]), str(row[2]))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
