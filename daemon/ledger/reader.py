"""What the read side (passport, search, counts, analytics, recall lists) needs of a
database: sqlite3-style statements with `?` placeholders, and rows as dicts.

A terminal's `LedgerStore` is one. HQ's dashboard gives the same read functions an
adapter over its SQLite file or its PostgreSQL database, so the queries are written
once, in SQL both understand.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


class Rows(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any:
        """A cursor: `fetchone()`, `fetchall()`, iteration over tuples."""

    def query(self, sql: str, params: Any = ..., /) -> Iterable[dict[str, Any]]:
        """Rows as dicts keyed by column name."""


class ReadStore(Protocol):
    @property
    def db(self) -> Rows: ...

    @property
    def prefix_length(self) -> int:
        """How many characters of a serial key `unit_counts` counts by."""


def placeholders(count: int) -> str:
    """`?, ?, ?` for an IN list of `count` values."""
    return ", ".join("?" for _ in range(count))


def chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    """`values` in slices of at most `size` (a bound on placeholders per statement)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
