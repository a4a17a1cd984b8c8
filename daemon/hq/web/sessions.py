"""Sign-ins: server-side sessions, and a brake on password guessing.

A browser that signs in gets a random token in an HttpOnly, SameSite=Strict
cookie; HQ's database keeps only the token's SHA-256, with the user, the CSRF
token that user's forms carry, and when it was made and last used. Signing out,
removing the user, or the session going idle or old ends it: the row is what
counts, so a copied cookie dies with it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from daemon.hq.backend import Backend, Tx
from daemon.hq.users import Role, User
from daemon.ledger.remote import Sql
from daemon.rules.attempts import Attempt, AttemptBook, key_of


@dataclass(frozen=True)
class SessionPolicy:
    idle_s: float = 8 * 3600.0  # unused this long: signed out
    max_age_s: float = 24 * 3600.0  # signed in this long: signed out
    touch_s: float = 60.0  # record use at most this often


@dataclass(frozen=True)
class WebSession:
    token_hash: str
    user: User
    csrf: str
    created_s: float
    seen_s: float
    flash: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(backend: Backend, user: User, now: float, policy: SessionPolicy) -> str:
    """A new session for `user`; returns the cookie's token. Ended sessions are
    cleared out on the way."""
    token = secrets.token_urlsafe(32)

    def work(tx: Tx) -> None:
        tx.execute(
            "DELETE FROM hq_web_sessions WHERE seen_s < ? OR created_s < ?",
            [now - policy.idle_s, now - policy.max_age_s],
        )
        tx.execute(
            "INSERT INTO hq_web_sessions (token_hash, user_name, csrf, created_s, seen_s)"
            " VALUES (?, ?, ?, ?, ?)",
            [token_hash(token), user.name, secrets.token_urlsafe(32), now, now],
        )

    backend.run(work)
    return token


def find_session(db: Sql, token: str, now: float, policy: SessionPolicy) -> WebSession | None:
    """The live session the token names (with its user as they are now), or None."""
    row = db.execute(
        "SELECT s.token_hash, s.csrf, s.created_s, s.seen_s, s.flash, u.name, u.role,"
        " u.created_at FROM hq_web_sessions s JOIN hq_users u ON u.name = s.user_name"
        " WHERE s.token_hash = ?",
        [token_hash(token)],
    ).fetchone()
    if row is None:
        return None
    session = _session(row)
    if now - session.seen_s > policy.idle_s or now - session.created_s > policy.max_age_s:
        return None
    return session


def _session(row: Any) -> WebSession:
    user = User(str(row[5]), Role(row[6]), str(row[7]))
    return WebSession(str(row[0]), user, str(row[1]), float(row[2]), float(row[3]), row[4])


def touch(backend: Backend, session: WebSession, now: float) -> None:
    backend.run(
        lambda tx: tx.execute(
            "UPDATE hq_web_sessions SET seen_s = ? WHERE token_hash = ?", [now, session.token_hash]
        )
    )


def set_flash(backend: Backend, session: WebSession, message: str | None) -> None:
    """A message for the session's next page (or none)."""
    backend.run(
        lambda tx: tx.execute(
            "UPDATE hq_web_sessions SET flash = ? WHERE token_hash = ?",
            [message, session.token_hash],
        )
    )


def end_session(backend: Backend, session: WebSession) -> None:
    backend.run(
        lambda tx: tx.execute(
            "DELETE FROM hq_web_sessions WHERE token_hash = ?", [session.token_hash]
        )
    )


class LoginThrottle:
    """At most `attempts` sign-ins per user name from one address, `per_address` from
    one address for any names, and `per_user` for one name from all addresses, within
    `window_s` (wall-clock seconds); past any of them, that name or address is refused
    until the oldest attempt leaves the window.

    Every attempt is counted in HQ's database *before* the password's hash runs, in the
    same transaction that checks the limits (`reserve`), so a burst of a thousand
    sign-ins at once meets the limit after `attempts` of them, and a restart of the
    dashboard (or another dashboard process on the same database) knows them all. A
    right password takes back its own attempt and that user's failures from that
    address (`release`), never anybody else's."""

    def __init__(
        self,
        attempts: int = 5,
        per_address: int = 20,
        window_s: float = 900.0,
        per_user: int | None = None,
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.limits = {
            "pair": attempts,
            "source": per_address,
            "user": per_address if per_user is None else per_user,
        }

    def reserve(self, backend: Backend, address: str, name: str, attempt: str, now: float) -> float:
        """Count `attempt` before its hash runs: 0.0 when counted (check it now), else
        the seconds to wait (nothing counted)."""
        keys = self.keys(address, name)
        wanted = [key_of(scope, value) for scope, value in keys.items()]

        def work(tx: Tx) -> float:
            if backend.kind == "postgresql":  # one dashboard process at a time, as SQLite's
                tx.execute("SELECT pg_advisory_xact_lock(?)", [_ATTEMPTS_LOCK])
            tx.execute("DELETE FROM hq_login_attempts WHERE at <= ?", [now - self.window_s])
            rows = tx.execute(
                "SELECT key, at, attempt FROM hq_login_attempts WHERE key IN (?, ?, ?) ORDER BY at",
                wanted,
            ).fetchall()
            book = AttemptBook(self.window_s, self.limits)
            book.restore(Attempt(str(r[0]), float(r[1]), str(r[2])) for r in rows)
            wait = book.reserve(keys, attempt, now)
            if wait == 0:
                tx.executemany(
                    "INSERT INTO hq_login_attempts (key, at, attempt) VALUES (?, ?, ?)",
                    [(key, now, attempt) for key in wanted],
                )
            return wait

        return backend.run(work)

    def release(self, backend: Backend, address: str, name: str, attempt: str) -> None:
        """The password of `attempt` was right: it and that user's failures from that
        address no longer count (the address's and other users' still do)."""
        pair = key_of("pair", self.keys(address, name)["pair"])

        def work(tx: Tx) -> None:
            tx.execute("DELETE FROM hq_login_attempts WHERE attempt = ?", [attempt])
            tx.execute("DELETE FROM hq_login_attempts WHERE key = ?", [pair])

        backend.run(work)

    @staticmethod
    def keys(address: str, name: str) -> dict[str, str]:
        user = name.lower()[:_NAME_CAP]
        return {"pair": f"{address} {user}", "source": address, "user": user}


_NAME_CAP = 100  # longer names are nobody's (user names have 64 characters at most)
_ATTEMPTS_LOCK = 0x706F7364  # "posd": the advisory lock guarding hq_login_attempts
