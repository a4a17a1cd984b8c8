"""HQ's tables, and the PostgreSQL schema derived from the SQLite one.

HQ keeps the ledger's own tables (events, units, products, documents, counts: the
same projection every terminal keeps) plus its bookkeeping: per-terminal streams
with their ack watermark, parked out-of-order events, terminals and their branch,
the per-branch feed of events going back to terminals, and conflicts.

For PostgreSQL the DDL is generated from the SQLite migrations (ledger and HQ)
rather than written twice, so a migration another part of posd adds to the
ledger reaches HQ's PostgreSQL schema too: missing tables, columns and indexes
are created when HQ starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from daemon.ledger.schema import MIGRATIONS, run_statements

HQ_MIGRATIONS = Migrations("posd-hq")


@HQ_MIGRATIONS()
def m001_hq(db: Database) -> None:
    run_statements(
        db,
        """
        -- One row per terminal epoch: everything up to `acked` is stored and chained;
        -- `head_hash` is the hash of event `acked`. `gap_since`: events after a gap
        -- are parked since then; `resend_at`: when a resend was last asked for.
        CREATE TABLE hq_streams (
            terminal TEXT NOT NULL,
            epoch TEXT NOT NULL,
            acked INTEGER NOT NULL DEFAULT 0,
            head_hash TEXT NOT NULL,
            gap_since REAL,
            resend_at REAL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (terminal, epoch)
        );

        -- Events that arrived before the ones they follow.
        CREATE TABLE hq_parked (
            terminal TEXT NOT NULL,
            epoch TEXT NOT NULL,
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            body TEXT NOT NULL,
            parked_at REAL NOT NULL,
            PRIMARY KEY (terminal, epoch, seq)
        );

        -- Terminals, their branch (pinned when first seen) and presence.
        CREATE TABLE hq_terminals (
            terminal TEXT PRIMARY KEY,
            branch TEXT NOT NULL,
            epoch TEXT NOT NULL,
            session INTEGER NOT NULL DEFAULT 0,
            online INTEGER NOT NULL DEFAULT 0,
            seen_at TEXT NOT NULL
        );

        -- The feed back to each branch: gap-free positions, `published` so far.
        CREATE TABLE hq_branches (
            branch TEXT PRIMARY KEY,
            head INTEGER NOT NULL DEFAULT 0,
            published INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE hq_routes (
            branch TEXT NOT NULL,
            pos INTEGER NOT NULL,
            event_id INTEGER NOT NULL,
            unit_id INTEGER,
            PRIMARY KEY (branch, pos)
        );
        CREATE INDEX hq_routes_unit ON hq_routes (unit_id, branch) WHERE unit_id IS NOT NULL;

        -- Forks: `events` is a JSON list of the event ids involved.
        CREATE TABLE hq_conflicts (
            id INTEGER PRIMARY KEY,
            unit_id INTEGER NOT NULL,
            product TEXT NOT NULL,
            serial TEXT NOT NULL,
            events TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            resolved_at TEXT,
            resolution TEXT,
            note TEXT
        );
        CREATE INDEX hq_conflicts_unit ON hq_conflicts (unit_id);

        -- What HQ refused and why (a broken chain, a changed event, a bad message).
        CREATE TABLE hq_problems (
            id INTEGER PRIMARY KEY,
            terminal TEXT,
            epoch TEXT,
            seq INTEGER,
            message TEXT NOT NULL,
            at TEXT NOT NULL
        );
        """,
    )


@HQ_MIGRATIONS()
def m002_problems(db: Database) -> None:
    """Problems name their terminal and are open until an operator dismisses them;
    a stream held at an event HQ cannot store says so; terminals say they wait."""
    run_statements(
        db,
        """
        -- `held_seq`: HQ refused or could not store this event; the stream waits there.
        ALTER TABLE hq_streams ADD COLUMN held_seq INTEGER;
        -- A problem seen again counts up instead of adding a row.
        ALTER TABLE hq_problems ADD COLUMN seen INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE hq_problems ADD COLUMN last_at TEXT;
        ALTER TABLE hq_problems ADD COLUMN dismissed_at TEXT;
        ALTER TABLE hq_problems ADD COLUMN dismissed_by TEXT;
        CREATE INDEX hq_problems_open ON hq_problems (terminal, seq) WHERE dismissed_at IS NULL;
        -- From the terminal's status: own events HQ had not confirmed, and since when it
        -- has been waiting for HQ to take them (NULL: it is not waiting).
        ALTER TABLE hq_terminals ADD COLUMN backlog INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE hq_terminals ADD COLUMN waiting_since TEXT;
        """,
    )


def apply_sqlite(db: Database) -> None:
    MIGRATIONS.apply(db)
    HQ_MIGRATIONS.apply(db)


# -- PostgreSQL ------------------------------------------------------------------

_PG_TYPES = {"INTEGER": "BIGINT", "TEXT": "TEXT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"}
_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION posd_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: write a correcting event';
END $$;
DROP TRIGGER IF EXISTS events_append_only ON events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION posd_append_only();
"""


@dataclass(frozen=True)
class PgColumn:
    name: str
    sql: str  # the column definition


@dataclass(frozen=True)
class PgTable:
    name: str
    columns: tuple[PgColumn, ...]
    constraints: tuple[str, ...]
    indexes: tuple[str, ...]  # CREATE INDEX statements, IF NOT EXISTS
    has_id: bool  # an `id` column numbered by the database


def pg_tables() -> list[PgTable]:
    """The PostgreSQL form of every table the SQLite migrations create."""
    model = Database(memory=True)
    apply_sqlite(model)
    tables = []
    for (name,) in model.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
        " AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name"
    ).fetchall():
        tables.append(_pg_table(model, name))
    return tables


def _pg_table(model: Database, name: str) -> PgTable:
    info = model.execute(f'PRAGMA table_info("{name}")').fetchall()
    keys = sorted((row[5], row[1]) for row in info if row[5])
    # A lone INTEGER PRIMARY KEY is SQLite's rowid: numbered by the database.
    rowid = keys[0][1] if len(keys) == 1 and _type(info, keys[0][1]) == "INTEGER" else None
    columns = []
    for _, column, kind, notnull, default, _pk in info:
        if column == rowid:
            columns.append(PgColumn(column, f"{column} BIGINT GENERATED BY DEFAULT AS IDENTITY"))
            continue
        sql = f"{column} {_PG_TYPES.get(kind.upper(), 'TEXT')}"
        if notnull:
            sql += " NOT NULL"
        if default is not None:
            sql += f" DEFAULT {default}"
        columns.append(PgColumn(column, sql))
    constraints = [f"PRIMARY KEY ({', '.join(k for _, k in keys)})"] if keys else []
    indexes = []
    for _, index, unique, origin, _partial in model.execute(
        f'PRAGMA index_list("{name}")'
    ).fetchall():
        if origin == "u":
            cols = [r[2] for r in model.execute(f'PRAGMA index_info("{index}")').fetchall()]
            constraints.append(f"UNIQUE ({', '.join(cols)})")
        elif origin == "c":
            sql = model.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", [index]
            ).fetchone()[0]
            head = "CREATE UNIQUE INDEX" if unique else "CREATE INDEX"
            indexes.append(sql.replace(head, f"{head} IF NOT EXISTS", 1))
    return PgTable(name, tuple(columns), tuple(constraints), tuple(indexes), rowid == "id")


def _type(info: list[tuple[object, ...]], column: str) -> str:
    return next(str(row[2]).upper() for row in info if row[1] == column)


def pg_statements(existing: dict[str, set[str]]) -> list[str]:
    """DDL that brings a PostgreSQL schema (tables → columns it has) up to date."""
    statements = []
    for table in pg_tables():
        if table.name not in existing:
            body = ",\n    ".join([*(c.sql for c in table.columns), *table.constraints])
            statements.append(f"CREATE TABLE {table.name} (\n    {body}\n)")
        else:
            for column in table.columns:
                if column.name not in existing[table.name]:
                    statements.append(f"ALTER TABLE {table.name} ADD COLUMN {column.sql}")
        statements.extend(table.indexes)
    statements.append(_APPEND_ONLY)
    return statements


def id_tables() -> frozenset[str]:
    """Tables whose rows get their `id` from the database."""
    return frozenset(t.name for t in pg_tables() if t.has_id)
