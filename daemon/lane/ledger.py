"""The lane's line to the ledger: fast reads and journal entries on the event loop,
durable writes on one ledger thread.

One SQLite connection, guarded by a lock, serves both:

- The scan path (`facts`, `log`) runs on the event loop itself when the connection is
  free: an indexed read and a journal entry without an fsync take tens of
  microseconds, far less than handing the work to a thread and back, and a scan is
  decided within the millisecond budget. With `busy_timeout` 0 on this path, a write
  lock held by another process never stalls the loop: the work moves to the thread.
- Operations that must be durable (`perform`, `daemon.lane.ops`: a sale, return,
  receipt of goods, an attendant's release, a manager's approval, a count scan)
  commit with `synchronous=FULL`, i.e. an fsync, which can take milliseconds on an
  SD card. They run on the ledger thread, so the event loop keeps
  serving scanners, the display and the kiosk meanwhile.

An error of the database itself (full disk, I/O error, a damaged file) is raised as
`LedgerUnusable`; the lane then goes out of service. A `Refusal` is an answer, not an
error: it comes back as `LedgerDone(refused=...)`.

Another process writing the ledger (`posd import`, a back-office command) holds its
write lock for a moment at a time. The ledger thread then asks again every few
milliseconds (`POLL_MS`), so it gets the lock in the pause between two of the other
writer's transactions, for up to `BUSY_WAIT_S`; only after that is the input answered
"ledger busy, try again" (`LedgerBusy`), and the lane stays in service.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from daemon.lane.ops import perform
from daemon.ledger import Ledger, LedgerError, Refusal
from daemon.ledger.lane_log import Entry, LaneLog
from daemon.ledger.lookup import ScanLookup
from daemon.ledger.store import Clock, utc_now
from daemon.rules.lane.types import Facts, LedgerDone, LedgerOp, LookupPlan

T = TypeVar("T")
log = logging.getLogger(__name__)
POLL_MS = 3  # how long SQLite waits for another writer's lock before the thread asks again
BUSY_WAIT_S = 2.0  # how long the lane waits for it in all before saying "busy"


class LedgerUnusable(LedgerError, OSError):
    """The ledger cannot be written or read (full disk, I/O error, damaged file)."""


class LedgerBusy(LedgerError):
    """Another program held the ledger's write lock for longer than `BUSY_WAIT_S`:
    nothing was done, and the same input may be given again."""


def open_ledger(path: str | Path, *, clock: Clock = utc_now) -> Ledger:
    """Open an existing ledger on a connection the lane may use from two threads
    (never at once: `LaneLedger` holds a lock around every use). Its statements do not
    wait for another process's lock; `LaneLedger` lets them on the ledger thread."""
    ledger = Ledger.open(path, clock=clock, threads=True)
    ledger.set_busy_timeout(0)
    return ledger


class LaneLedger:
    """The ledger as the lane uses it. `actor` names who the lane's events are by."""

    def __init__(self, ledger: Ledger, *, actor: str) -> None:
        self.ledger = ledger
        self.actor = actor
        self._conn = ledger.db.conn
        self._lock = threading.Lock()
        self.lookup = ScanLookup(self._conn)
        self.journal = LaneLog(ledger)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    # -- the scan path ------------------------------------------------------------

    async def facts(self, plan: LookupPlan) -> Facts:
        return await self._fast(self.lookup.facts, plan)

    async def log(self, entry: Entry) -> int:
        return await self._fast(self.journal.append, entry)

    def floor(self, key: str) -> int:
        """A bare indexed look-up (for the benchmark's floor), on the caller's thread."""
        with self._lock:
            return self.lookup.floor(key)

    # -- durable operations ---------------------------------------------------------

    async def perform(self, op: LedgerOp) -> LedgerDone:
        """Carry out `op` on the ledger thread: committed (fsync'd) or refused."""
        try:
            return await self._slow(self._perform, op)
        except Refusal as refusal:
            return LedgerDone(op.op_id, tuple((p.code, p.message) for p in refusal.problems))

    async def checkpoint(self) -> None:
        """Move the WAL's pages into the ledger file: call it between customers."""
        await self._slow(self.ledger.checkpoint)

    async def call(self, fn: Callable[[Ledger], T]) -> T:
        """Run `fn(ledger)` on the ledger thread (for reads that may take a while)."""
        return await self._slow(fn, self.ledger)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        with self._lock:
            try:
                self.ledger.close()
            except sqlite3.Error as error:
                # Whatever was committed is in the WAL; the next open recovers it.
                log.warning("the ledger did not close cleanly: %s", error)

    # -- internals ----------------------------------------------------------------

    async def _fast(self, fn: Callable[..., T], *args: object) -> T:
        if self._lock.acquire(blocking=False):
            try:
                return fn(*args)
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise LedgerUnusable(_explain(error)) from error
                # Another process holds the write lock: wait for it on the thread.
            except sqlite3.DatabaseError as error:
                raise LedgerUnusable(_explain(error)) from error
            finally:
                self._lock.release()
        return await self._slow(fn, *args)

    async def _slow(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._locked, fn, args)

    def _locked(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        with self._lock:
            self.ledger.set_busy_timeout(POLL_MS)
            deadline = time.monotonic() + BUSY_WAIT_S
            self.ledger.synchronous(full=True)  # whatever it does, at full durability
            try:
                while True:
                    changes = self._conn.total_changes
                    try:
                        return fn(*args)
                    except sqlite3.OperationalError as error:
                        # Asked again only when nothing was written yet (the lock was
                        # refused at the start of a transaction), never half-way.
                        if not _busy(error) or self._conn.total_changes != changes:
                            raise
                        if time.monotonic() >= deadline:
                            raise LedgerBusy(
                                "ledger busy: another program is writing to it (an import?);"
                                " nothing was done, try again in a moment"
                            ) from error
            except (sqlite3.DatabaseError, OSError) as error:
                raise LedgerUnusable(_explain(error)) from error
            finally:
                self.ledger.set_busy_timeout(0)

    def _perform(self, op: LedgerOp) -> LedgerDone:
        return perform(self.ledger, self.actor, op)


def _busy(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text


def _explain(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if "full" in text:
        return f"the ledger cannot be written: {text}; free space on the terminal's storage"
    return f"the ledger cannot be used: {text}; check the terminal's storage"
