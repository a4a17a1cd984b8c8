"""Where HQ keeps the central ledger: SQLite (one HQ process) or PostgreSQL (several).

Both give a transaction object with sqlite3's `execute(sql, params)` (with `?`
placeholders): HQ's code and the ledger's own `Projection` run unchanged on
either. PostgreSQL is in `daemon.hq.pg`.
"""

from __future__ import annotations

import logging
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlite_utils import Database

from daemon.hq.schema import HQ_MIGRATIONS
from daemon.ledger.events import EventBody, EventIds
from daemon.ledger.projection import Projection
from daemon.ledger.store import LedgerStore

log = logging.getLogger(__name__)
T = TypeVar("T")
HQ_TERMINAL = "HQ"
HQ_BRANCH = "HQ"
RETRIES = 12


class Tx(Protocol):
    """A transaction: sqlite3-style statements with `?` placeholders."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None: ...


@dataclass(frozen=True)
class Identity:
    """HQ's own stream: the terminal id and epoch on the events HQ writes."""

    terminal: str
    epoch: str
    branch: str


class Backend(ABC):
    kind: str
    lock: str  # appended to a SELECT to lock the rows it reads (until commit)
    lock_unit: str  # the same for the ledger's unit query (units u JOIN products p)
    skip_locked: str  # the same, passing over rows another transaction holds
    identity: Identity
    prefix_length: int

    def __init__(self) -> None:
        self.ids = EventIds()

    @abstractmethod
    def run(self, work: Callable[[Tx], T], *, retries: int = RETRIES) -> T:
        """Run `work` in one transaction (again, from the start, if it lost a race;
        at most `retries` times)."""

    @abstractmethod
    def projection(self, tx: Tx) -> Projection: ...

    def maintain(self) -> None:  # noqa: B027 - optional for a backend
        """Housekeeping between transactions."""

    def prefetch(self, tx: Tx, bodies: Iterable[EventBody]) -> None:  # noqa: B027
        """A hint: these events are about to be stored in this transaction."""

    def flush(self, tx: Tx) -> None:  # noqa: B027 - only a backend that queues writes
        """Send every write of the transaction so far to the database (errors now)."""

    @abstractmethod
    def transient(self, exc: BaseException) -> bool:
        """Whether `exc` may go away by itself (a lock, a lost connection, a full disk),
        as opposed to coming from the data (a value the database refuses)."""

    @abstractmethod
    def close(self) -> None: ...


class SqliteBackend(Backend):
    """HQ on one SQLite file: the same ledger schema a terminal has, plus HQ's tables."""

    kind = "sqlite"
    lock = ""
    lock_unit = ""
    skip_locked = ""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        if path.exists():
            self.store = LedgerStore.open(path)
        else:
            self.store = LedgerStore.create(path, terminal=HQ_TERMINAL, branch=HQ_BRANCH)
        HQ_MIGRATIONS.apply(self.store.db)
        self.db: Database = self.store.db
        self.identity = Identity(self.store.terminal, self.store.epoch, self.store.branch)
        self.prefix_length = self.store.prefix_length
        self._tx = _SqliteTx(self.db)
        self._closed = False

    def run(self, work: Callable[[Tx], T], *, retries: int = RETRIES) -> T:
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(self._tx)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def projection(self, tx: Tx) -> Projection:
        return Projection(self.db, self.prefix_length)

    def maintain(self) -> None:
        self.store.checkpoint()

    def transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError | OSError)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.store.close()


class _SqliteTx:
    def __init__(self, db: Database) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self.db.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None:
        self.db.conn.executemany(sql, rows)
