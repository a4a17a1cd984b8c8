"""Counting guesses (PINs, passwords) so that a burst cannot beat the limit.

    book = AttemptBook(window_s=300, limits={"source": 5})
    wait = book.reserve({"source": "127.0.0.1"}, "a1", now)
    if wait == 0:               # the attempt is counted already: now run the slow check
        if correct:
            book.release("a1")  # only this attempt's own record goes

An attempt is counted *before* the slow hash runs, as if it will fail; a correct answer
takes back its own record and nothing else, so a correct PIN or password never wipes
anybody else's failures. A thousand guesses at once therefore meet the limit after
`limit` of them, whatever order their hashes finish in.

Each attempt is counted under several keys, one per scope (the user tried, the source
address, the pair), each scope with its own limit; while any of its keys is at its limit
an attempt is refused. Records are kept for `window_s` (wall-clock seconds, so that they
mean the same after a restart); a record stamped in the future (the clock was set back)
counts as made now, so a lock-out never lasts longer than one window.

Pure: the caller passes the time in and keeps the records (`records()` / `restore`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Attempt:
    """One counted attempt under one key: when, and which attempt (to take it back)."""

    key: str  # "scope:value", e.g. "source:127.0.0.1"
    at: float  # wall-clock seconds
    attempt: str


class AttemptBook:
    """The attempts of the last `window_s` seconds, by key; `limits` per scope."""

    def __init__(self, window_s: float, limits: Mapping[str, int]) -> None:
        if window_s <= 0 or not limits or min(limits.values()) < 1:
            raise ValueError("a window above 0 and at least one limit of 1 or more")
        self.window_s = window_s
        self.limits = dict(limits)
        self._by_key: dict[str, list[Attempt]] = {}

    def wait_s(self, keys: Mapping[str, str], now: float) -> float:
        """Seconds until an attempt under `keys` (scope -> value) may be made (0: now)."""
        wait = 0.0
        for scope, value in keys.items():
            limit = self.limits[scope]
            held = self._live(key_of(scope, value), now)
            if len(held) >= limit:
                oldest = min(held[-limit].at, now)
                wait = max(wait, oldest + self.window_s - now)
        return wait

    def reserve(self, keys: Mapping[str, str], attempt: str, now: float) -> float:
        """Count `attempt` under every key, unless one is at its limit: 0.0 when it was
        counted (go on and check it), else the seconds to wait (nothing counted)."""
        wait = self.wait_s(keys, now)
        if wait > 0:
            return wait
        for scope, value in keys.items():
            key = key_of(scope, value)
            self._by_key.setdefault(key, []).append(Attempt(key, now, attempt))
        return 0.0

    def release(self, attempt: str) -> None:
        """A correct answer: take back `attempt`'s own records, no others."""
        for key in list(self._by_key):
            kept = [a for a in self._by_key[key] if a.attempt != attempt]
            if kept:
                self._by_key[key] = kept
            else:
                del self._by_key[key]

    def forget(self, keys: Mapping[str, str]) -> None:
        """Drop every record under these exact keys (a user's own failures, say)."""
        for scope, value in keys.items():
            self._by_key.pop(key_of(scope, value), None)

    def records(self, now: float) -> list[Attempt]:
        """Every record still inside the window, oldest first (what to keep)."""
        live = [a for key in list(self._by_key) for a in self._live(key, now)]
        return sorted(live, key=lambda a: a.at)

    def restore(self, records: Iterable[Attempt]) -> None:
        """Take back the records `records` gave (after a restart)."""
        for record in records:
            self._by_key.setdefault(record.key, []).append(record)

    def _live(self, key: str, now: float) -> list[Attempt]:
        held = self._by_key.get(key)
        if held is None:
            return []
        live = [a for a in held if now - min(a.at, now) < self.window_s]
        if live:
            self._by_key[key] = live
        else:
            del self._by_key[key]
        return live


def key_of(scope: str, value: str) -> str:
    return f"{scope}:{value}"
