"""How many wrong PINs the kiosk takes before it stops checking them for a while.

    guard = PinGuard(path=state_dir / "pin-attempts.json")   # attempts=5, window_s=300
    wait, attempt = await guard.reserve("127.0.0.1")
    if wait == 0:                          # counted (and on disk) before the slow hash
        if verify_pin(pin, stored):
            await guard.release(attempt)   # takes back this attempt only

Every PIN is counted before its scrypt hash runs, as if it were wrong, and written to
`path` (fsync'd, replaced atomically) before the hash starts: a burst of a thousand
guesses meets the limit after `attempts` of them, and a restart (or a crash in the
middle of a hash) does not give the guesser a fresh start. A PIN names nobody until it
has been checked, so a wrong one is nobody's in particular: a correct PIN takes back its
own attempt and never wipes out the failures before it. Attempts are counted per source
address (`attempts`) and for the whole kiosk (`2 * attempts`), over `window_s`
wall-clock seconds; once a key is at its limit every PIN, the right one too, is refused
until its oldest attempt leaves the window.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from daemon.rules.attempts import Attempt, AttemptBook

log = logging.getLogger(__name__)
FILE_NAME = "pin-attempts.json"
_FORMAT = 1


class PinGuard:
    """Wrong PINs at the kiosk: at most `attempts` from one source and `2 * attempts` in
    all within `window_s`; kept in `path` (None: in memory only) across restarts."""

    def __init__(
        self,
        attempts: int = 5,
        window_s: float = 300.0,
        *,
        path: Path | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.path = path
        self.wall = wall
        self.book = AttemptBook(window_s, {"source": attempts, "kiosk": 2 * attempts})
        self._lock = threading.Lock()
        self._made = 0  # generation of the newest snapshot taken
        self._written = 0  # generation of the newest snapshot on disk
        if path is not None:
            self.book.restore(_load(path))

    async def reserve(self, source: str) -> tuple[float, str]:
        """Count one PIN from `source` before it is checked: `(0.0, attempt)` when it may
        be checked (already counted and on disk), `(seconds to wait, "")` when not."""
        attempt = secrets.token_hex(8)
        wait = self.book.reserve(self._keys(source), attempt, self.wall())
        if wait > 0:
            return wait, ""
        await self._save()
        return 0.0, attempt

    async def release(self, attempt: str) -> None:
        """The PIN of `attempt` was right: it no longer counts."""
        self.book.release(attempt)
        await self._save()

    def blocked_for(self, source: str) -> float:
        """Seconds until a PIN from `source` may be tried again (0: now)."""
        return self.book.wait_s(self._keys(source), self.wall())

    def _keys(self, source: str) -> dict[str, str]:
        return {"source": source, "kiosk": "all"}

    async def _save(self) -> None:
        if self.path is None:
            return
        self._made += 1
        generation = self._made
        records = self.book.records(self.wall())
        content = json.dumps(
            {
                "format": _FORMAT,
                "attempts": [{"key": r.key, "at": r.at, "attempt": r.attempt} for r in records],
            }
        ).encode()
        path = self.path

        def write() -> None:
            with self._lock:
                if generation <= self._written:
                    return  # a newer snapshot (holding this one's attempts) is on disk
                _write_durably(path, content)
                self._written = generation

        await asyncio.get_running_loop().run_in_executor(None, write)


def _load(path: Path) -> list[Attempt]:
    try:
        data = json.loads(path.read_bytes())
        return [Attempt(str(a["key"]), float(a["at"]), str(a["attempt"])) for a in data["attempts"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as error:
        # Written atomically, so only an outside hand damages it: start counting afresh,
        # but say so.
        log.warning("PIN attempts in %s could not be read (%s); counting afresh", path, error)
        return []


def _write_durably(path: Path, content: bytes) -> None:
    staging = path.with_name(f".{path.name}.new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(staging, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
