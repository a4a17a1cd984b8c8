"""Where HQ keeps the central ledger: SQLite (one HQ process) or PostgreSQL (several).

Both give a transaction object with sqlite3's `execute(sql, params)` (with `?`
placeholders): HQ's code and the ledger's own `Projection` run unchanged on
either. For PostgreSQL a small adapter translates the placeholders, asks for the
new row's id where sqlite3 would give `lastrowid`, and qualifies the columns an
upsert adds to itself (PostgreSQL finds `n = n + excluded.n` ambiguous).

PostgreSQL transactions that lose a race with another HQ process (a deadlock, a
serialization failure, two inserts of one new product) are run again.
"""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from sqlite_utils import Database

from daemon.hq.schema import HQ_MIGRATIONS, id_tables, pg_statements
from daemon.ledger.events import EventIds
from daemon.ledger.projection import Projection
from daemon.ledger.store import DEFAULT_PREFIX_LENGTH, LedgerStore

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
    def run(self, work: Callable[[Tx], T]) -> T:
        """Run `work` in one transaction (again, from the start, if it lost a race)."""

    @abstractmethod
    def projection(self, tx: Tx) -> Projection: ...

    def maintain(self) -> None:  # noqa: B027 - optional for a backend
        """Housekeeping between transactions."""

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

    def run(self, work: Callable[[Tx], T]) -> T:
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


class PgBackend(Backend):
    """HQ on PostgreSQL, shared by any number of HQ processes."""

    kind = "postgresql"
    lock = " FOR UPDATE"
    lock_unit = " FOR UPDATE OF u"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, dsn: str) -> None:
        super().__init__()
        import psycopg

        self._psycopg = psycopg
        try:
            self.conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            raise ConnectionError(
                f"cannot connect to PostgreSQL at {_safe_dsn(dsn)!r}: {str(exc).strip()}"
            ) from None
        self._sql: dict[str, tuple[str, bool]] = {}
        self._id_tables = id_tables()
        self._prepare_schema()
        meta: dict[str, str] = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        self.identity = Identity(meta["terminal"], meta["epoch"], meta["branch"])
        self.prefix_length = int(meta.get("prefix_length", DEFAULT_PREFIX_LENGTH))

    def _prepare_schema(self) -> None:
        with self.conn.transaction():
            # One HQ process at a time brings the schema up to date.
            self.conn.execute("SELECT pg_advisory_xact_lock(7465736)")
            existing: dict[str, set[str]] = {}
            for table, column in self.conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
            ).fetchall():
                existing.setdefault(table, set()).add(column)
            for statement in pg_statements(existing):
                self.conn.execute(statement)
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('terminal', %s), ('branch', %s),"
                " ('epoch', %s), ('prefix_length', %s) ON CONFLICT (key) DO NOTHING",
                [HQ_TERMINAL, HQ_BRANCH, uuid.uuid4().hex[:16], str(DEFAULT_PREFIX_LENGTH)],
            )

    def run(self, work: Callable[[Tx], T]) -> T:
        errors = self._psycopg.errors
        retry = (errors.SerializationFailure, errors.DeadlockDetected, errors.UniqueViolation)
        for attempt in range(RETRIES):
            try:
                with self.conn.transaction():
                    return work(_PgTx(self))
            except retry as exc:
                if attempt == RETRIES - 1:
                    raise
                log.debug("HQ transaction lost a race (%s); running it again", type(exc).__name__)
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("not reached")

    def projection(self, tx: Tx) -> Projection:
        return Projection(cast(Database, tx), self.prefix_length)

    def translate(self, sql: str) -> tuple[str, bool]:
        """PostgreSQL text for a sqlite3 statement; True when it returns the new id."""
        found = self._sql.get(sql)
        if found is None:
            text = sql.replace("%", "%%").replace("?", "%s")
            insert = re.match(r"\s*INSERT INTO (\w+)", text, re.IGNORECASE)
            returns_id = False
            if insert:
                table = insert.group(1)
                text = re.sub(
                    r"\b(\w+) = \1 \+ excluded\.\1\b", rf"\1 = {table}.\1 + excluded.\1", text
                )
                if table in self._id_tables and "RETURNING" not in text.upper():
                    text += " RETURNING id"
                    returns_id = True
            found = self._sql[sql] = (text, returns_id)
        return found

    def close(self) -> None:
        self.conn.close()


class _PgCursor:
    def __init__(self, cursor: Any, returns_id: bool) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        if returns_id:
            row = cursor.fetchone()
            self.lastrowid = int(row[0]) if row else None

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class _PgTx:
    """sqlite3's execute/executemany over psycopg, inside the backend's transaction."""

    def __init__(self, backend: PgBackend) -> None:
        self._backend = backend
        self.conn = self  # Projection calls db.conn.executemany

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> _PgCursor:
        text, returns_id = self._backend.translate(sql)
        return _PgCursor(self._backend.conn.execute(text, list(params)), returns_id)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None:
        text, _ = self._backend.translate(sql)
        text = text.removesuffix(" RETURNING id")
        rows = [list(r) for r in rows]
        if rows:
            with self._backend.conn.cursor() as cursor:
                cursor.executemany(text, rows)


def _safe_dsn(dsn: str) -> str:
    """The DSN without its password."""
    dsn = re.sub(r"password=\S+", "password=***", dsn)
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)


def open_backend(db: str | Path | None, pg: str | None) -> Backend:
    """SQLite at `db`, or PostgreSQL at DSN `pg` (exactly one of them)."""
    if (db is None) == (pg is None):
        raise ValueError("give HQ either a SQLite file (--db) or a PostgreSQL DSN (--pg)")
    return PgBackend(pg) if pg is not None else SqliteBackend(cast(str, db))
