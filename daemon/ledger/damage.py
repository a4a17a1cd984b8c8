"""Telling a ledger from a file that only looks like one, before anything is written.

`file_problem` looks at the file's bytes (empty, not SQLite, shorter than its own
header says: truncated); `schema_problem` asks an open connection whether the
database is a posd ledger at all (another program's SQLite file, or a ledger whose
tables are only in a WAL file that no longer belongs to it). Either answer becomes
`LedgerDamaged` where a ledger is opened, so every command says the same thing and
nothing migrates or converts a file that is not ours.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.ledger.errors import LedgerDamaged, LedgerError

SQLITE_MAGIC = b"SQLite format 3\x00"
LEDGER_MIGRATIONS = "posd-ledger"
ADVICE = (
    "posd will not use it: keep the file for investigation, restore the ledger from a "
    "copy or set up the terminal again (HQ holds every event it acknowledged)"
)


def file_problem(path: Path) -> str | None:
    """What is wrong with the bytes of the ledger file at `path`, or None."""
    size = path.stat().st_size
    if size == 0:
        return f"{path} is empty (0 bytes): it is not a ledger"
    with path.open("rb") as stream:
        header = stream.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return f"{path} is not a SQLite database (damaged, or another kind of file)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when the change counter matches its copy (offset 92).
    # A checkpoint cut short (a full disk) writes the first page and not the rest: the
    # pages it did not copy are still in the WAL, so a short file with a WAL is sound.
    wal = Path(f"{path}-wal")
    in_wal = wal.exists() and wal.stat().st_size > 0
    if header[24:28] == header[92:96] and size < pages * page_size and not in_wal:
        return (
            f"{path} is truncated: its header says {pages * page_size} bytes, the file has {size}"
        )
    return None


def schema_problem(conn: sqlite3.Connection, path: Path) -> str | None:
    """Why the database open on `conn` is not a posd ledger, or None (read only)."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "_sqlite_migrations" not in tables or "meta" not in tables:
        other = ", ".join(sorted(t for t in tables if not t.startswith("sqlite_"))[:5])
        if other:
            return f"{path} is a SQLite database but not a posd ledger (it holds tables {other})"
        return (
            f"{path} is a SQLite database but not a posd ledger (it holds no tables: if it"
            " was a ledger, its WAL file no longer belongs to it)"
        )
    sets = {row[0] for row in conn.execute("SELECT DISTINCT migration_set FROM _sqlite_migrations")}
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if LEDGER_MIGRATIONS not in sets or not {"terminal", "epoch", "branch"} <= meta.keys():
        return f"{path} is a SQLite database of another program, not a posd ledger"
    return None


def unreadable(error: Exception) -> str:
    """What SQLite said about a damaged file, in words (its message may itself be
    damaged text that Python cannot decode)."""
    if isinstance(error, UnicodeDecodeError):
        return "damaged text where SQLite keeps the file's schema"
    return str(error) or type(error).__name__


def ledger_failure(error: sqlite3.Error, path: Path) -> LedgerError:
    """The error to report for a SQLite error met while using the ledger at `path`:
    busy, full and read-only are said as such; anything else is damage."""
    text = str(error) or type(error).__name__
    if "locked" in text or "busy" in text:
        return LedgerError(
            f"the ledger {path} is busy (another program is writing): {text}; try again"
        )
    if "full" in text:
        return LedgerError(
            f"the ledger {path} cannot be written: {text}; free space on its storage"
        )
    if "readonly" in text.replace(" ", ""):
        return LedgerError(
            f"the ledger {path} cannot be written here: {text}; check its owner and mode"
        )
    return LedgerDamaged(f"the ledger {path} cannot be read ({unreadable(error)}); {ADVICE}")
