"""HQ's database as the dashboard uses it: one thread, two connections.

Every database call of the dashboard runs on one worker thread (SQLite connections
belong to the thread that opened them; the event loop never waits on a query):

- `central`: HQ's `Central` on its backend, for writes: resolving a conflict,
  flagging recalled units, adding a sign-in. They go through HQ's own
  transactions, so they are HQ events, routed to the terminals like any other.
- `reader`: a read-only connection for everything the pages show, with the
  ledger's read functions (`daemon.ledger.queries`, `analytics`, `recalls`)
  running on it unchanged. Reads never take SQLite's write lock, so the dashboard
  never holds up HQ storing terminals' events.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from sqlite_utils import Database

from daemon.errors import HqError
from daemon.hq.central import Central
from daemon.hq.connect import open_backend
from daemon.hq.users import ensure_tables
from daemon.ledger.reader import ReadStore, Rows
from daemon.ledger.store import DEFAULT_PREFIX_LENGTH

T = TypeVar("T")


class DatabaseMissing(HqError, FileNotFoundError):
    """The HQ database named does not exist."""


@dataclass(frozen=True)
class HqSource:
    """Where HQ's database is: a SQLite file or a PostgreSQL DSN (exactly one)."""

    db: Path | None = None
    pg: str | None = None

    def __post_init__(self) -> None:
        if (self.db is None) == (self.pg is None):
            raise ValueError("give the dashboard either a SQLite file (--db) or a DSN (--pg)")

    def describe(self) -> str:
        return "PostgreSQL" if self.pg is not None else str(self.db)


@dataclass(frozen=True)
class Reader:
    """A `ReadStore` over a read-only connection."""

    db: Rows
    prefix_length: int
    close: Callable[[], None]


def open_reader(source: HqSource) -> Reader:
    if source.pg is not None:
        return _pg_reader(source.pg)
    assert source.db is not None
    conn = sqlite3.connect(str(source.db))
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA query_only = ON")
    db = Database(conn)
    return Reader(db, _prefix_length(db), conn.close)


def _prefix_length(db: Rows) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'prefix_length'").fetchone()
    return int(row[0]) if row else DEFAULT_PREFIX_LENGTH


def _pg_reader(dsn: str) -> Reader:
    import psycopg

    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        raise ConnectionError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
    conn.execute("SET default_transaction_read_only = on")
    rows = PgRows(conn)
    return Reader(rows, _prefix_length(rows), conn.close)


class PgRows:
    """sqlite3-style reads on PostgreSQL: `?` placeholders; sums come back as ints."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._sql: dict[str, str] = {}

    def execute(self, sql: str, params: Sequence[Any] | None = None, /) -> _PgCursor:
        text = self._sql.get(sql)
        if text is None:
            text = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return _PgCursor(self.conn.execute(text, list(params or ())))

    def query(self, sql: str, params: Sequence[Any] | None = None, /) -> Iterator[dict[str, Any]]:
        cursor = self.execute(sql, params)
        names = [column.name for column in cursor.description or ()]
        for row in cursor:
            yield dict(zip(names, row, strict=True))


class _PgCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.description = cursor.description

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else _plain(row)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [_plain(row) for row in self._cursor.fetchall()]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


def _plain(row: Sequence[Any]) -> tuple[Any, ...]:
    # PostgreSQL sums integers as NUMERIC; SQLite gives ints.
    return tuple(
        (int(v) if v == v.to_integral_value() else float(v)) if isinstance(v, Decimal) else v
        for v in row
    )


class HqDatabase:
    """HQ's database on the dashboard's worker thread; open it before use."""

    def __init__(self, source: HqSource) -> None:
        self.source = source
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="posd-hq-web-db")
        self._central: Central | None = None
        self._reader: Reader | None = None

    async def open(self) -> None:
        await self._on_thread(self._open)

    def _open(self) -> None:
        if self.source.db is not None and not self.source.db.exists():
            raise DatabaseMissing(
                f"no HQ database at {self.source.db}; give the file `posd hq run` keeps"
                " (--db), or a PostgreSQL DSN (--pg)"
            )
        central = Central(open_backend(self.source.db, self.source.pg))
        try:
            ensure_tables(central.backend)
            self._reader = open_reader(self.source)
        except BaseException:
            central.close()
            raise
        self._central = central

    async def read(self, work: Callable[[ReadStore], T]) -> T:
        """Run `work` with the read-only store, on the database thread."""
        return await self._on_thread(lambda: work(self.reader))

    async def write(self, work: Callable[[Central], T]) -> T:
        """Run `work` with HQ's `Central` (its transactions), on the database thread."""

        def done() -> T:
            try:
                return work(self.central)
            finally:
                self.central.backend.maintain()  # keeps SQLite's WAL short, as HQ does

        return await self._on_thread(done)

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            raise RuntimeError("the dashboard's database is not open")
        return self._reader

    @property
    def central(self) -> Central:
        if self._central is None:
            raise RuntimeError("the dashboard's database is not open")
        return self._central

    async def close(self) -> None:
        def shut() -> None:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            if self._central is not None:
                self._central.close()
                self._central = None

        await self._on_thread(shut)
        self._executor.shutdown(wait=True)

    async def _on_thread(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)
