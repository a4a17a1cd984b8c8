"""HQ on PostgreSQL, shared by any number of HQ processes.

HQ's code and the ledger's `Projection` speak sqlite3 (`?` placeholders,
`lastrowid`). `PgTx` runs them on PostgreSQL without a round trip per statement:

- a write whose result nobody reads waits in a queue until the transaction next
  reads from PostgreSQL or ends; then runs of one insert go as one COPY, other
  runs as one `executemany`;
- new rows of events, units, documents and products get ids from blocks this
  process reserved (`hq_ids`), so an insert needs no answer to know its id;
- rows of units, products and documents are copied (units locked) into an
  in-memory SQLite database with the ledger's own schema, once per transaction:
  a batch's whole set of keys in three queries, any other key when first looked
  up. The projection's key look-ups are answered by the copy; its writes go to
  the copy and, queued, to PostgreSQL. The projection itself runs unchanged.

Any statement the copy cannot answer exactly (another table, another WHERE)
goes to PostgreSQL, which always holds every write of the transaction.
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlite_utils import Database

from daemon.hq.backend import HQ_BRANCH, HQ_TERMINAL, Backend, Identity, Tx
from daemon.hq.schema import pg_statements
from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind
from daemon.ledger.projection import Projection
from daemon.ledger.schema import MIGRATIONS
from daemon.ledger.store import DEFAULT_PREFIX_LENGTH
from daemon.rules.serials import serial_key

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRIES = 12
ID_BLOCK = 4096
MIRRORED = frozenset({"units", "products", "documents"})
RESERVED_IDS = ("events", "units", "documents", "products")
# Key look-ups the SQLite copy answers (it loads a missing key first).
_KEY_LOOKUPS = {
    "unit": re.compile(r"WHERE u\.serial_key = \? AND p\.code = \?(?: FOR UPDATE OF u)?\s*$"),
    "unit_of_product_id": re.compile(r"WHERE serial_key = \? AND product_id = \?\s*$"),
    "product": re.compile(r"WHERE code = \?\s*$"),
    "document": re.compile(r"WHERE type = \? AND number = \?\s*$"),
}
_TABLES = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(\w+)", re.IGNORECASE)
_INSERT = re.compile(r"\s*INSERT INTO (\w+) \(([^)]*)\) VALUES \(", re.IGNORECASE)


@dataclass(frozen=True)
class Route:
    pg: str  # the statement for PostgreSQL
    mirror: str | None  # the statement for the SQLite copy, when it takes part
    lookup: str | None  # a key look-up answered by the copy alone: which key
    reserve: str | None  # table whose next reserved id goes first in the parameters
    write: str | None  # a write nobody reads an answer of: the table it changes
    copy: str | None  # the same as COPY, for a plain INSERT


def route(sql: str) -> Route:
    """How a sqlite3 statement runs here (pure: cached by the caller)."""
    verb = sql.lstrip().split(None, 1)[0].upper()
    tables = {t.lower() for t in _TABLES.findall(sql.replace(" FOR UPDATE OF u", ""))}
    reserve = None
    insert = _INSERT.match(sql)
    columns = {c.strip() for c in insert.group(2).split(",")} if insert else set()
    if insert and insert.group(1) in RESERVED_IDS and "id" not in columns:
        reserve = insert.group(1)
        columns_at, values_at = insert.start(2), insert.end()
        sql = f"{sql[:columns_at]}id, {sql[columns_at:values_at]}?, {sql[values_at:]}"
    pg = sql.replace("%", "%%").replace("?", "%s")
    if insert:
        # PostgreSQL finds `n = n + excluded.n` ambiguous: name the table.
        table = insert.group(1)
        pg = re.sub(r"\b(\w+) = \1 \+ excluded\.\1\b", rf"\1 = {table}.\1 + excluded.\1", pg)
    mirror = None
    lookup = None
    if tables and tables <= MIRRORED:
        if verb == "SELECT":
            lookup = next((k for k, p in _KEY_LOOKUPS.items() if p.search(sql)), None)
            mirror = sql.replace(" FOR UPDATE OF u", "") if lookup else None
        elif verb in ("INSERT", "UPDATE", "DELETE"):
            mirror = sql
    write = None
    if verb in ("INSERT", "UPDATE", "DELETE") and "RETURNING" not in sql.upper() and tables:
        write = _TABLES.findall(sql)[0].lower()
    return Route(pg, mirror, lookup, reserve, write, copy_of(pg))


class IdBlocks:
    """Ids for new rows, reserved in blocks on a connection of their own."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._free: dict[str, tuple[int, int]] = {}

    def take(self, table: str) -> int:
        start, end = self._free.get(table, (0, 0))
        if start >= end:
            (end,) = self.conn.execute(
                "UPDATE hq_ids SET next = next + %s WHERE tbl = %s RETURNING next",
                [ID_BLOCK, table],
            ).fetchone()
            start = end - ID_BLOCK
        self._free[table] = (start + 1, end)
        return int(start)


class Mirror:
    """An in-memory SQLite copy of the rows one transaction works on."""

    def __init__(self) -> None:
        self.db = Database(memory=True)
        MIGRATIONS.apply(self.db)
        self.columns = {
            t: [row[1] for row in self.db.execute(f"PRAGMA table_info({t})").fetchall()]
            for t in MIRRORED
        }
        self._units: set[tuple[str, str]] = set()
        self._documents: set[tuple[str, str]] = set()
        self._products: set[str] = set()

    def reset(self) -> None:
        for table in ("units", "documents", "products"):
            self.db.execute(f"DELETE FROM {table}")
        self._units.clear()
        self._documents.clear()
        self._products.clear()

    def load(self, pg: Any, bodies: Iterable[EventBody]) -> None:
        """Copy (and lock) the rows these events name, in three queries."""
        units: set[tuple[str, str]] = set()
        documents: set[tuple[str, str]] = set()
        products: set[str] = set()
        for body in bodies:
            unit = body.unit
            if unit is not None:
                products.add(unit[0])
                units.add((unit[0], serial_key(unit[1])))
            if body.kind == Kind.PRODUCT:
                products.add(body.data["code"])
            doc = body.doc
            if doc is not None:
                documents.add(doc)
        self.products(pg, products)
        self.units(pg, units)
        self.documents(pg, documents)

    def answer(
        self, pg: Any, lookup: str, sql: str, values: list[Any], flush: Callable[[], None]
    ) -> Any:
        """Run a key look-up on the copy, loading its key first if need be."""
        if not self._has(lookup, values):
            flush()  # what PostgreSQL returns must include this transaction's writes
        if lookup == "unit":
            self.products(pg, {values[1]})
            self.units(pg, {(values[1], values[0])})
        elif lookup == "unit_of_product_id":
            row = self.db.execute("SELECT code FROM products WHERE id = ?", [values[1]]).fetchone()
            if row is None:
                self._copy(pg, "products", "SELECT {} FROM products WHERE id = %s", [values[1]])
                row = self.db.execute(
                    "SELECT code FROM products WHERE id = ?", [values[1]]
                ).fetchone()
            if row is not None:
                self.units(pg, {(row[0], values[0])})
        elif lookup == "product":
            self.products(pg, {values[0]})
        elif lookup == "document":
            self.documents(pg, {(values[0], values[1])})
        return self.db.conn.execute(sql, values)

    def _has(self, lookup: str, values: list[Any]) -> bool:
        if lookup == "unit":
            return (values[1], values[0]) in self._units
        if lookup == "product":
            return values[0] in self._products
        if lookup == "document":
            return (values[0], values[1]) in self._documents
        row = self.db.execute("SELECT code FROM products WHERE id = ?", [values[1]]).fetchone()
        return row is not None and (row[0], values[0]) in self._units

    def products(self, pg: Any, codes: set[str]) -> None:
        codes = codes - self._products
        if codes:
            self._copy(
                pg, "products", "SELECT {} FROM products WHERE code = ANY(%s)", [sorted(codes)]
            )
            self._products |= codes

    def units(self, pg: Any, keys: set[tuple[str, str]]) -> None:
        keys = keys - self._units
        if keys:
            self.products(pg, {code for code, _ in keys})
            codes, serials = zip(*sorted(keys), strict=True)
            self._copy(
                pg,
                "units",
                "SELECT {} FROM units u JOIN products p ON p.id = u.product_id"
                " WHERE (p.code, u.serial_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
                " FOR UPDATE OF u",
                [list(codes), list(serials)],
                prefix="u.",
            )
            self._units |= keys

    def documents(self, pg: Any, keys: set[tuple[str, str]]) -> None:
        keys = keys - self._documents
        if keys:
            types, numbers = zip(*sorted(keys), strict=True)
            self._copy(
                pg,
                "documents",
                "SELECT {} FROM documents WHERE (type, number) IN"
                " (SELECT * FROM unnest(%s::text[], %s::text[]))",
                [list(types), list(numbers)],
            )
            self._documents |= keys

    def _copy(self, pg: Any, table: str, query: str, params: list[Any], prefix: str = "") -> None:
        columns = self.columns[table]
        rows = pg.execute(query.format(", ".join(prefix + c for c in columns)), params).fetchall()
        if rows:
            self.db.conn.executemany(
                f"INSERT OR IGNORE INTO {table} ({', '.join(columns)})"
                f" VALUES ({', '.join('?' for _ in columns)})",
                rows,
            )


class _Result:
    """What a statement returns to sqlite3-minded code."""

    def __init__(self, cursor: Any, lastrowid: int | None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor.fetchall())


class PgTx:
    """sqlite3's execute/executemany over one PostgreSQL transaction.

    Writes wait in a queue until something reads from PostgreSQL (or the
    transaction ends); then each table's writes go in order. Tables have no
    foreign keys in HQ's schema, so writes to different tables may go in any order.
    """

    def __init__(self, backend: PgBackend, mirror: Mirror) -> None:
        self.backend = backend
        self.pg = backend.conn
        self.mirror = mirror
        self.conn = self  # Projection calls db.conn.executemany
        self._queue: dict[str, list[tuple[Route, list[Any]]]] = {}

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> _Result:
        plan = self.backend.route(sql)
        values = list(params)
        new_id = None
        if plan.reserve is not None:
            new_id = self.backend.row_ids.take(plan.reserve)
            values.insert(0, new_id)
        if plan.mirror is not None:
            if plan.lookup is not None:
                found = self.mirror.answer(self.pg, plan.lookup, plan.mirror, values, self.flush)
                return _Result(found, None)
            self.mirror.db.conn.execute(plan.mirror, values)
        if plan.write is not None:
            self._queue.setdefault(plan.write, []).append((plan, values))
            return _Result(_NoRows, new_id)
        self.flush()
        return _Result(self.pg.execute(plan.pg, values), new_id)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> None:
        plan = self.backend.route(sql)
        values = [list(r) for r in rows]
        if plan.reserve is not None:
            values = [[self.backend.row_ids.take(plan.reserve), *v] for v in values]
        if not values:
            return
        if plan.mirror is not None:
            self.mirror.db.conn.executemany(plan.mirror, values)
        self._queue.setdefault(plan.write or "", []).extend((plan, v) for v in values)

    def flush(self) -> None:
        """Send the queued writes: plain inserts by COPY, the rest as executemany."""
        queue, self._queue = self._queue, {}
        with self.pg.cursor() as cursor:
            for writes in queue.values():
                for plan, run in itertools.groupby(writes, key=lambda item: item[0]):
                    rows = [values for _, values in run]
                    if plan.copy is not None and len(rows) > 1:
                        with cursor.copy(plan.copy) as stream:
                            for row in rows:
                                stream.write_row(row)
                    else:
                        cursor.executemany(plan.pg, rows)


_PLAIN_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\) VALUES \((?:%s, )*%s\)$")


def copy_of(sql: str) -> str | None:
    """The COPY statement that does what a plain multi-row INSERT does, if it is one."""
    plain = _PLAIN_INSERT.match(sql)
    return f"COPY {plain.group(1)} ({plain.group(2)}) FROM STDIN" if plain else None


class _NoRowsCursor:
    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []


_NoRows = _NoRowsCursor()


class PgBackend(Backend):
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
            id_conn = psycopg.connect(dsn, autocommit=True)
        except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
            # ProgrammingError: a DSN that is not one ("missing = after …").
            raise ConnectionError(
                f"cannot connect to PostgreSQL at {_safe_dsn(dsn)!r}: {str(exc).strip()}"
            ) from None
        self._routes: dict[str, Route] = {}
        self._mirror = Mirror()
        self._prepare_schema()
        self.row_ids = IdBlocks(id_conn)
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
                "CREATE TABLE IF NOT EXISTS hq_ids (tbl TEXT PRIMARY KEY, next BIGINT NOT NULL)"
            )
            for table in RESERVED_IDS:
                self.conn.execute(
                    f"INSERT INTO hq_ids (tbl, next) SELECT %s, coalesce(max(id), 0) + 1"
                    f" FROM {table} ON CONFLICT (tbl) DO NOTHING",
                    [table],
                )
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('terminal', %s), ('branch', %s),"
                " ('epoch', %s), ('prefix_length', %s) ON CONFLICT (key) DO NOTHING",
                [HQ_TERMINAL, HQ_BRANCH, uuid.uuid4().hex[:16], str(DEFAULT_PREFIX_LENGTH)],
            )

    def route(self, sql: str) -> Route:
        found = self._routes.get(sql)
        if found is None:
            found = self._routes[sql] = route(sql)
        return found

    def run(self, work: Callable[[Tx], T], *, retries: int = RETRIES) -> T:
        errors = self._psycopg.errors
        retry = (errors.SerializationFailure, errors.DeadlockDetected, errors.UniqueViolation)
        for attempt in range(retries):
            self._mirror.reset()
            try:
                with self.conn.transaction():
                    tx = PgTx(self, self._mirror)
                    result = work(tx)
                    tx.flush()
                    return result
            except retry as exc:
                if attempt == retries - 1:
                    raise
                log.debug("HQ transaction lost a race (%s); running it again", type(exc).__name__)
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("not reached")

    def prefetch(self, tx: Tx, bodies: Iterable[EventBody]) -> None:
        cast(PgTx, tx).mirror.load(self.conn, bodies)

    def flush(self, tx: Tx) -> None:
        cast(PgTx, tx).flush()

    def transient(self, exc: BaseException) -> bool:
        errors = self._psycopg.errors
        if isinstance(exc, errors.ProgramLimitExceeded):
            return False  # a value too big for an index: it comes from the data
        return isinstance(exc, self._psycopg.OperationalError | OSError)

    def projection(self, tx: Tx) -> Projection:
        return Projection(cast(Database, tx), self.prefix_length)

    def close(self) -> None:
        self.conn.close()
        self.row_ids.conn.close()


def _safe_dsn(dsn: str) -> str:
    """The DSN without its password."""
    dsn = re.sub(r"password=\S+", "password=***", dsn)
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)
