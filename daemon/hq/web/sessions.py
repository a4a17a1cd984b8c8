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
from collections import deque
from dataclasses import dataclass
from typing import Any

from daemon.hq.backend import Backend, Tx
from daemon.hq.users import Role, User
from daemon.ledger.remote import Sql


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
    """At most `attempts` failed sign-ins per user name from one address, and
    `per_address` from one address for any names, within `window_s`; after that,
    that address is refused until the window has passed. Time (monotonic seconds) is
    passed in."""

    def __init__(self, attempts: int = 5, per_address: int = 20, window_s: float = 900.0) -> None:
        self.attempts = attempts
        self.per_address = per_address
        self.window_s = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def wait_s(self, address: str, name: str, now: float) -> float:
        """Seconds until `name` may be tried again from `address` (0: now)."""
        waits = [
            self._wait((address, name.lower()), self.attempts, now),
            self._wait((address, ""), self.per_address, now),
        ]
        return max(waits)

    def failed(self, address: str, name: str, now: float) -> None:
        for key in ((address, name.lower()), (address, "")):
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, address: str, name: str) -> None:
        self._failures.pop((address, name.lower()), None)

    def _wait(self, key: tuple[str, str], limit: int, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        if len(times) < limit:
            return 0.0
        return times[-limit] + self.window_s - now
