"""Opening HQ's database: SQLite for a small chain, PostgreSQL for several HQ processes.

backend = open_backend("hq.db", None)            # or open_backend(None, "host=db …")
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from daemon.hq.backend import Backend, SqliteBackend


def open_backend(db: str | Path | None, pg: str | None) -> Backend:
    """SQLite at `db`, or PostgreSQL at DSN `pg` (exactly one of them)."""
    if (db is None) == (pg is None):
        raise ValueError("give HQ either a SQLite file (--db) or a PostgreSQL DSN (--pg)")
    if pg is not None:
        # psycopg is loaded only by an HQ that uses PostgreSQL.
        from daemon.hq.pg import PgBackend

        return PgBackend(pg)
    return SqliteBackend(cast(str, db))
